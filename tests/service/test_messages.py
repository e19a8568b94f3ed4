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


def _valid() -> dict:
    return segment_message(a_segment(), device_id="d", site="s", boot_id="b", seq=0)


def test_a_time_that_matches_the_pattern_but_is_no_date_is_refused():
    msg = _valid()
    msg["start"]["utc"] = "2026-13-45T99:99:99Z"
    with pytest.raises(MessageError, match="start.utc .* is not a valid time"):
        validate_segment_message(msg)


def test_nan_and_infinity_are_refused_when_decoding():
    text = encode(_valid()).decode().replace('"mean":0.25', '"mean":NaN')
    with pytest.raises(MessageError, match="NaN"):
        parse_segment_message(text)
    with pytest.raises(MessageError, match="Infinity"):
        parse_segment_message(encode(_valid()).decode().replace('"fps":10.0', '"fps":-Infinity'))


def test_caps_refuse_oversize_fields_without_echoing_them():
    from edge.messages import MAX_CODES, MAX_SEGMENT_PAYLOAD_BYTES, MAX_TEXT_CHARS

    msg = _valid()
    msg["model_version"] = "v" * (MAX_TEXT_CHARS + 1)
    with pytest.raises(MessageError, match="model_version has 129 characters") as err:
        validate_segment_message(msg)
    assert len(str(err.value)) < 200
    msg = _valid()
    msg["codes"] = [1] * (MAX_CODES + 1)
    with pytest.raises(MessageError, match=f"at most {MAX_CODES}"):
        validate_segment_message(msg)
    msg = _valid()
    msg["pad"] = "x" * MAX_SEGMENT_PAYLOAD_BYTES
    with pytest.raises(MessageError, match="exceeds the cap"):
        parse_segment_message(encode(msg))
    msg = _valid()
    msg["seq"] = 2**63
    with pytest.raises(MessageError, match="seq"):
        validate_segment_message(msg)


def test_segment_ids_have_one_canonical_spelling():
    from edge.messages import canonical_segment_id

    sid = str(uuid7())
    assert canonical_segment_id(sid.upper()) == sid
    assert canonical_segment_id("{" + sid + "}") == sid
    with pytest.raises(MessageError, match="not a UUID"):
        canonical_segment_id("not-a-uuid")


def test_ack_message_round_trips_and_is_bounded():
    from edge.messages import MAX_ACK_IDS, ack_message, parse_ack_message

    ids = [str(uuid7()) for _ in range(3)]
    msg = ack_message(site="s", device_id="d", segment_ids=ids[:2], quarantined=[(ids[2], "bad time")])
    back = parse_ack_message(encode(msg))
    assert back["segment_ids"] == ids[:2]
    assert back["quarantined"] == [{"segment_id": ids[2], "reason": "bad time"}]
    with pytest.raises(MessageError, match=f"at most {MAX_ACK_IDS}"):
        ack_message(site="s", device_id="d", segment_ids=ids * MAX_ACK_IDS)
    assert Topics("s", "d").acks == "laps/v1/s/d/acks"
    assert parse_topic("laps/v1/s/d/acks") == ("s", "d", "acks")
