"""`laps-edge doctor`: every check reports ok/warn/FAIL with a fix; exit 1 when one is fatal."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edge.cli.doctor import render, run_checks

from .helpers import Mosquitto, free_port, write_config, write_video

LAPS_EDGE = str(Path(sys.executable).parent / "laps-edge")


def by_name(checks) -> dict:
    return {c.name: c for c in checks}


@pytest.fixture
def video(tmp_path):
    return write_video(tmp_path / "v.avi", seconds=2)


@pytest.mark.broker
def test_healthy_setup_passes_every_fatal_check(broker, tmp_path, video):
    cfg = write_config(tmp_path / "edge.toml", port=broker.port, state_dir=tmp_path / "state", source=str(video))
    checks = by_name(run_checks(str(cfg), timeout_s=3))
    for name in ("python", "config", "onnxruntime", "providers", "opencv", "numba cache", "model", "source",
                 "broker", "broker auth", "state dir", "outbox"):
        assert checks[name].status == "ok", (name, checks[name])
    assert "GStreamer:" in checks["opencv"].detail
    assert "320x240" in checks["source"].detail
    assert "CPUExecutionProvider" in checks["onnxruntime"].detail


def test_unreachable_broker_fails_with_its_fix(tmp_path, video):
    cfg = write_config(tmp_path / "edge.toml", port=free_port(), state_dir=tmp_path / "state", source=str(video))
    broker = by_name(run_checks(str(cfg), skip={"model"}, timeout_s=2))["broker"]
    assert broker.status == "fail" and "cannot reach" in broker.detail and "mqtt.host" in broker.fix


@pytest.mark.broker
def test_wrong_password_fails_broker_auth_with_the_credentials_fix(tmp_path, video):
    b = Mosquitto(tmp_path / "broker", users={"dev-1": "right"}).start()
    try:
        cfg = write_config(tmp_path / "edge.toml", port=b.port, state_dir=tmp_path / "state", source=str(video),
                           mqtt_extra='username = "dev-1"\npassword = "wrong"')
        auth = by_name(run_checks(str(cfg), skip={"model"}, timeout_s=3))["broker auth"]
    finally:
        b.stop()
    assert auth.status == "fail" and "refused the login of user 'dev-1'" in auth.detail
    assert "mqtt.credentials_file" in auth.fix


def test_missing_camera_fails_the_source_check(tmp_path):
    cfg = write_config(tmp_path / "edge.toml", port=free_port(), state_dir=tmp_path / "state", source="/dev/video97")
    source = by_name(run_checks(str(cfg), skip={"model", "broker"}))["source"]
    assert source.status == "fail" and "/dev/video97" in source.detail and source.fix


def test_invalid_config_is_a_failed_check_not_a_crash(tmp_path):
    bad = tmp_path / "edge.toml"
    bad.write_text("[device]\nsite='a'\nid='b'\n[source]\nspec='x'\n[mqtt]\nkeepalive=0\n")
    checks = by_name(run_checks(str(bad)))
    assert checks["config"].status == "fail" and "mqtt.keepalive = 0" in checks["config"].detail
    assert "broker" not in checks  # nothing checked against a config that did not load


def test_render_prints_a_fix_under_each_failure():
    from edge.cli.doctor import Check

    text = render([Check("python", "ok", "3.11"), Check("broker", "fail", "cannot reach x:1", "start it")])
    assert "FAIL  broker" in text and "fix: start it" in text and "1 failed" in text


def test_cli_exit_status_is_1_when_a_check_fails_and_json_is_machine_readable(tmp_path, video):
    cfg = write_config(tmp_path / "edge.toml", port=free_port(), state_dir=tmp_path / "state", source=str(video))
    proc = subprocess.run([LAPS_EDGE, "doctor", "--config", str(cfg), "--skip", "model", "--json", "--timeout", "2"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    results = {c["name"]: c for c in json.loads(proc.stdout)}
    assert results["broker"]["status"] == "fail" and results["source"]["status"] == "ok"
