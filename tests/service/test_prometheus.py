"""The device service's Prometheus endpoint: a real `laps-edge run` on a paced video with a real
broker, scraped over HTTP and parsed with prometheus-client's own parser."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from .helpers import free_port, wait_until, write_config, write_video

LAPS_EDGE = str(Path(sys.executable).parent / "laps-edge")


def scrape(port: int) -> dict[str, list]:
    """{family name: [samples]} of one scrape of http://127.0.0.1:<port>/metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {fam.name: fam.samples for fam in text_string_to_metric_families(text)}


def value(families: dict, sample_name: str, **labels: str) -> float:
    for fam in families.values():
        for s in fam:
            if s.name == sample_name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    raise KeyError(f"{sample_name} {labels} not exposed")


def _scrape_or_none(port: int) -> dict | None:
    try:
        return scrape(port)
    except OSError:
        return None


@pytest.mark.broker
def test_a_running_device_exposes_fps_latency_outbox_source_and_ota_state(broker, tmp_path):
    port = free_port()
    video = write_video(tmp_path / "station.avi", seconds=60)
    cfg = write_config(tmp_path / "edge.toml", port=broker.port, state_dir=tmp_path / "state", source=str(video),
                       metrics_interval=0.5)
    text = cfg.read_text().replace("interval_s = 0.5\n", f"interval_s = 0.5\nprometheus_port = {port}\n", 1)
    cfg.write_text(text.replace("reconnect_max_s = 1.0\n\n[mqtt]", "reconnect_max_s = 1.0\npace = true\n\n[mqtt]", 1))
    proc = subprocess.Popen([LAPS_EDGE, "run", "--config", str(cfg)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        # Ready once frames flow and one metrics interval has closed with latency in it.
        def ready() -> bool:
            fams = _scrape_or_none(port)
            return bool(fams and fams.get("laps_edge_stage_latency_max_seconds")
                        and value(fams, "laps_edge_frames_per_second") > 0)

        assert wait_until(ready, 60), proc.stderr.read() if proc.poll() is not None else "no scrape"
        fams = scrape(port)
    finally:
        os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-2000:]

    assert value(fams, "laps_edge_info", device="dev-1", site="test-site") == 1
    assert value(fams, "laps_edge_frames_total") > 0
    assert 3.0 <= value(fams, "laps_edge_frames_per_second") <= 12.0  # paced at the model's 10 fps
    for stage in ("track", "total"):
        lo = value(fams, "laps_edge_stage_latency_min_seconds", stage=stage)
        mean = value(fams, "laps_edge_stage_latency_mean_seconds", stage=stage)
        hi = value(fams, "laps_edge_stage_latency_max_seconds", stage=stage)
        assert 0 < lo <= mean <= hi < 5.0  # seconds, not milliseconds
        assert value(fams, "laps_edge_stage_latency_seconds_count", stage=stage) >= 1
    assert value(fams, "laps_edge_outbox_messages") >= 0
    assert value(fams, "laps_edge_outbox_evicted_messages_total") == 0
    assert value(fams, "laps_edge_source_state", laps_edge_source_state="online") == 1
    assert value(fams, "laps_edge_source_state", laps_edge_source_state="source_lost") == 0
    assert value(fams, "laps_edge_source_reconnects_total") == 0
    assert value(fams, "laps_edge_mqtt_connected") == 1
    assert value(fams, "laps_edge_mqtt_connects_total") >= 1
    assert value(fams, "laps_edge_ota_enabled") == 0
    assert value(fams, "laps_edge_ota_state", laps_edge_ota_state="idle") == 1
    # Counters are typed as counters, so rate() works on them.
    assert fams["laps_edge_frames"][0].name == "laps_edge_frames_total"
    # The port is freed on a clean stop (SO_REUSEADDR: our scrapes leave TIME_WAIT entries,
    # which do not hold the port; a listener would).
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen()


def test_a_port_already_taken_is_a_one_line_error_and_exit_2(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        video = write_video(tmp_path / "station.avi", seconds=2)
        cfg = write_config(tmp_path / "edge.toml", port=free_port(), state_dir=tmp_path / "state", source=str(video),
                           extra='[model]\ndir = "none"\n')
        cfg.write_text(cfg.read_text().replace("interval_s = 0.5\n", f"interval_s = 0.5\nprometheus_port = {port}\n"))
        proc = subprocess.run([LAPS_EDGE, "run", "--config", str(cfg)], capture_output=True,
                              text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and f"prometheus_port {port}" in lines[0] and "cannot be bound" in lines[0]
    assert "Traceback" not in proc.stderr
