"""Segment records: what the device emits for each detected action primitive.

A `Segment` is built by `edge.assembler.SegmentAssembler` from the kernel's START/END events.
It travels as JSON (one object per line in JSONL files; wrapped in the versioned MQTT message
by the edge service). Its latent action sequence travels as FSQ **codes** (small ints) plus
the model version; float features are kept only for local evaluation.
"""

from __future__ import annotations

import json
import os
import secrets
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import IO, Iterable, Iterator


def uuid7(unix_ms: int | None = None) -> uuid.UUID:
    """A UUID version 7 (RFC 9562): 48-bit Unix milliseconds, then 74 random bits.

    Time-ordered, so SQLite indexes on it stay append-mostly; random enough to be a global
    de-duplication key across a fleet.
    """
    ms = int(time.time() * 1000) if unix_ms is None else int(unix_ms)
    rand = secrets.randbits(74)
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76                      # version 7
    value |= ((rand >> 62) & 0xFFF) << 64   # rand_a, 12 bits
    value |= 0b10 << 62                     # RFC 4122 variant
    value |= rand & ((1 << 62) - 1)         # rand_b, 62 bits
    return uuid.UUID(int=value)


@dataclass(frozen=True)
class PrimitiveLabel:
    """The primitive a device's library assigns a segment (`edge.primitive_library`).

    library: the library's id (the central cluster run it came from). cluster: the cluster id
    in that run (0 .. k-1). distance: Euclidean distance to the cluster's centre in the
    run's normalised embedding space (unit rows, so 0 to 2), as central stores it."""

    library: str
    cluster: int
    distance: float

    def to_dict(self) -> dict:
        return {"library": self.library, "cluster": int(self.cluster), "distance": float(self.distance)}

    @classmethod
    def from_dict(cls, data: dict) -> "PrimitiveLabel":
        return cls(str(data["library"]), int(data["cluster"]), float(data["distance"]))


@dataclass
class Segment:
    """One detected segment.

    Frames and times are the source's own (`edge.sources.base.Frame`): `start_frame` is the
    `Frame.index` of the segment's first frame, `end_frame` (exclusive) that of the first frame
    after it; `start_s`/`end_s` are those frames' timestamps in seconds from the stream start
    (a segment still open when the stream ends ends one frame period after its last frame), so
    a source slower than the model fps, or one with gaps, keeps its real times. `fps` is the
    model's step rate. `start_utc`/`end_utc`: ISO-8601 UTC wall-clock times (the stream's
    origin plus those seconds). `codes`: one FSQ code per step inside the segment (empty when
    the features were not FSQ codes). `energy_mean`/`energy_max`: statistics of the smoothed
    energy inside the segment. `keyframes`: `Frame.index` values chosen as representative stills.
    `primitive`: the label of the device's primitive library, None when it carries none.
    `motion`: the summary of where and how the tracked points moved (`edge.motion_summary`,
    base64 of its float16 values), None when the segment did not come from point tracks.
    """

    segment_id: str
    start_frame: int
    end_frame: int
    start_s: float
    end_s: float
    fps: float
    start_utc: str
    end_utc: str
    codes: list[int] = field(default_factory=list)
    energy_mean: float = 0.0
    energy_max: float = 0.0
    keyframes: list[int] = field(default_factory=list)
    model_version: str = ""
    primitive: PrimitiveLabel | None = None
    motion: str | None = None

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def n_steps(self) -> int:
        return self.end_frame - self.start_frame

    def to_dict(self) -> dict:
        """JSON-ready fields; `primitive` and `motion` only when set (older files have neither)."""
        out = asdict(self)
        for name in ("primitive", "motion"):
            if out[name] is None:
                del out[name]
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "Segment":
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        if known.get("primitive") is not None:
            known["primitive"] = PrimitiveLabel.from_dict(known["primitive"])
        return cls(**known)


def stream_origin(opened_utc: datetime, *, frame_count: int | None, fps: float, paced: bool) -> datetime:
    """The wall-clock time of a stream's first frame: every segment time is counted from it.

    Segment times follow the source's own clock (its frame timestamps), anchored to the wall
    clock here. A live source (camera, stream: `frame_count` None) and a
    paced replay deliver frames in real time, so the anchor is the moment the stream opened
    (`opened_utc`). A finite source replayed faster than real time (a file or a synthetic
    recording with `pace = false`) would then stamp its segments in the future (a 5-minute
    file processed in 1 minute would end 4 minutes from now), so it counts as recorded just
    before it was opened: its last frame at `opened_utc`, its first `frame_count / fps`
    seconds earlier. Either way no segment ends after the moment it is published, and
    end - start is the segment's length in the source's time.
    """
    if frame_count is None or paced or not fps or fps <= 0:
        return opened_utc
    return opened_utc - timedelta(seconds=frame_count / fps)


def utc_iso(origin: datetime, seconds: float) -> str:
    """ISO-8601 UTC time `seconds` after `origin`, millisecond precision, 'Z' suffix."""
    t = origin.astimezone(timezone.utc) + timedelta(seconds=seconds)
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class SegmentWriter:
    """Appends segments to a JSONL file, one JSON object per line, flushed per segment."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[str] | None = open(self.path, "w", encoding="utf-8")
        self.count = 0

    def write(self, segment: Segment) -> None:
        assert self._fh is not None, "writer is closed"
        self._fh.write(json.dumps(segment.to_dict(), separators=(",", ":")) + "\n")
        self._fh.flush()
        self.count += 1

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> "SegmentWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_segments(path: str | os.PathLike) -> Iterator[Segment]:
    """Read the segments of a JSONL file written by `SegmentWriter`."""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if line:
                yield Segment.from_dict(json.loads(line))


def write_segments(path: str | os.PathLike, segments: Iterable[Segment]) -> int:
    """Write all `segments` to a JSONL file; returns how many were written."""
    with SegmentWriter(path) as writer:
        for seg in segments:
            writer.write(seg)
        return writer.count
