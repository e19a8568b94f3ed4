"""The versioned wire formats between a device and the fleet side, in one place.

The device builds these; the central ingest (`central/`) imports the same module to validate
and parse them, so the schema cannot drift between the two ends. A change to a payload's
shape bumps its schema string (`laps.segment/1` -> `laps.segment/2`).

Topics (DESIGN.md): `laps/v1/<site>/<device>/<kind>` with kind one of
    segments   (QoS 1, through the outbox)        laps.segment/1
    state      (QoS 1, retained; birth + last will) laps.state/1
    batches    (QoS 1, through the outbox)        laps.batch/1  (upload manifests)
    metrics    (QoS 0, periodic)                  laps.metrics/1
    ota/desired (retained, written by central), ota/status (device's answer)

Payloads are compact UTF-8 JSON objects. Times are ISO-8601 UTC with a 'Z' suffix.
"""

from __future__ import annotations

import json
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

#: message kinds, i.e. the topic suffixes after `laps/v1/<site>/<device>/`
KINDS = ("segments", "state", "batches", "metrics", "ota/desired", "ota/status")
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
        raise MessageError(f"topic {topic!r} is not laps/v1/<site>/<device>/<kind>")
    kind = "/".join(parts[4:])
    if kind not in KINDS:
        raise MessageError(f"topic {topic!r} has unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    return parts[2], parts[3], kind


def utc_now_iso() -> str:
    """Now as ISO-8601 UTC with millisecond precision and a 'Z' suffix."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def encode(message: dict) -> bytes:
    """Compact UTF-8 JSON bytes of a message."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def decode(payload: bytes | str) -> dict:
    """Parse a payload into a dict; MessageError if it is not a JSON object."""
    try:
        obj = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as err:
        raise MessageError(f"payload is not JSON ({err})") from None
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
    """Check a `laps.segment/1` message field by field; returns it, or raises MessageError."""
    _expect(msg, "schema", str, SEGMENT_SCHEMA)
    if msg["schema"] != SEGMENT_SCHEMA:
        raise MessageError(f"schema {msg['schema']!r} is not {SEGMENT_SCHEMA!r}")
    _uuid(msg, "segment_id")
    for key in ("device_id", "site", "model_version", "boot_id"):
        _expect(msg, key, str, "a string")
    _int(msg, "seq", 0)
    for key in ("start", "end"):
        span = _expect(msg, key, dict, '{"utc": ..., "frame": ...}')
        _iso(span, "utc", prefix=f"{key}.")
        _int(span, "frame", 0, prefix=f"{key}.")
    if msg["end"]["frame"] < msg["start"]["frame"]:
        raise MessageError(f"end.frame {msg['end']['frame']} is before start.frame {msg['start']['frame']}")
    fps = _expect(msg, "fps", (int, float), "a number > 0")
    if fps <= 0:
        raise MessageError(f"fps = {fps!r} must be > 0")
    codes = _expect(msg, "codes", list, "a list of integers")
    if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in codes):
        raise MessageError("codes must be a list of non-negative integers")
    energy = _expect(msg, "energy", dict, '{"mean": ..., "max": ...}')
    for key in ("mean", "max"):
        _expect(energy, key, (int, float), "a number", prefix="energy.")
    for i, ref in enumerate(_expect(msg, "keyframes", list, "a list")):
        if not isinstance(ref, dict):
            raise MessageError(f"keyframes[{i}] must be an object with frame and file")
        _int(ref, "frame", 0, prefix=f"keyframes[{i}].")
        _expect(ref, "file", str, "a path inside a batch", prefix=f"keyframes[{i}].")
    return msg


def parse_segment_message(payload: bytes | str) -> dict:
    """Decode and validate a segment payload (what the ingest calls per message)."""
    return validate_segment_message(decode(payload))


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
def _expect(msg: Any, key: str, types: type | tuple[type, ...], what: str, prefix: str = "") -> Any:
    if not isinstance(msg, dict) or key not in msg:
        raise MessageError(f"field {prefix}{key} is missing; expected {what}")
    value = msg[key]
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise MessageError(f"field {prefix}{key} = {value!r}; expected {what}")
    if not isinstance(value, types):
        raise MessageError(f"field {prefix}{key} = {value!r}; expected {what}")
    return value


def _int(msg: dict, key: str, lo: int, prefix: str = "") -> int:
    value = _expect(msg, key, int, f"an integer >= {lo}", prefix)
    if value < lo:
        raise MessageError(f"field {prefix}{key} = {value!r}; expected an integer >= {lo}")
    return value


def _iso(msg: dict, key: str, prefix: str = "") -> str:
    value = _expect(msg, key, str, "an ISO-8601 UTC time ending in Z", prefix)
    if not _ISO_UTC.match(value):
        raise MessageError(f"field {prefix}{key} = {value!r}; expected an ISO-8601 UTC time ending in Z")
    return value


def _uuid(msg: dict, key: str, prefix: str = "") -> str:
    value = _expect(msg, key, str, "a UUID", prefix)
    try:
        uuid.UUID(value)
    except ValueError:
        raise MessageError(f"field {prefix}{key} = {value!r}; expected a UUID") from None
    return value
