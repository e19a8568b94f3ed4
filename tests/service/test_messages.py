"""The wire formats: topics and the versioned payloads the central ingest will validate."""

from __future__ import annotations

import json

import pytest

from edge.messages import (
    SEGMENT_SCHEMA,
    BatchFile,
    BatchManifest,
    BatchSegment,
    MessageError,
    MetricsMessage,
    SegmentMessage,
    StateMessage,
    Topics,
    decode,
    encode,
    parse_topic,
    subscription,
)
from edge.segments import PrimitiveLabel, Segment, uuid7


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
    msg = SegmentMessage.from_segment(seg, device_id="ws-07", site="plant-a", boot_id="b-1", seq=4).to_dict()
    assert msg["schema"] == SEGMENT_SCHEMA == "laps.segment/2"
    assert "primitive" not in msg  # a device without a primitive library sends none
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
    msg = SegmentMessage.from_segment(a_segment(), device_id="d", site="s", boot_id="b", seq=0).to_dict()
    assert SegmentMessage.from_json(encode(msg)).to_dict() == msg


def test_segment_message_v2_carries_the_devices_primitive_label_through_bytes():
    label = PrimitiveLabel("0190a1b2-run", 3, 0.4375)
    msg = SegmentMessage.from_segment(a_segment(primitive=label), device_id="d", site="s", boot_id="b", seq=0)
    wire = msg.to_dict()
    assert wire["primitive"] == {"library": "0190a1b2-run", "cluster": 3, "distance": 0.4375}
    back = SegmentMessage.from_json(encode(wire))
    assert back.primitive == label and back.to_dict() == wire


def test_a_laps_segment_1_message_is_still_accepted_without_a_label():
    wire = SegmentMessage.from_segment(a_segment(), device_id="d", site="s", boot_id="b", seq=0).to_dict()
    wire["schema"] = "laps.segment/1"
    msg = SegmentMessage.from_json(encode(wire))
    assert msg.primitive is None and msg.codes == (3, 17, 17, 1900)
    assert msg.to_dict()["schema"] == "laps.segment/2"  # the reader upgrades; nothing is lost


@pytest.mark.parametrize("primitive, match", [
    ({"library": "r", "cluster": -1, "distance": 0.1}, "primitive.cluster"),
    ({"library": "r", "cluster": 2, "distance": -0.5}, "primitive.distance"),
    ({"library": "r", "cluster": 2}, "primitive.distance is missing"),
    ({"cluster": 2, "distance": 0.1}, "primitive.library is missing"),
    ([2, 0.1], "field primitive"),
])
def test_validator_names_a_malformed_primitive_label(primitive, match):
    wire = SegmentMessage.from_segment(a_segment(), device_id="d", site="s", boot_id="b", seq=0).to_dict()
    wire["primitive"] = primitive
    with pytest.raises(MessageError, match=match):
        SegmentMessage.from_dict(wire)


def test_segment_message_without_upload_has_no_dangling_keyframe_references():
    msg = SegmentMessage.from_segment(a_segment(), device_id="d", site="s", boot_id="b", seq=0,
                                      keyframes=[]).to_dict()
    assert msg["keyframes"] == []


def test_validator_names_the_missing_field():
    msg = SegmentMessage.from_segment(a_segment(), device_id="d", site="s", boot_id="b", seq=0).to_dict()
    del msg["boot_id"]
    with pytest.raises(MessageError, match="field boot_id is missing"):
        SegmentMessage.from_dict(msg)


def test_validator_rejects_a_wrong_schema_version():
    msg = SegmentMessage.from_segment(a_segment(), device_id="d", site="s", boot_id="b", seq=0).to_dict()
    msg["schema"] = "laps.segment/3"
    with pytest.raises(MessageError, match="laps.segment/3"):
        SegmentMessage.from_dict(msg)


def test_validator_rejects_float_latents_in_codes():
    msg = SegmentMessage.from_segment(a_segment(), device_id="d", site="s", boot_id="b", seq=0).to_dict()
    msg["codes"] = [0.5, 1.2]
    with pytest.raises(MessageError, match="codes"):
        SegmentMessage.from_dict(msg)


def test_validator_rejects_end_before_start():
    msg = SegmentMessage.from_segment(a_segment(), device_id="d", site="s", boot_id="b", seq=0).to_dict()
    msg["end"]["frame"] = 10
    with pytest.raises(MessageError, match="before start.frame"):
        SegmentMessage.from_dict(msg)


def test_validator_rejects_non_utc_times():
    msg = SegmentMessage.from_segment(a_segment(start_utc="2026-01-02 03:04:05"), device_id="d", site="s", boot_id="b",
                                      seq=0).to_dict()
    with pytest.raises(MessageError, match="start.utc"):
        SegmentMessage.from_dict(msg)


def test_decode_rejects_non_objects():
    with pytest.raises(MessageError, match="JSON list"):
        decode(b"[1, 2]")
    with pytest.raises(MessageError, match="not JSON"):
        decode(b"\xff")


def test_state_message_validates_and_refuses_unknown_states():
    msg = StateMessage("online", device_id="d", site="s", boot_id="b", detail="camera ok")
    assert StateMessage.from_dict(json.loads(msg.to_json())).state == "online"
    with pytest.raises(MessageError, match="sleeping"):
        StateMessage("sleeping", device_id="d", site="s", boot_id="b")


def test_metrics_message_reports_outbox_evictions_and_providers():
    msg = MetricsMessage(device_id="d", site="s", boot_id="b", fps=9.87654, stage_latency_ms={"total": 12.3456},
                         outbox={"depth": 3, "evicted_total": 2, "bytes": 10}, model_version="m",
                         providers=["CPUExecutionProvider"], source_state="online", uptime_s=5,
                         frames_total=50, segments_total=2).to_dict()
    MetricsMessage.from_dict(msg)
    assert msg["outbox"]["evicted_total"] == 2 and msg["fps"] == 9.877
    assert msg["providers"] == ["CPUExecutionProvider"]


def test_batch_manifest_and_announcement_validate():
    sid = str(uuid7())
    built = BatchManifest(device_id="d", site="s", created="2026-01-01T00:00:00.000Z", segments=(
        BatchSegment(sid, (BatchFile(f"{sid}/keyframe_00000001.jpg", "keyframe", "a" * 64, 10, frame=1),)),))
    manifest = built.to_dict()
    BatchManifest.from_dict(manifest)
    ann = built.announced(archive_sha256="b" * 64, archive_size=2048, path="/v1/batches/d/" + "b" * 64).to_json()
    assert BatchManifest.from_json(ann).archive.path.endswith("b" * 64)
    manifest["segments"][0]["files"][0]["sha256"] = "xyz"
    with pytest.raises(MessageError, match="sha256"):
        BatchManifest.from_dict(manifest)


def _valid() -> dict:
    return SegmentMessage.from_segment(a_segment(), device_id="d", site="s", boot_id="b", seq=0).to_dict()


def test_a_time_that_matches_the_pattern_but_is_no_date_is_refused():
    msg = _valid()
    msg["start"]["utc"] = "2026-13-45T99:99:99Z"
    with pytest.raises(MessageError, match="start.utc .* is not a valid time"):
        SegmentMessage.from_dict(msg)


def test_nan_and_infinity_are_refused_when_decoding():
    text = encode(_valid()).decode().replace('"mean":0.25', '"mean":NaN')
    with pytest.raises(MessageError, match="NaN"):
        SegmentMessage.from_json(text)
    with pytest.raises(MessageError, match="Infinity"):
        SegmentMessage.from_json(encode(_valid()).decode().replace('"fps":10.0', '"fps":-Infinity'))


def test_caps_refuse_oversize_fields_without_echoing_them():
    from edge.messages import MAX_CODES, MAX_SEGMENT_PAYLOAD_BYTES, MAX_TEXT_CHARS

    msg = _valid()
    msg["model_version"] = "v" * (MAX_TEXT_CHARS + 1)
    with pytest.raises(MessageError, match="model_version has 129 characters") as err:
        SegmentMessage.from_dict(msg)
    assert len(str(err.value)) < 200
    msg = _valid()
    msg["codes"] = [1] * (MAX_CODES + 1)
    with pytest.raises(MessageError, match=f"at most {MAX_CODES}"):
        SegmentMessage.from_dict(msg)
    msg = _valid()
    msg["pad"] = "x" * MAX_SEGMENT_PAYLOAD_BYTES
    with pytest.raises(MessageError, match="exceeds the cap"):
        SegmentMessage.from_json(encode(msg)).to_dict()
    msg = _valid()
    msg["seq"] = 2**63
    with pytest.raises(MessageError, match="seq"):
        SegmentMessage.from_dict(msg)


def test_segment_ids_have_one_canonical_spelling():
    from edge.messages import canonical_segment_id

    sid = str(uuid7())
    assert canonical_segment_id(sid.upper()) == sid
    assert canonical_segment_id("{" + sid + "}") == sid
    with pytest.raises(MessageError, match="not a UUID"):
        canonical_segment_id("not-a-uuid")


def test_ack_message_round_trips_and_is_bounded():
    from edge.messages import MAX_ACK_IDS, AckMessage, QuarantinedSegment

    ids = [str(uuid7()) for _ in range(3)]
    msg = AckMessage(site="s", device_id="d", segment_ids=ids[:2], quarantined=[QuarantinedSegment(ids[2], "bad time")])
    back = AckMessage.from_json(msg.to_json()).to_dict()
    assert back["segment_ids"] == ids[:2]
    assert back["quarantined"] == [{"segment_id": ids[2], "reason": "bad time"}]
    with pytest.raises(MessageError, match=f"at most {MAX_ACK_IDS}"):
        AckMessage(site="s", device_id="d", segment_ids=ids * MAX_ACK_IDS)
    assert Topics("s", "d").acks == "laps/v1/s/d/acks"
    assert parse_topic("laps/v1/s/d/acks") == ("s", "d", "acks")


def test_every_message_class_reads_back_what_it_writes():
    from edge.messages import AckMessage, QuarantinedSegment
    from edge.ota.messages import DesiredMessage, StatusMessage

    sid = str(uuid7())
    messages = [
        SegmentMessage.from_segment(a_segment(), device_id="d", site="s", boot_id="b", seq=1),
        StateMessage("online", device_id="d", site="s", boot_id="b", detail="ok", model_version="m", software="x"),
        MetricsMessage(device_id="d", site="s", boot_id="b", fps=9.5, stage_latency_ms={"total": 1.0},
                       outbox={"depth": 0, "evicted_total": 0}, model_version="m", providers=["cpu"],
                       source_state="online", uptime_s=1, frames_total=10, segments_total=1, disk={"at_floor": False}),
        AckMessage(site="s", device_id="d", segment_ids=[sid], quarantined=[QuarantinedSegment(sid, "bad")]),
        BatchManifest(device_id="d", site="s", created="2026-01-01T00:00:00.000Z", segments=(
            BatchSegment(sid, (BatchFile(f"{sid}/clip.avi", "clip", "c" * 64, 99),)),)),
        DesiredMessage(3, "https://central/bundles/3/", "d" * 64, rollout_id="r"),
        StatusMessage("downloading", device_id="d", site="s", boot_id="b", version=3, installed=2, progress=0.5,
                      timings_s={"download": 1.25}),
    ]
    for msg in messages:
        assert type(msg).from_json(msg.to_json()) == msg, type(msg).__name__


def test_fields_that_older_writers_left_out_still_load():
    state = StateMessage("online", device_id="d", site="s", boot_id="b").to_dict()
    del state["model_version"], state["software"]
    assert StateMessage.from_dict(state).model_version == ""
    metrics = MetricsMessage(device_id="d", site="s", boot_id="b", fps=1, stage_latency_ms={}, outbox={"depth": 0,
                             "evicted_total": 0}, model_version="m", providers=[], source_state="online",
                             uptime_s=1, frames_total=1, segments_total=0).to_dict()
    del metrics["disk"]  # written since the free-space floor only
    assert MetricsMessage.from_dict(metrics).disk == {}


def test_the_state_reader_checks_every_field_the_writer_writes():
    state = StateMessage("online", device_id="d", site="s", boot_id="b").to_dict()
    state["software"] = 7
    with pytest.raises(MessageError, match="field software = 7"):
        StateMessage.from_dict(state)


def test_a_manifest_keyframe_without_its_frame_index_is_refused():
    sid = str(uuid7())
    manifest = BatchManifest(device_id="d", site="s", created="2026-01-01T00:00:00.000Z", segments=(
        BatchSegment(sid, (BatchFile(f"{sid}/keyframe_00000001.jpg", "keyframe", "a" * 64, 10, frame=1),)),)).to_dict()
    del manifest["segments"][0]["files"][0]["frame"]
    with pytest.raises(MessageError, match=r"segments\[0\].files\[0\].frame is missing"):
        BatchManifest.from_dict(manifest)


def test_ota_messages_refuse_a_bad_field_when_built_and_when_read():
    from edge.ota.messages import DesiredMessage, StatusMessage

    with pytest.raises(MessageError, match="url"):
        DesiredMessage(2, "ftp://x", "a" * 64)
    status = StatusMessage("committed", device_id="d", site="s", boot_id="b", version=2, installed=2).to_dict()
    status["progress"] = 7
    with pytest.raises(MessageError, match="progress"):
        StatusMessage.from_dict(status)
