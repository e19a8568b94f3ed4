"""The versioned wire formats between a device and the fleet side, in one place.

The device builds these; the central ingest (`central/`) imports the same module to validate
and parse them, so the schema cannot drift between the two ends. A change to a payload's
shape bumps its schema string (`laps.segment/1` -> `laps.segment/2`).

Topics (DESIGN.md): `laps/v1/<site>/<device>/<kind>` with kind one of
    segments   (QoS 1, through the outbox)        laps.segment/1
    acks       (QoS 1, written by central)        laps.ack/1   (segments central has committed)
    state      (QoS 1, retained; birth + last will) laps.state/1
    batches    (QoS 1, through the outbox)        laps.batch/1  (upload manifests)
    metrics    (QoS 0, periodic)                  laps.metrics/1
    ota/desired (retained, written by central), ota/status (device's answer)

Payloads are compact UTF-8 JSON objects. Times are ISO-8601 UTC with a 'Z' suffix.

End-to-end delivery: central publishes a `laps.ack/1` on the device's `.../acks` topic once the
segments it names are committed (stored, already stored, or quarantined), and the device keeps
each segment in its outbox until then (`edge.outbox`, `edge.mqtt_link`). The broker's PUBACK
only says the broker has the message, not that central will ever see it.

Caps (a segment message beyond any of them is refused by `parse_segment_message`, and the
central ingest quarantines it): MAX_SEGMENT_PAYLOAD_BYTES, MAX_CODES, MAX_TEXT_CHARS for
model_version and boot_id, MAX_ID_CHARS for site and device_id, MAX_KEYFRAMES; numbers must
be finite (NaN and Infinity are refused), integers fit a signed 64-bit column.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable

from edge.errors import LapsError
from edge.segments import Segment

TOPIC_ROOT = "laps/v1"
SEGMENT_SCHEMA = "laps.segment/1"
STATE_SCHEMA = "laps.state/1"
METRICS_SCHEMA = "laps.metrics/1"
BATCH_SCHEMA = "laps.batch/1"
ACK_SCHEMA = "laps.ack/1"

#: message kinds, i.e. the topic suffixes after `laps/v1/<site>/<device>/`
KINDS = ("segments", "acks", "state", "batches", "metrics", "ota/desired", "ota/status")

#: Caps of a `laps.segment/1` message. A segment of one hour at 10 fps has 36,000 codes and
#: encodes to about 200 KB; a longer one should be ended by the kernel's `max_steps`.
MAX_SEGMENT_PAYLOAD_BYTES = 512 * 1024
MAX_CODES = 36_000
MAX_KEYFRAMES = 256
MAX_TEXT_CHARS = 128   # model_version, boot_id, keyframe file names
MAX_ID_CHARS = 64      # site and device_id (they are topic levels, see edge.config)
#: codes are stored as uint32 centrally; a larger value is no FSQ code of any sensible codebook
MAX_CODE = 2**32 - 1
_MAX_INT64 = 2**63 - 1
#: an ack names at most this many segments (a bigger commit sends several)
MAX_ACK_IDS = 1000
#: device states on `.../state`
STATES = ("online", "source_lost", "offline", "stopped")

_ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class MessageError(LapsError):
    """A payload does not follow its schema (names the field and what was expected)."""


@dataclass(frozen=True)
class Topics:
    """The topic names of one device."""

    site: str
    device: str

    def _t(self, kind: str) -> str:
        return f"{TOPIC_ROOT}/{self.site}/{self.device}/{kind}"

    @property
    def segments(self) -> str:
        return self._t("segments")

    @property
    def state(self) -> str:
        return self._t("state")

    @property
    def acks(self) -> str:
        return self._t("acks")

    @property
    def batches(self) -> str:
        return self._t("batches")

    @property
    def metrics(self) -> str:
        return self._t("metrics")

    @property
    def ota_desired(self) -> str:
        return self._t("ota/desired")

    @property
    def ota_status(self) -> str:
        return self._t("ota/status")


def subscription(site: str = "+", device: str = "+", kind: str = "#") -> str:
    """A topic filter for subscribers: every kind of every device by default."""
    return f"{TOPIC_ROOT}/{site}/{device}/{kind}"


def parse_topic(topic: str) -> tuple[str, str, str]:
    """Split `laps/v1/<site>/<device>/<kind>` into (site, device, kind); MessageError otherwise."""
    parts = topic.split("/")
    if len(parts) < 5 or "/".join(parts[:2]) != TOPIC_ROOT:
        raise MessageError(f"topic {_show(topic)} is not laps/v1/<site>/<device>/<kind>")
    kind = "/".join(parts[4:])
    if kind not in KINDS:
        raise MessageError(f"topic {_show(topic)} has unknown kind {_show(kind)}; expected one of {', '.join(KINDS)}")
    return parts[2], parts[3], kind


def utc_now_iso() -> str:
    """Now as ISO-8601 UTC with millisecond precision and a 'Z' suffix."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def encode(message: dict) -> bytes:
    """Compact UTF-8 JSON bytes of a message."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def decode(payload: bytes | str) -> dict:
    """Parse a payload into a dict; MessageError if it is not a JSON object. NaN and Infinity
    (which Python's json would accept) are refused: no store or model can use them."""
    try:
        obj = json.loads(payload, parse_constant=_refuse_constant)
    except MessageError:
        raise
    except (ValueError, UnicodeDecodeError, RecursionError) as err:
        raise MessageError(f"payload is not JSON ({_clip(str(err))})") from None
    if not isinstance(obj, dict):
        raise MessageError(f"payload is a JSON {type(obj).__name__}, expected an object")
    return obj


# -- segments -----------------------------------------------------------------------------------
def keyframe_file(segment_id: str, frame: int) -> str:
    """Path of a keyframe JPEG inside a batch archive (the reference a segment message carries)."""
    return f"{segment_id}/keyframe_{frame:08d}.jpg"


def clip_file(segment_id: str) -> str:
    """Path of a segment's clip (MJPEG AVI) inside a batch archive."""
    return f"{segment_id}/clip.avi"


def segment_message(
    segment: Segment,
    *,
    device_id: str,
    site: str,
    boot_id: str,
    seq: int,
    model_version: str | None = None,
    keyframes: Iterable[int] | None = None,
) -> dict:
    """The `laps.segment/1` message for a finished segment.

    seq: position of this segment in this boot's stream (0, 1, ...); with boot_id it lets the
    receiver see gaps. keyframes: frame indices whose JPEGs will travel in a batch (default:
    the segment's own keyframes); each becomes {"frame", "file"} where `file` is the path
    inside whichever batch lists this segment id (see `batch_manifest`). Pass [] when no
    upload is configured, so no reference dangles.
    """
    frames = list(segment.keyframes if keyframes is None else keyframes)
    return {
        "schema": SEGMENT_SCHEMA,
        "segment_id": segment.segment_id,
        "device_id": device_id,
        "site": site,
        "model_version": model_version if model_version is not None else segment.model_version,
        "boot_id": boot_id,
        "seq": int(seq),
        "start": {"utc": segment.start_utc, "frame": int(segment.start_frame)},
        "end": {"utc": segment.end_utc, "frame": int(segment.end_frame)},
        "fps": float(segment.fps),
        "codes": [int(c) for c in segment.codes],
        "energy": {"mean": float(segment.energy_mean), "max": float(segment.energy_max)},
        "keyframes": [{"frame": int(f), "file": keyframe_file(segment.segment_id, int(f))} for f in frames],
    }


def validate_segment_message(msg: dict) -> dict:
    """Check a `laps.segment/1` message field by field, caps included; returns it, or raises
    MessageError naming the field. Everything the central store needs to hold the message is
    checked here, so a message that passes cannot fail at commit for its content."""
    _expect(msg, "schema", str, SEGMENT_SCHEMA)
    if msg["schema"] != SEGMENT_SCHEMA:
        raise MessageError(f"schema {_show(msg['schema'])} is not {SEGMENT_SCHEMA!r}")
    _uuid(msg, "segment_id")
    for key, cap in (("device_id", MAX_ID_CHARS), ("site", MAX_ID_CHARS), ("model_version", MAX_TEXT_CHARS),
                     ("boot_id", MAX_TEXT_CHARS)):
        _text(msg, key, cap)
    _int(msg, "seq", 0)
    for key in ("start", "end"):
        span = _expect(msg, key, dict, '{"utc": ..., "frame": ...}')
        _time(span, "utc", prefix=f"{key}.")
        _int(span, "frame", 0, prefix=f"{key}.")
    if msg["end"]["frame"] < msg["start"]["frame"]:
        raise MessageError(f"end.frame {msg['end']['frame']} is before start.frame {msg['start']['frame']}")
    fps = _number(msg, "fps")
    if not 0 < fps <= 1000:
        raise MessageError(f"field fps = {fps!r}; expected a number > 0 and <= 1000")
    codes = _expect(msg, "codes", list, "a list of integers")
    if len(codes) > MAX_CODES:
        raise MessageError(f"codes has {len(codes)} entries; at most {MAX_CODES} are accepted "
                           "(end long segments earlier with the kernel's max_steps)")
    if not all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= MAX_CODE for c in codes):
        raise MessageError(f"codes must be a list of integers from 0 to {MAX_CODE}")
    energy = _expect(msg, "energy", dict, '{"mean": ..., "max": ...}')
    for key in ("mean", "max"):
        _number(energy, key, prefix="energy.")
    keyframes = _expect(msg, "keyframes", list, "a list")
    if len(keyframes) > MAX_KEYFRAMES:
        raise MessageError(f"keyframes has {len(keyframes)} entries; at most {MAX_KEYFRAMES} are accepted")
    for i, ref in enumerate(keyframes):
        if not isinstance(ref, dict):
            raise MessageError(f"keyframes[{i}] must be an object with frame and file")
        _int(ref, "frame", 0, prefix=f"keyframes[{i}].")
        _text(ref, "file", MAX_TEXT_CHARS, prefix=f"keyframes[{i}].")
    return msg


def parse_segment_message(payload: bytes | str) -> dict:
    """Decode and validate a segment payload (what the ingest calls per message); a payload
    over MAX_SEGMENT_PAYLOAD_BYTES is refused before it is parsed."""
    size = len(payload.encode("utf-8") if isinstance(payload, str) else payload)
    if size > MAX_SEGMENT_PAYLOAD_BYTES:
        raise MessageError(f"payload of {size} bytes exceeds the cap of {MAX_SEGMENT_PAYLOAD_BYTES} bytes "
                           "for a segment message")
    return validate_segment_message(decode(payload))


def canonical_segment_id(value: str) -> str:
    """The one spelling of a segment id: lower-case hex with hyphens, no braces or `urn:uuid:`
    (`{0190A...}` and `0190a...` are the same segment). MessageError if it is no UUID."""
    try:
        return str(uuid.UUID(value))
    except (ValueError, TypeError, AttributeError):
        raise MessageError(f"segment id {_show(value)} is not a UUID") from None


# -- acknowledgements (central -> device) -------------------------------------------------------------
def ack_message(*, site: str, device_id: str, segment_ids: Iterable[str],
                quarantined: Iterable[tuple[str, str]] = ()) -> dict:
    """The `laps.ack/1` message central publishes on `.../acks` after a commit.

    segment_ids: segments now committed (stored now or already stored before). quarantined:
    (segment_id, reason) of messages central refused for good; the device stops re-sending
    those too and logs the reason. At most MAX_ACK_IDS ids in all (send several messages)."""
    ids = [str(i) for i in segment_ids]
    bad = [{"segment_id": str(i), "reason": _clip(str(r), 300)} for i, r in quarantined]
    if len(ids) + len(bad) > MAX_ACK_IDS:
        raise MessageError(f"an ack names at most {MAX_ACK_IDS} segments, got {len(ids) + len(bad)}")
    return {"schema": ACK_SCHEMA, "site": site, "device_id": device_id, "time": utc_now_iso(),
            "segment_ids": ids, "quarantined": bad}


def parse_ack_message(payload: bytes | str) -> dict:
    """Decode and validate a `laps.ack/1` payload (what the device calls per ack)."""
    msg = decode(payload)
    _expect(msg, "schema", str, ACK_SCHEMA)
    if msg["schema"] != ACK_SCHEMA:
        raise MessageError(f"schema {_show(msg['schema'])} is not {ACK_SCHEMA!r}")
    for key in ("site", "device_id"):
        _text(msg, key, MAX_ID_CHARS)
    ids = _expect(msg, "segment_ids", list, "a list of segment ids")
    bad = msg.get("quarantined", [])
    if not isinstance(bad, list) or len(ids) + len(bad) > MAX_ACK_IDS:
        raise MessageError(f"an ack names at most {MAX_ACK_IDS} segments in segment_ids and quarantined lists")
    for i, sid in enumerate(ids):
        if not isinstance(sid, str):
            raise MessageError(f"segment_ids[{i}] = {_show(sid)}; expected a segment id")
    for i, entry in enumerate(bad):
        _text(entry, "segment_id", MAX_TEXT_CHARS, prefix=f"quarantined[{i}].")
        _expect(entry, "reason", str, "a string", prefix=f"quarantined[{i}].")
    msg["quarantined"] = bad
    return msg


# -- state ------------------------------------------------------------------------------------------
def state_message(
    state: str,
    *,
    device_id: str,
    site: str,
    boot_id: str,
    detail: str = "",
    model_version: str = "",
    software: str = "",
    time_utc: str | None = None,
) -> dict:
    """The retained `laps.state/1` message: online (birth), source_lost, offline (will), stopped."""
    if state not in STATES:
        raise MessageError(f"state {state!r} is not one of {', '.join(STATES)}")
    return {
        "schema": STATE_SCHEMA,
        "device_id": device_id,
        "site": site,
        "boot_id": boot_id,
        "state": state,
        "detail": detail,
        "model_version": model_version,
        "software": software,
        "time": time_utc or utc_now_iso(),
    }


def validate_state_message(msg: dict) -> dict:
    _expect(msg, "schema", str, STATE_SCHEMA)
    if msg["schema"] != STATE_SCHEMA:
        raise MessageError(f"schema {msg['schema']!r} is not {STATE_SCHEMA!r}")
    state = _expect(msg, "state", str, "a state")
    if state not in STATES:
        raise MessageError(f"state {state!r} is not one of {', '.join(STATES)}")
    for key in ("device_id", "site", "boot_id", "detail"):
        _expect(msg, key, str, "a string")
    _iso(msg, "time")
    return msg


# -- metrics ----------------------------------------------------------------------------------------
def metrics_message(
    *,
    device_id: str,
    site: str,
    boot_id: str,
    fps: float,
    stage_latency_ms: dict[str, float],
    outbox: dict[str, Any],
    model_version: str,
    providers: list[str],
    source_state: str,
    uptime_s: float,
    frames_total: int,
    segments_total: int,
    mqtt: dict[str, Any] | None = None,
    upload: dict[str, Any] | None = None,
    disk: dict[str, Any] | None = None,
) -> dict:
    """The periodic `laps.metrics/1` message.

    fps: frames processed per second over the last interval. stage_latency_ms: mean ms per
    pipeline stage over the interval. outbox: {"depth", "bytes", "evicted_total",
    "evicted_bytes", "oldest_age_s"}. upload: spool figures (pending and evicted batches).
    disk: the state directory's free-space floor (`edge.disk_floor.DiskFloor.stats`).
    """
    return {
        "schema": METRICS_SCHEMA,
        "device_id": device_id,
        "site": site,
        "boot_id": boot_id,
        "time": utc_now_iso(),
        "uptime_s": round(float(uptime_s), 3),
        "fps": round(float(fps), 3),
        "stage_latency_ms": {k: round(float(v), 3) for k, v in stage_latency_ms.items()},
        "frames_total": int(frames_total),
        "segments_total": int(segments_total),
        "source_state": source_state,
        "model_version": model_version,
        "providers": list(providers),
        "outbox": dict(outbox),
        "mqtt": dict(mqtt or {}),
        "upload": dict(upload or {}),
        "disk": dict(disk or {}),
    }


def validate_metrics_message(msg: dict) -> dict:
    _expect(msg, "schema", str, METRICS_SCHEMA)
    if msg["schema"] != METRICS_SCHEMA:
        raise MessageError(f"schema {msg['schema']!r} is not {METRICS_SCHEMA!r}")
    _expect(msg, "fps", (int, float), "a number")
    _expect(msg, "stage_latency_ms", dict, "an object")
    outbox = _expect(msg, "outbox", dict, "an object")
    for key in ("depth", "evicted_total"):
        _int(outbox, key, 0, prefix="outbox.")
    _expect(msg, "model_version", str, "a string")
    _expect(msg, "providers", list, "a list of provider names")
    return msg


# -- batches ----------------------------------------------------------------------------------------
def batch_manifest(*, device_id: str, site: str, created: str, segments: list[dict]) -> dict:
    """The manifest stored as `manifest.json` inside a batch archive.

    segments: [{"segment_id", "files": [{"file", "kind": "keyframe"|"clip", "frame" (keyframes),
    "sha256", "size"}]}]. The archive's own sha256 is its name on the receiver
    (`PUT /v1/batches/<device>/<sha256>`) and is added by `batch_announcement`.
    """
    return {
        "schema": BATCH_SCHEMA,
        "device_id": device_id,
        "site": site,
        "created": created,
        "segments": segments,
    }


def batch_announcement(manifest: dict, *, archive_sha256: str, archive_size: int, path: str) -> dict:
    """What goes on `.../batches` once the receiver holds a batch: the manifest plus where it is."""
    out = dict(manifest)
    out["archive"] = {"sha256": archive_sha256, "size": int(archive_size), "format": "tar", "path": path}
    return out


def validate_batch_manifest(msg: dict) -> dict:
    _expect(msg, "schema", str, BATCH_SCHEMA)
    if msg["schema"] != BATCH_SCHEMA:
        raise MessageError(f"schema {msg['schema']!r} is not {BATCH_SCHEMA!r}")
    for key in ("device_id", "site"):
        _expect(msg, key, str, "a string")
    _iso(msg, "created")
    for i, seg in enumerate(_expect(msg, "segments", list, "a list")):
        _uuid(seg, "segment_id", prefix=f"segments[{i}].")
        for j, f in enumerate(_expect(seg, "files", list, "a list", prefix=f"segments[{i}].")):
            where = f"segments[{i}].files[{j}]."
            _expect(f, "file", str, "a path", prefix=where)
            kind = _expect(f, "kind", str, "keyframe or clip", prefix=where)
            if kind not in ("keyframe", "clip"):
                raise MessageError(f"{where}kind {kind!r} is not keyframe or clip")
            sha = _expect(f, "sha256", str, "64 hex digits", prefix=where)
            if not _SHA256.match(sha):
                raise MessageError(f"{where}sha256 {sha!r} is not 64 lowercase hex digits")
            _int(f, "size", 0, prefix=where)
    if "archive" in msg:
        arch = _expect(msg, "archive", dict, "an object")
        if not _SHA256.match(str(arch.get("sha256", ""))):
            raise MessageError(f"archive.sha256 {arch.get('sha256')!r} is not 64 lowercase hex digits")
    return msg


# -- field checks ---------------------------------------------------------------------------------
def _show(value: Any, limit: int = 60) -> str:
    """repr of a value for an error message, clipped: a 5 MB field must not become a 5 MB reason."""
    return _clip(repr(value), limit)


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _refuse_constant(name: str) -> Any:
    raise MessageError(f"payload holds {name}; numbers must be finite")


def _expect(msg: Any, key: str, types: type | tuple[type, ...], what: str, prefix: str = "") -> Any:
    if not isinstance(msg, dict) or key not in msg:
        raise MessageError(f"field {prefix}{key} is missing; expected {what}")
    value = msg[key]
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise MessageError(f"field {prefix}{key} = {_show(value)}; expected {what}")
    if not isinstance(value, types):
        raise MessageError(f"field {prefix}{key} = {_show(value)}; expected {what}")
    return value


def _int(msg: dict, key: str, lo: int, prefix: str = "") -> int:
    value = _expect(msg, key, int, f"an integer >= {lo}", prefix)
    if not lo <= value <= _MAX_INT64:
        raise MessageError(f"field {prefix}{key} = {_show(value)}; expected an integer from {lo} to {_MAX_INT64}")
    return value


def _number(msg: dict, key: str, prefix: str = "") -> float:
    value = _expect(msg, key, (int, float), "a finite number", prefix)
    if not math.isfinite(value):
        raise MessageError(f"field {prefix}{key} = {value!r}; expected a finite number")
    return value


def _text(msg: dict, key: str, cap: int, prefix: str = "") -> str:
    value = _expect(msg, key, str, "a string", prefix)
    if len(value) > cap:
        raise MessageError(f"field {prefix}{key} has {len(value)} characters; at most {cap} are accepted")
    return value


def _iso(msg: dict, key: str, prefix: str = "") -> str:
    value = _expect(msg, key, str, "an ISO-8601 UTC time ending in Z", prefix)
    if not _ISO_UTC.match(value):
        raise MessageError(f"field {prefix}{key} = {_show(value)}; expected an ISO-8601 UTC time ending in Z")
    return value


def _time(msg: dict, key: str, prefix: str = "") -> str:
    """An ISO-8601 UTC time that is also a real date and time (month 13 or hour 99 is not)."""
    value = _iso(msg, key, prefix)
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as err:
        raise MessageError(f"field {prefix}{key} = {_show(value)} is not a valid time ({err})") from None
    if not 1970 <= stamp.year <= 9999:
        raise MessageError(f"field {prefix}{key} = {_show(value)} is before 1970-01-01")
    return value


def _uuid(msg: dict, key: str, prefix: str = "") -> str:
    value = _expect(msg, key, str, "a UUID", prefix)
    if len(value) > MAX_TEXT_CHARS:
        raise MessageError(f"field {prefix}{key} has {len(value)} characters; expected a UUID")
    try:
        uuid.UUID(value)
    except ValueError:
        raise MessageError(f"field {prefix}{key} = {_show(value)}; expected a UUID") from None
    return value
