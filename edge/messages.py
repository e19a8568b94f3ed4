"""The versioned wire formats between a device and the fleet side, in one place.

One frozen dataclass per schema is the single writer (`to_json`) and the single reader
(`from_json`, validating every field it writes) of that schema; the device and the central
ingest both use it, so the two ends cannot drift. A change to a payload's shape bumps its
schema string (`laps.segment/1` -> `laps.segment/2`).

Topics (docs/formats.md#mqtt-topics): `laps/v1/<site>/<device>/<kind>` with kind one of
    segments   (QoS 1, through the outbox)          laps.segment/2  SegmentMessage (laps.segment/1 still read)
    acks       (QoS 1, written by central)          laps.ack/1      AckMessage (segments central has committed)
    state      (QoS 1, retained; birth + last will) laps.state/1    StateMessage
    batches    (QoS 1, through the outbox)          laps.batch/1    BatchManifest (with `archive`: announcement)
    metrics    (QoS 0, periodic)                    laps.metrics/1  MetricsMessage
    ota/desired (retained, written by central), ota/status (device's answer): `edge.ota.messages`

Payloads are compact UTF-8 JSON objects. Times are ISO-8601 UTC with a 'Z' suffix.

Old messages still load: a field every earlier writer of a schema wrote is required; a field
added later (metrics `disk`) or optional in the schema (ack `quarantined`, batch file `frame`
of a clip, segment `primitive` and `motion`) may be absent and takes its default. Unknown extra fields are
ignored. An older schema version still in the field is read too (`laps.segment/1`: a segment
message without the device's primitive label).

End-to-end delivery: central publishes a `laps.ack/1` on the device's `.../acks` topic once the
segments it names are committed (stored, already stored, or quarantined), and the device keeps
each segment in its outbox until then (`edge.outbox`, `edge.mqtt_link`). The broker's PUBACK
only says the broker has the message, not that central will ever see it.

Caps (a segment message beyond any of them is refused by `SegmentMessage.from_json`, and the
central ingest quarantines it): MAX_SEGMENT_PAYLOAD_BYTES, MAX_CODES, MAX_TEXT_CHARS for
model_version and boot_id, MAX_ID_CHARS for site and device_id, MAX_KEYFRAMES; numbers must
be finite (NaN and Infinity are refused), integers fit a signed 64-bit column.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, ClassVar, Iterable, TypeVar

from edge.errors import LapsError
from edge.motion_summary import MOTION_KIND, MotionError, motion_bytes
from edge.segments import PrimitiveLabel, Segment

TOPIC_ROOT = "laps/v1"
SEGMENT_SCHEMA = "laps.segment/2"
#: every segment schema the reader accepts: /1 is /2 without `primitive` (devices not yet updated)
SEGMENT_SCHEMAS = ("laps.segment/1", SEGMENT_SCHEMA)
STATE_SCHEMA = "laps.state/1"
METRICS_SCHEMA = "laps.metrics/1"
BATCH_SCHEMA = "laps.batch/1"
ACK_SCHEMA = "laps.ack/1"

#: message kinds, i.e. the topic suffixes after `laps/v1/<site>/<device>/`
KINDS = ("segments", "acks", "state", "batches", "metrics", "ota/desired", "ota/status")

#: Caps of a segment message. A segment of one hour at 10 fps has 36,000 codes and
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
_M = TypeVar("_M", bound="WireMessage")


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


# -- the common shape of every message ------------------------------------------------------------
class WireMessage:
    """What every message class has: `to_dict`/`to_json` (the one writer of its schema) and
    `from_dict`/`from_json` (the one reader, validating every field; `MessageError` names the
    first wrong one). Subclasses are frozen dataclasses with a `schema` class attribute."""

    schema: ClassVar[str]

    def to_dict(self) -> dict:
        raise NotImplementedError

    def to_json(self, indent: int | None = None) -> bytes:
        """UTF-8 JSON bytes: compact (the wire) or indented (a file a person may read)."""
        if indent is None:
            return encode(self.to_dict())
        return json.dumps(self.to_dict(), indent=indent).encode()

    @classmethod
    def from_dict(cls: type[_M], msg: dict) -> _M:
        raise NotImplementedError

    @classmethod
    def from_json(cls: type[_M], payload: bytes | str) -> _M:
        """Decode and validate a payload (MessageError names what is wrong)."""
        return cls.from_dict(decode(payload))


def _check_schema(msg: Any, schema: str) -> None:
    _expect(msg, "schema", str, schema)
    if msg["schema"] != schema:
        raise MessageError(f"schema {_show(msg['schema'])} is not {schema!r}")


# -- segments -----------------------------------------------------------------------------------
def keyframe_file(segment_id: str, frame: int) -> str:
    """Path of a keyframe JPEG inside a batch archive (the reference a segment message carries)."""
    return f"{segment_id}/keyframe_{frame:08d}.jpg"


def clip_file(segment_id: str) -> str:
    """Path of a segment's clip (MJPEG AVI) inside a batch archive."""
    return f"{segment_id}/clip.avi"


@dataclass(frozen=True)
class KeyframeRef:
    """A keyframe of a segment: its frame index and its path inside whichever batch lists the
    segment (`keyframe_file`)."""

    frame: int
    file: str


@dataclass(frozen=True)
class SegmentMessage(WireMessage):
    """`laps.segment/2`: one finished segment (docs/formats.md).

    seq: position of this segment in this boot's stream (0, 1, ...); with boot_id it lets the
    receiver see gaps. start/end: UTC ISO-8601 ('Z') and frame index. fps: frames per second
    of the model. codes: the FSQ codes, one per step. energy_mean/max: the segment's energy.
    primitive: the device's primitive-library label (`edge.segments.PrimitiveLabel`), None when
    the device carries no library (then the field is absent on the wire). A `laps.segment/1`
    payload reads as a message without `primitive`. motion: the segment's motion summary
    (`edge.motion_summary`, base64 float16 text), on the wire {"kind": MOTION_KIND, "values": ...};
    absent from older devices and from segments not made from point tracks. A summary of a kind
    this release does not know reads as absent (the segment itself is kept), so a newer device's
    summary never costs its segment.
    """

    schema: ClassVar[str] = SEGMENT_SCHEMA

    segment_id: str
    device_id: str
    site: str
    model_version: str
    boot_id: str
    seq: int
    start_utc: str
    start_frame: int
    end_utc: str
    end_frame: int
    fps: float
    codes: tuple[int, ...]
    energy_mean: float
    energy_max: float
    keyframes: tuple[KeyframeRef, ...] = ()
    primitive: PrimitiveLabel | None = None
    motion: str | None = None

    @classmethod
    def from_segment(
        cls,
        segment: Segment,
        *,
        device_id: str,
        site: str,
        boot_id: str,
        seq: int,
        model_version: str | None = None,
        keyframes: Iterable[int] | None = None,
    ) -> "SegmentMessage":
        """The message of a finished segment. keyframes: frame indices whose JPEGs will travel in
        a batch (default: the segment's own keyframes); pass [] when no upload is configured, so
        no reference dangles."""
        frames = list(segment.keyframes if keyframes is None else keyframes)
        return cls(
            segment_id=segment.segment_id, device_id=device_id, site=site,
            model_version=model_version if model_version is not None else segment.model_version,
            boot_id=boot_id, seq=int(seq),
            start_utc=segment.start_utc, start_frame=int(segment.start_frame),
            end_utc=segment.end_utc, end_frame=int(segment.end_frame),
            fps=float(segment.fps), codes=tuple(int(c) for c in segment.codes),
            energy_mean=float(segment.energy_mean), energy_max=float(segment.energy_max),
            keyframes=tuple(KeyframeRef(int(f), keyframe_file(segment.segment_id, int(f))) for f in frames),
            primitive=segment.primitive, motion=segment.motion,
        )

    def to_dict(self) -> dict:
        out = {
            "schema": SEGMENT_SCHEMA,
            "segment_id": self.segment_id,
            "device_id": self.device_id,
            "site": self.site,
            "model_version": self.model_version,
            "boot_id": self.boot_id,
            "seq": self.seq,
            "start": {"utc": self.start_utc, "frame": self.start_frame},
            "end": {"utc": self.end_utc, "frame": self.end_frame},
            "fps": self.fps,
            "codes": list(self.codes),
            "energy": {"mean": self.energy_mean, "max": self.energy_max},
            "keyframes": [{"frame": k.frame, "file": k.file} for k in self.keyframes],
        }
        if self.primitive is not None:
            out["primitive"] = self.primitive.to_dict()
        if self.motion is not None:
            out["motion"] = {"kind": MOTION_KIND, "values": self.motion}
        return out

    @classmethod
    def from_json(cls, payload: bytes | str) -> "SegmentMessage":
        """Decode and validate a segment payload (what the ingest calls per message); a payload
        over MAX_SEGMENT_PAYLOAD_BYTES is refused before it is parsed."""
        size = len(payload.encode("utf-8") if isinstance(payload, str) else payload)
        if size > MAX_SEGMENT_PAYLOAD_BYTES:
            raise MessageError(f"payload of {size} bytes exceeds the cap of {MAX_SEGMENT_PAYLOAD_BYTES} bytes "
                               "for a segment message")
        return cls.from_dict(decode(payload))

    @classmethod
    def from_dict(cls, msg: dict) -> "SegmentMessage":
        """Check every field, caps included; everything the central store needs to hold the
        message is checked here, so a message that passes cannot fail at commit for its content."""
        _expect(msg, "schema", str, SEGMENT_SCHEMA)
        if msg["schema"] not in SEGMENT_SCHEMAS:
            raise MessageError(f"schema {_show(msg['schema'])} is not one of {', '.join(SEGMENT_SCHEMAS)}")
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
        refs = []
        for i, ref in enumerate(keyframes):
            if not isinstance(ref, dict):
                raise MessageError(f"keyframes[{i}] must be an object with frame and file")
            refs.append(KeyframeRef(_int(ref, "frame", 0, prefix=f"keyframes[{i}]."),
                                    _text(ref, "file", MAX_TEXT_CHARS, prefix=f"keyframes[{i}].")))
        return cls(
            segment_id=msg["segment_id"], device_id=msg["device_id"], site=msg["site"],
            model_version=msg["model_version"], boot_id=msg["boot_id"], seq=msg["seq"],
            start_utc=msg["start"]["utc"], start_frame=msg["start"]["frame"],
            end_utc=msg["end"]["utc"], end_frame=msg["end"]["frame"],
            fps=float(fps), codes=tuple(codes), energy_mean=float(energy["mean"]), energy_max=float(energy["max"]),
            keyframes=tuple(refs),
            primitive=_primitive(msg) if msg["schema"] != "laps.segment/1" else None,
            motion=_motion(msg) if msg["schema"] != "laps.segment/1" else None,
        )


def _motion(msg: dict) -> str | None:
    """The optional `motion` of a segment message: {"kind", "values"}; absent, null or of a kind
    this release does not know -> None. Values of the known kind must decode."""
    value = msg.get("motion")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise MessageError(f"field motion = {_show(value)}; expected an object with kind and values")
    kind = _text(value, "kind", MAX_TEXT_CHARS, prefix="motion.")
    if kind != MOTION_KIND:
        return None
    values = _expect(value, "values", str, "base64 text", prefix="motion.")
    try:
        motion_bytes(values)
    except MotionError as err:
        raise MessageError(f"field motion.values: {err}") from None
    return values


def _primitive(msg: dict) -> PrimitiveLabel | None:
    """The optional `primitive` of a segment message: {"library", "cluster", "distance"}; absent
    or null when the device carries no library."""
    value = msg.get("primitive")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise MessageError(f"field primitive = {_show(value)}; expected an object with library, cluster, distance")
    library = _text(value, "library", MAX_TEXT_CHARS, prefix="primitive.")
    cluster = _int(value, "cluster", 0, prefix="primitive.")
    distance = _number(value, "distance", prefix="primitive.")
    if distance < 0:
        raise MessageError(f"field primitive.distance = {distance!r}; expected a distance >= 0")
    return PrimitiveLabel(library, cluster, float(distance))


def canonical_segment_id(value: str) -> str:
    """The one spelling of a segment id: lower-case hex with hyphens, no braces or `urn:uuid:`
    (`{0190A...}` and `0190a...` are the same segment). MessageError if it is no UUID."""
    try:
        return str(uuid.UUID(value))
    except (ValueError, TypeError, AttributeError):
        raise MessageError(f"segment id {_show(value)} is not a UUID") from None


# -- acknowledgements (central -> device) -------------------------------------------------------------
@dataclass(frozen=True)
class QuarantinedSegment:
    """A segment central refused for good, and why (one line, clipped to 300 characters)."""

    segment_id: str
    reason: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "reason", _clip(str(self.reason), 300))


@dataclass(frozen=True)
class AckMessage(WireMessage):
    """`laps.ack/1`, published by central on `.../acks` after a commit.

    segment_ids: segments now committed (stored now or already stored before). quarantined:
    messages central refused for good; the device stops re-sending those too and logs the
    reason. At most MAX_ACK_IDS ids in all (send several messages). quarantined may be absent
    on the wire (then empty)."""

    schema: ClassVar[str] = ACK_SCHEMA

    site: str
    device_id: str
    segment_ids: tuple[str, ...]
    quarantined: tuple[QuarantinedSegment, ...] = ()
    time: str = field(default_factory=lambda: utc_now_iso())

    def __post_init__(self) -> None:
        object.__setattr__(self, "segment_ids", tuple(str(i) for i in self.segment_ids))
        object.__setattr__(self, "quarantined", tuple(self.quarantined))
        total = len(self.segment_ids) + len(self.quarantined)
        if total > MAX_ACK_IDS:
            raise MessageError(f"an ack names at most {MAX_ACK_IDS} segments, got {total}")

    def to_dict(self) -> dict:
        return {"schema": ACK_SCHEMA, "site": self.site, "device_id": self.device_id, "time": self.time,
                "segment_ids": list(self.segment_ids),
                "quarantined": [{"segment_id": q.segment_id, "reason": q.reason} for q in self.quarantined]}

    @classmethod
    def from_dict(cls, msg: dict) -> "AckMessage":
        _check_schema(msg, ACK_SCHEMA)
        for key in ("site", "device_id"):
            _text(msg, key, MAX_ID_CHARS)
        _iso(msg, "time")
        ids = _expect(msg, "segment_ids", list, "a list of segment ids")
        bad = msg.get("quarantined", [])
        if not isinstance(bad, list) or len(ids) + len(bad) > MAX_ACK_IDS:
            raise MessageError(f"an ack names at most {MAX_ACK_IDS} segments in segment_ids and quarantined lists")
        for i, sid in enumerate(ids):
            if not isinstance(sid, str):
                raise MessageError(f"segment_ids[{i}] = {_show(sid)}; expected a segment id")
        refused = []
        for i, entry in enumerate(bad):
            refused.append(QuarantinedSegment(_text(entry, "segment_id", MAX_TEXT_CHARS, prefix=f"quarantined[{i}]."),
                                              _expect(entry, "reason", str, "a string", prefix=f"quarantined[{i}].")))
        return cls(site=msg["site"], device_id=msg["device_id"], segment_ids=tuple(ids), quarantined=tuple(refused),
                   time=msg["time"])


# -- state ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StateMessage(WireMessage):
    """The retained `laps.state/1`: online (birth), source_lost, offline (will), stopped.
    time: when the device entered the state (default now)."""

    schema: ClassVar[str] = STATE_SCHEMA

    state: str
    device_id: str
    site: str
    boot_id: str
    detail: str = ""
    model_version: str = ""
    software: str = ""
    time: str = field(default_factory=lambda: utc_now_iso())

    def __post_init__(self) -> None:
        if self.state not in STATES:
            raise MessageError(f"state {self.state!r} is not one of {', '.join(STATES)}")

    def to_dict(self) -> dict:
        return {
            "schema": STATE_SCHEMA,
            "device_id": self.device_id,
            "site": self.site,
            "boot_id": self.boot_id,
            "state": self.state,
            "detail": self.detail,
            "model_version": self.model_version,
            "software": self.software,
            "time": self.time,
        }

    @classmethod
    def from_dict(cls, msg: dict) -> "StateMessage":
        _check_schema(msg, STATE_SCHEMA)
        state = _expect(msg, "state", str, "a state")
        if state not in STATES:
            raise MessageError(f"state {state!r} is not one of {', '.join(STATES)}")
        for key in ("device_id", "site", "boot_id", "detail"):
            _expect(msg, key, str, "a string")
        for key in ("model_version", "software"):
            _optional(msg, key, str, "a string")
        return cls(state=state, device_id=msg["device_id"], site=msg["site"], boot_id=msg["boot_id"],
                   detail=msg["detail"], model_version=msg.get("model_version", ""),
                   software=msg.get("software", ""), time=_iso(msg, "time"))


# -- metrics ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MetricsMessage(WireMessage):
    """The periodic `laps.metrics/1`.

    fps: frames processed per second over the last interval. stage_latency_ms: mean ms per
    pipeline stage over the interval. outbox: {"depth", "bytes", "evicted_total",
    "evicted_bytes", "oldest_age_s"}. mqtt: the link's figures. upload: spool figures (pending
    and evicted batches). disk: the state directory's free-space floor
    (`edge.disk_floor.DiskFloor.stats`; absent in messages older than it). uptime_s: seconds
    since start. Figures are rounded to 3 decimals.
    """

    schema: ClassVar[str] = METRICS_SCHEMA

    device_id: str
    site: str
    boot_id: str
    fps: float
    stage_latency_ms: dict[str, float]
    outbox: dict[str, Any]
    model_version: str
    providers: tuple[str, ...]
    source_state: str
    uptime_s: float
    frames_total: int
    segments_total: int
    mqtt: dict[str, Any] = field(default_factory=dict)
    upload: dict[str, Any] = field(default_factory=dict)
    disk: dict[str, Any] = field(default_factory=dict)
    time: str = field(default_factory=lambda: utc_now_iso())

    def __post_init__(self) -> None:
        setattr_ = object.__setattr__
        setattr_(self, "fps", round(float(self.fps), 3))
        setattr_(self, "uptime_s", round(float(self.uptime_s), 3))
        setattr_(self, "stage_latency_ms", {k: round(float(v), 3) for k, v in self.stage_latency_ms.items()})
        setattr_(self, "frames_total", int(self.frames_total))
        setattr_(self, "segments_total", int(self.segments_total))
        setattr_(self, "providers", tuple(self.providers))
        for key in ("outbox", "mqtt", "upload", "disk"):
            setattr_(self, key, dict(getattr(self, key) or {}))

    def to_dict(self) -> dict:
        return {
            "schema": METRICS_SCHEMA,
            "device_id": self.device_id,
            "site": self.site,
            "boot_id": self.boot_id,
            "time": self.time,
            "uptime_s": self.uptime_s,
            "fps": self.fps,
            "stage_latency_ms": dict(self.stage_latency_ms),
            "frames_total": self.frames_total,
            "segments_total": self.segments_total,
            "source_state": self.source_state,
            "model_version": self.model_version,
            "providers": list(self.providers),
            "outbox": dict(self.outbox),
            "mqtt": dict(self.mqtt),
            "upload": dict(self.upload),
            "disk": dict(self.disk),
        }

    @classmethod
    def from_dict(cls, msg: dict) -> "MetricsMessage":
        _check_schema(msg, METRICS_SCHEMA)
        for key in ("device_id", "site", "boot_id", "model_version", "source_state"):
            _expect(msg, key, str, "a string")
        _iso(msg, "time")
        for key in ("fps", "uptime_s"):
            _number(msg, key)
        for key in ("frames_total", "segments_total"):
            _int(msg, key, 0)
        latency = _expect(msg, "stage_latency_ms", dict, "an object")
        for stage in latency:
            _number(latency, stage, prefix="stage_latency_ms.")
        outbox = _expect(msg, "outbox", dict, "an object")
        for key in ("depth", "evicted_total"):
            _int(outbox, key, 0, prefix="outbox.")
        providers = _expect(msg, "providers", list, "a list of provider names")
        if not all(isinstance(p, str) for p in providers):
            raise MessageError(f"field providers = {_show(providers)}; expected a list of provider names")
        for key in ("mqtt", "upload"):
            _expect(msg, key, dict, "an object")
        _optional(msg, "disk", dict, "an object")
        return cls(device_id=msg["device_id"], site=msg["site"], boot_id=msg["boot_id"], fps=msg["fps"],
                   stage_latency_ms=latency, outbox=outbox, model_version=msg["model_version"],
                   providers=tuple(providers), source_state=msg["source_state"], uptime_s=msg["uptime_s"],
                   frames_total=msg["frames_total"], segments_total=msg["segments_total"], mqtt=msg["mqtt"],
                   upload=msg["upload"], disk=msg.get("disk", {}), time=msg["time"])


# -- batches ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BatchFile:
    """One file of a batch archive. kind: "keyframe" (with its frame index) or "clip".
    sha256: hex digest of the file's bytes; size: bytes."""

    file: str
    kind: str
    sha256: str
    size: int
    frame: int | None = None

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"file": self.file, "kind": self.kind, "sha256": self.sha256, "size": self.size}
        if self.frame is not None:
            out["frame"] = self.frame
        return out


@dataclass(frozen=True)
class BatchSegment:
    """A segment's files in a batch archive."""

    segment_id: str
    files: tuple[BatchFile, ...]


@dataclass(frozen=True)
class BatchArchive:
    """Where an uploaded archive is: its sha256 (its name on the receiver), size in bytes, format
    ("tar") and the receiver's path (`/v1/batches/<device>/<sha256>`)."""

    sha256: str
    size: int
    path: str
    format: str = "tar"


@dataclass(frozen=True)
class BatchManifest(WireMessage):
    """`laps.batch/1`: stored as `manifest.json` inside a batch archive, and, with `archive`
    added once the receiver holds the batch (`announced`), the announcement on `.../batches`.
    created: ISO-8601 UTC."""

    schema: ClassVar[str] = BATCH_SCHEMA

    device_id: str
    site: str
    created: str
    segments: tuple[BatchSegment, ...]
    archive: BatchArchive | None = None

    @property
    def segment_ids(self) -> list[str]:
        return [s.segment_id for s in self.segments]

    def announced(self, *, archive_sha256: str, archive_size: int, path: str) -> "BatchManifest":
        """The announcement of this batch once the receiver holds it: the manifest plus where it is."""
        return dataclasses.replace(self, archive=BatchArchive(archive_sha256, int(archive_size), path))

    def to_dict(self) -> dict:
        out: dict[str, Any] = {
            "schema": BATCH_SCHEMA,
            "device_id": self.device_id,
            "site": self.site,
            "created": self.created,
            "segments": [{"segment_id": s.segment_id, "files": [f.to_dict() for f in s.files]}
                         for s in self.segments],
        }
        if self.archive is not None:
            a = self.archive
            out["archive"] = {"sha256": a.sha256, "size": a.size, "format": a.format, "path": a.path}
        return out

    @classmethod
    def from_dict(cls, msg: dict) -> "BatchManifest":
        _check_schema(msg, BATCH_SCHEMA)
        for key in ("device_id", "site"):
            _expect(msg, key, str, "a string")
        _iso(msg, "created")
        segments = []
        for i, seg in enumerate(_expect(msg, "segments", list, "a list")):
            sid = _uuid(seg, "segment_id", prefix=f"segments[{i}].")
            files = []
            for j, f in enumerate(_expect(seg, "files", list, "a list", prefix=f"segments[{i}].")):
                where = f"segments[{i}].files[{j}]."
                name = _expect(f, "file", str, "a path", prefix=where)
                kind = _expect(f, "kind", str, "keyframe or clip", prefix=where)
                if kind not in ("keyframe", "clip"):
                    raise MessageError(f"{where}kind {kind!r} is not keyframe or clip")
                sha = _sha256(f, "sha256", prefix=where)
                if kind == "keyframe" and "frame" not in f:
                    raise MessageError(f"field {where}frame is missing; a keyframe needs its frame index")
                frame = _int(f, "frame", 0, prefix=where) if "frame" in f else None
                files.append(BatchFile(name, kind, sha, _int(f, "size", 0, prefix=where), frame))
            segments.append(BatchSegment(sid, tuple(files)))
        archive = None
        if "archive" in msg:
            arch = _expect(msg, "archive", dict, "an object")
            archive = BatchArchive(_sha256(arch, "sha256", prefix="archive."), _int(arch, "size", 0, prefix="archive."),
                                   _expect(arch, "path", str, "a path", prefix="archive."),
                                   _expect(arch, "format", str, "an archive format", prefix="archive."))
        return cls(device_id=msg["device_id"], site=msg["site"], created=msg["created"], segments=tuple(segments),
                   archive=archive)


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


def _optional(msg: dict, key: str, types: type | tuple[type, ...], what: str, prefix: str = "") -> Any:
    """A field a message may leave out (older writers did); checked when it is there."""
    return _expect(msg, key, types, what, prefix) if key in msg else None


def _sha256(msg: dict, key: str, prefix: str = "") -> str:
    value = _expect(msg, key, str, "64 lowercase hex digits", prefix)
    if not _SHA256.match(value):
        raise MessageError(f"field {prefix}{key} = {_show(value)}; expected 64 lowercase hex digits")
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
