"""`laps-edge tail`: subscribes and prints what a device publishes, one readable line each."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edge.cli.tail import format_message
from edge.config import load_config
from edge.messages import AckMessage, MetricsMessage, QuarantinedSegment, SegmentMessage, StateMessage
from edge.segments import Segment, uuid7
from edge.device_runtime import DeviceRuntime
from tests.service.publisher import synthetic_segments

from .helpers import wait_until, write_config

LAPS_EDGE = str(Path(sys.executable).parent / "laps-edge")


def test_segment_line_shows_span_codes_energy_and_keyframes():
    seg = Segment(segment_id=str(uuid7()), start_frame=10, end_frame=40, start_s=1, end_s=4, fps=10.0,
                  start_utc="2026-01-01T00:00:01.000Z", end_utc="2026-01-01T00:00:04.000Z", codes=[1, 2, 3],
                  energy_mean=0.5, energy_max=1.5, keyframes=[10, 25], model_version="m7")
    line = format_message("laps/v1/s/d/segments",
                          SegmentMessage.from_segment(seg, device_id="d", site="s", boot_id="b", seq=3).to_json())
    assert "s/d segment" in line and "seq 3" in line and "frames 10-40 (3.0 s at 10 fps)" in line
    assert "codes 3" in line and "energy mean 0.5 max 1.5" in line and "keyframes 2" in line


def test_segment_line_shows_the_devices_primitive_label():
    from edge.segments import PrimitiveLabel

    seg = Segment(segment_id=str(uuid7()), start_frame=10, end_frame=40, start_s=1, end_s=4, fps=10.0,
                  start_utc="2026-01-01T00:00:01.000Z", end_utc="2026-01-01T00:00:04.000Z", codes=[1, 2, 3],
                  model_version="m7", primitive=PrimitiveLabel("0190a1b2-c3d4", 4, 0.3125))
    line = format_message("laps/v1/s/d/segments",
                          SegmentMessage.from_segment(seg, device_id="d", site="s", boot_id="b", seq=3).to_json())
    assert "primitive 4 (distance 0.312, library 0190a1b2-c3d4)" in line


def test_state_line_is_upper_case_and_marks_retained():
    msg = StateMessage("source_lost", device_id="d", site="s", boot_id="b", detail="camera /dev/video0 unplugged")
    line = format_message("laps/v1/s/d/state", msg.to_json(), retained=True)
    assert "state SOURCE_LOST (retained)" in line and "unplugged" in line


def test_metrics_line_shows_fps_latency_outbox_and_evictions():
    msg = MetricsMessage(device_id="d", site="s", boot_id="b", fps=9.9, stage_latency_ms={"track": 4.0, "total": 6.5},
                          outbox={"depth": 7, "evicted_total": 2}, model_version="m7", providers=["cpu"],
                          source_state="online", uptime_s=1, frames_total=1, segments_total=0)
    line = format_message("laps/v1/s/d/metrics", msg.to_json())
    assert "9.9 fps" in line and "latency 6.5 ms (track 4.0)" in line and "outbox 7 (evicted 2)" in line


def test_ack_line_counts_committed_segments_and_names_quarantined_ones():
    sid = str(uuid7())
    msg = AckMessage(site="s", device_id="d", segment_ids=[str(uuid7())], quarantined=[QuarantinedSegment(sid, "bad time")])
    line = format_message("laps/v1/s/d/acks", msg.to_json())
    assert "ack from central: 1 segment(s) committed" in line and f"QUARANTINED {sid[:13]}: bad time" in line


def test_invalid_payload_is_flagged_not_fatal():
    assert "INVALID" in format_message("laps/v1/s/d/segments", b'{"schema": "laps.segment/1"}')
    assert "INVALID" in format_message("laps/v1/s/d/state", b"not json")


@pytest.mark.broker
def test_tail_prints_what_a_device_publishes(broker, tmp_path):
    cfg_path = write_config(tmp_path / "edge.toml", port=broker.port, state_dir=tmp_path / "state")
    rt = DeviceRuntime(load_config(cfg_path))
    rt.start(model_version="synthetic", providers=[])
    try:
        assert wait_until(lambda: rt.link.connected, 5)
        proc = subprocess.Popen([LAPS_EDGE, "tail", "--config", str(cfg_path), "--count", "3", "--timeout", "20"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # once tail has subscribed, the retained birth arrives first; then two segments
        assert wait_until(lambda: "Received SUBSCRIBE from laps-edge-tail" in broker.log_text(), 15)
        for seg in synthetic_segments(2):
            rt.emit(seg)
        out, err = proc.communicate(timeout=30)
    finally:
        rt.close()
    assert proc.returncode == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 3
    assert "state ONLINE (retained)" in lines[0]
    assert all("segment" in line for line in lines[1:])


@pytest.mark.broker
def test_tail_times_out_with_status_1(broker):
    proc = subprocess.run([LAPS_EDGE, "tail", "--host", "127.0.0.1", "--port", str(broker.port), "--count", "1",
                           "--timeout", "1"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1 and "timed out" in proc.stderr


def test_tail_unreachable_broker_is_one_line_error():
    proc = subprocess.run([LAPS_EDGE, "tail", "--host", "127.0.0.1", "--port", "1", "--count", "1"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: cannot reach the MQTT broker 127.0.0.1:1") and proc.stderr.count("\n") == 1
