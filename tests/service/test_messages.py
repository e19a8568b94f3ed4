"""The wire formats: topics and the versioned payloads the central ingest will validate."""

from __future__ import annotations

import json

import pytest

from edge.messages import (
    SEGMENT_SCHEMA,
    MessageError,
    Topics,
    batch_announcement,
    batch_manifest,
    decode,
    encode,
    metrics_message,
    parse_segment_message,
    parse_topic,
    segment_message,
    state_message,
    subscription,
    validate_batch_manifest,
    validate_metrics_message,
    validate_segment_message,
    validate_state_message,
)
from edge.segments import Segment, uuid7


def a_segment(**kw) -> Segment:
    base = dict(segment_id=str(uuid7()), start_frame=30, end_frame=55, start_s=3.0, end_s=5.5, fps=10.0,
                start_utc="2026-01-02T03:04:05.000Z", end_utc="2026-01-02T03:04:07.500Z",
                codes=[3, 17, 17, 1900], energy_mean=0.25, energy_max=0.9, keyframes=[30, 42],
                model_version="tok-7")
    base.update(kw)
    return Segment(**base)


def test_topics_follow_the_design_layout():
    t = Topics("plant-a", "ws-07")
    assert t.segments == "laps/v1/plant-a/ws-07/segments"
    assert t.state == "laps/v1/plant-a/ws-07/state"
    assert t.batches == "laps/v1/plant-a/ws-07/batches"
    assert t.metrics == "laps/v1/plant-a/ws-07/metrics"
    assert t.ota_desired == "laps/v1/plant-a/ws-07/ota/desired"
    assert t.ota_status == "laps/v1/plant-a/ws-07/ota/status"
    assert subscription("plant-a") == "laps/v1/plant-a/+/#"


def test_parse_topic_splits_site_device_and_kind():
    assert parse_topic("laps/v1/s/d/ota/status") == ("s", "d", "ota/status")
    with pytest.raises(MessageError, match="unknown kind"):
        parse_topic("laps/v1/s/d/bogus")
    with pytest.raises(MessageError):
        parse_topic("other/v1/s/d/segments")


def test_segment_message_carries_every_design_field():
    seg = a_segment()
    msg = segment_message(seg, device_id="ws-07", site="plant-a", boot_id="b-1", seq=4)
    assert msg["schema"] == SEGMENT_SCHEMA == "laps.segment/1"
    assert msg["segment_id"] == seg.segment_id
    assert (msg["device_id"], msg["site"], msg["boot_id"], msg["seq"]) == ("ws-07", "plant-a", "b-1", 4)
    assert msg["model_version"] == "tok-7"
    assert msg["start"] == {"utc": seg.start_utc, "frame": 30}
    assert msg["end"] == {"utc": seg.end_utc, "frame": 55}
    assert msg["fps"] == 10.0 and msg["codes"] == [3, 17, 17, 1900]
    assert msg["energy"] == {"mean": 0.25, "max": 0.9}
    assert [k["frame"] for k in msg["keyframes"]] == [30, 42]
    assert msg["keyframes"][0]["file"] == f"{seg.segment_id}/keyframe_00000030.jpg"


def test_segment_message_round_trips_through_bytes_and_validation():
    msg = segment_message(a_segment(), device_id="d", site="s", boot_id="b", seq=0)
    assert parse_segment_message(encode(msg)) == msg


def test_segment_message_without_upload_has_no_dangling_keyframe_references():
    msg = segment_message(a_segment(), device_id="d", site="s", boot_id="b", seq=0, keyframes=[])
    assert msg["keyframes"] == []


def test_validator_names_the_missing_field():
    msg = segment_message(a_segment(), device_id="d", site="s", boot_id="b", seq=0)
    del msg["boot_id"]
    with pytest.raises(MessageError, match="field boot_id is missing"):
        validate_segment_message(msg)


def test_validator_rejects_a_wrong_schema_version():
    msg = segment_message(a_segment(), device_id="d", site="s", boot_id="b", seq=0)
    msg["schema"] = "laps.segment/2"
    with pytest.raises(MessageError, match="laps.segment/2"):
        validate_segment_message(msg)


def test_validator_rejects_float_latents_in_codes():
    msg = segment_message(a_segment(), device_id="d", site="s", boot_id="b", seq=0)
    msg["codes"] = [0.5, 1.2]
    with pytest.raises(MessageError, match="codes"):
        validate_segment_message(msg)


def test_validator_rejects_end_before_start():
    msg = segment_message(a_segment(), device_id="d", site="s", boot_id="b", seq=0)
    msg["end"]["frame"] = 10
    with pytest.raises(MessageError, match="before start.frame"):
        validate_segment_message(msg)


def test_validator_rejects_non_utc_times():
    msg = segment_message(a_segment(start_utc="2026-01-02 03:04:05"), device_id="d", site="s", boot_id="b", seq=0)
    with pytest.raises(MessageError, match="start.utc"):
        validate_segment_message(msg)


def test_decode_rejects_non_objects():
    with pytest.raises(MessageError, match="JSON list"):
        decode(b"[1, 2]")
    with pytest.raises(MessageError, match="not JSON"):
        decode(b"\xff")


def test_state_message_validates_and_refuses_unknown_states():
    msg = state_message("online", device_id="d", site="s", boot_id="b", detail="camera ok")
    assert validate_state_message(json.loads(encode(msg)))["state"] == "online"
    with pytest.raises(MessageError, match="sleeping"):
        state_message("sleeping", device_id="d", site="s", boot_id="b")


def test_metrics_message_reports_outbox_evictions_and_providers():
    msg = metrics_message(device_id="d", site="s", boot_id="b", fps=9.87654, stage_latency_ms={"total": 12.3456},
                          outbox={"depth": 3, "evicted_total": 2, "bytes": 10}, model_version="m",
                          providers=["CPUExecutionProvider"], source_state="online", uptime_s=5,
                          frames_total=50, segments_total=2)
    validate_metrics_message(msg)
    assert msg["outbox"]["evicted_total"] == 2 and msg["fps"] == 9.877
    assert msg["providers"] == ["CPUExecutionProvider"]


def test_batch_manifest_and_announcement_validate():
    sid = str(uuid7())
    manifest = batch_manifest(device_id="d", site="s", created="2026-01-01T00:00:00.000Z", segments=[
        {"segment_id": sid, "files": [{"file": f"{sid}/keyframe_00000001.jpg", "kind": "keyframe", "frame": 1,
                                       "sha256": "a" * 64, "size": 10}]}])
    validate_batch_manifest(manifest)
    ann = batch_announcement(manifest, archive_sha256="b" * 64, archive_size=2048, path="/v1/batches/d/" + "b" * 64)
    assert validate_batch_manifest(ann)["archive"]["path"].endswith("b" * 64)
    manifest["segments"][0]["files"][0]["sha256"] = "xyz"
    with pytest.raises(MessageError, match="sha256"):
        validate_batch_manifest(manifest)
