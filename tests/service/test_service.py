"""`laps-edge run --config` end to end: the real pipeline on a real video file, a real broker,
the sd_notify protocol on a real socket, clean SIGTERM; and one-line errors for a bad config,
an unreadable model, a missing video, a missing camera."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edge.messages import SegmentMessage

from .helpers import wait_until, write_config, write_video

LAPS_EDGE = str(Path(sys.executable).parent / "laps-edge")


class NotifyListener:
    """A datagram socket standing in for systemd's $NOTIFY_SOCKET; records every field."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.fields: list[str] = []
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                self.fields += self.sock.recv(4096).decode().split("\n")
            except socket.timeout:
                continue
            except OSError:
                return

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def notify(tmp_path):
    n = NotifyListener(tmp_path / "notify.sock")
    yield n
    n.close()


def run_service(config: Path, env_extra: dict | None = None) -> subprocess.Popen:
    env = dict(os.environ, **(env_extra or {}))
    return subprocess.Popen([LAPS_EDGE, "run", "--config", str(config)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def finish(proc: subprocess.Popen, timeout: float = 30.0) -> tuple[int, str]:
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


@pytest.mark.broker
def test_service_is_ready_when_warm_pings_the_watchdog_and_stops_cleanly_on_sigterm(
        broker, subscriber_factory, notify, tmp_path):
    sub = subscriber_factory(broker.port)
    video = write_video(tmp_path / "station.avi", seconds=60)
    cfg = write_config(tmp_path / "edge.toml", port=broker.port, state_dir=tmp_path / "state",
                       source=str(video), extra="")
    cfg.write_text(cfg.read_text().replace('reconnect_min_s = 0.2\nreconnect_max_s = 1.0\n\n[mqtt]',
                                           'reconnect_min_s = 0.2\nreconnect_max_s = 1.0\npace = true\n\n[mqtt]', 1))
    proc = run_service(cfg, {"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "1000000"})
    try:
        assert wait_until(lambda: "READY=1" in notify.fields, 60), proc.stderr.read() if proc.poll() else ""
        assert wait_until(lambda: notify.fields.count("WATCHDOG=1") >= 3, 5)  # from the frame loop
        assert wait_until(lambda: len(sub.payloads("segments")) >= 1, 15)
        assert wait_until(lambda: sub.payloads("metrics"), 5)
    finally:
        os.kill(proc.pid, signal.SIGTERM)
    rc, err = finish(proc)
    assert rc == 0, err[-2000:]
    assert "STOPPING=1" in notify.fields
    # The broker forwards the final retained state to our subscriber asynchronously: under
    # load it can arrive after the device process has already exited.
    assert wait_until(lambda: [m["state"] for m in sub.payloads("state")][-1:] == ["stopped"], 10)
    states = [m["state"] for m in sub.payloads("state")]
    assert states[0] == "online" and states[-1] == "stopped" and "offline" not in states
    for msg in sub.payloads("segments"):
        SegmentMessage.from_dict(msg)
        assert msg["model_version"] == shipped_version() and msg["device_id"] == "dev-1"
    assert [m["seq"] for m in sub.payloads("segments")] == list(range(len(sub.payloads("segments"))))
    metrics = sub.payloads("metrics")[-1]
    assert 5.0 <= metrics["fps"] <= 12.0  # paced at the model's 10 fps
    assert "CPUExecutionProvider" in metrics["providers"] and metrics["model_version"] == shipped_version()
    assert set(metrics["stage_latency_ms"]) >= {"track", "total"}
    assert metrics["outbox"]["evicted_total"] == 0
    time.sleep(0.3)
    assert [m["state"] for m in sub.payloads("state")][-1] == "stopped"


@pytest.mark.broker
def test_finite_video_runs_to_its_end_and_every_segment_is_delivered(broker, subscriber_factory, tmp_path):
    sub = subscriber_factory(broker.port)
    video = write_video(tmp_path / "station.avi", seconds=12)
    cfg = write_config(tmp_path / "edge.toml", port=broker.port, state_dir=tmp_path / "state", source=str(video))
    rc, err = finish(run_service(cfg), timeout=60)
    assert rc == 0, err[-2000:]
    assert wait_until(lambda: len(sub.payloads("segments")) >= 2, 5)
    starts = [m["start"]["frame"] for m in sub.payloads("segments")]
    assert starts == sorted(starts)
    assert sqlite_depth(tmp_path / "state" / "outbox.sqlite") == 0


def sqlite_depth(path: Path) -> int:
    import sqlite3

    db = sqlite3.connect(str(path))
    try:
        return db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
    finally:
        db.close()


@pytest.mark.broker
def test_missing_camera_reports_source_lost_and_keeps_running(broker, subscriber_factory, notify, tmp_path):
    sub = subscriber_factory(broker.port)
    cfg = write_config(tmp_path / "edge.toml", port=broker.port, state_dir=tmp_path / "state", source="/dev/video97")
    cfg.write_text(cfg.read_text().replace("reconnect_max_s = 1.0\n\n[mqtt]",
                                           "reconnect_max_s = 1.0\nready_timeout_s = 1.0\n\n[mqtt]", 1))
    proc = run_service(cfg, {"NOTIFY_SOCKET": notify.path})
    try:
        assert wait_until(lambda: any(m["state"] == "source_lost" for m in sub.payloads("state")), 30)
        assert wait_until(lambda: "READY=1" in notify.fields, 10)  # alive and supervised, not restart-looping
        time.sleep(2.0)  # several reconnect attempts
        assert proc.poll() is None
    finally:
        os.kill(proc.pid, signal.SIGTERM)
    rc, err = finish(proc)
    assert rc == 0
    lost = [m for m in sub.payloads("state") if m["state"] == "source_lost"]
    assert "/dev/video97" in lost[0]["detail"]
    camera_errors = [line for line in err.splitlines() if "ERROR" in line and "/dev/video97" in line]
    assert len(camera_errors) == 1, camera_errors  # said once, not once per retry


def test_missing_video_file_is_a_one_line_error_and_exit_2(tmp_path):
    cfg = write_config(tmp_path / "edge.toml", port=1, state_dir=tmp_path / "state",
                       source=str(tmp_path / "no-such-video.mp4"))
    rc, err = finish(run_service(cfg))
    assert rc == 2
    error_lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and "no-such-video.mp4" in error_lines[0]
    assert "Traceback" not in err


def test_malformed_config_is_a_one_line_error_and_exit_2(tmp_path):
    bad = tmp_path / "edge.toml"
    bad.write_text('[device]\nsite = "a"\nid = "b"\n[source]\nspec = "/dev/video0"\n[mqtt]\nport = "1883"\n')
    rc, err = finish(run_service(bad))
    assert rc == 2
    assert err.strip().count("\n") == 0 and err.startswith("error: config ")
    assert "mqtt.port = '1883'" in err and "an integer" in err


def test_unreadable_model_is_a_one_line_error_and_exit_2(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "manifest.json").write_text("{ this is not json")
    (model / "tokenizer.onnx").write_bytes(b"\x00garbage")
    cfg = write_config(tmp_path / "edge.toml", port=1, state_dir=tmp_path / "state",
                       extra=f'\n[model]\ndir = "{model}"\n')
    rc, err = finish(run_service(cfg))
    assert rc == 2, err[-2000:]
    error_lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and str(model) in error_lines[0]
    assert "Traceback" not in err


@pytest.mark.broker
def test_keyframes_are_batched_uploaded_and_announced(broker, subscriber_factory, receiver, tmp_path):
    sub = subscriber_factory(broker.port)
    cfg = write_config(tmp_path / "edge.toml", port=broker.port, state_dir=tmp_path / "state",
                       extra=f'\n[upload]\nendpoint = "{receiver.url}"\ninterval_s = 0.3\n')
    proc = subprocess.run([sys.executable, "-m", "tests.service.publisher", "--config", str(cfg), "--synthetic-segments", "6",
                           "--interval-s", "0.05", "--keyframes", "2", "--until-drained-s", "20"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert wait_until(lambda: len(sub.payloads("segments")) == 6 and sub.payloads("batches"), 5)
    announced = {s["segment_id"]: s for b in sub.payloads("batches") for s in b["segments"]}
    assert set(announced) == sub.segment_ids()
    stored = {p.stem for p in receiver.stored("dev-1")}
    assert {b["archive"]["sha256"] for b in sub.payloads("batches")} == stored
    for msg in sub.payloads("segments"):
        files = {f["file"] for f in announced[msg["segment_id"]]["files"]}
        assert {k["file"] for k in msg["keyframes"]} == files and len(files) == 2
    assert not list((tmp_path / "state" / "upload" / "batches").glob("*.tar"))  # deleted once acknowledged
    assert json.loads((tmp_path / "state" / "upload" / "counters.json").read_text())["uploaded_batches"] == len(stored)


def shipped_version() -> str:
    """A config without model.dir runs the model shipped with the package."""
    from edge.model import load_model_directory, shipped_model_dir

    return load_model_directory(shipped_model_dir()).metadata.model_version
