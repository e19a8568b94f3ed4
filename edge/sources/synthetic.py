"""`synthetic://` frame source: the generated workstation (`edge.synthetic`) as a FrameSource.

Spec: `synthetic://assembly?seed=7&minutes=2&nuisances=all&fps=30&size=640x480`, every key
optional with those defaults; also `hands=1|2` (default: drawn from the seed), `rests=0.5` (the
probability of a rest between two primitives) and `distractor=conveyor|passerby` (default: drawn
from the seed). Frames come at the scenario's own fps with timestamp i / fps; resampling to the
model fps is the generic resampler's job, as for any other source. `.workstation` holds the
`SyntheticWorkstation` (ground truth, exact trajectories).
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from edge.errors import ConfigError, SourceError
from edge.sources.base import Frame, FrameSource
from edge.synthetic import Nuisances, SyntheticWorkstation
from edge.synthetic.scene import DISTRACTORS

SCENARIOS = ("assembly",)
KEYS = ("seed", "minutes", "nuisances", "fps", "size", "hands", "rests", "distractor")


class SyntheticSource(FrameSource):
    """Frames of a `SyntheticWorkstation`; `.workstation` gives its ground truth."""

    def __init__(self, workstation: SyntheticWorkstation, name: str = "") -> None:
        self.workstation = workstation
        self.name = name or f"synthetic://assembly?seed={workstation.seed}"
        self._next = 0
        self._open = False
        self._frames = None

    @classmethod
    def from_uri(cls, uri: str) -> "SyntheticSource":
        """Build from a `synthetic://` spec; a bad key or value is a one-line ConfigError."""
        return cls(SyntheticWorkstation(**parse_spec(uri)), name=uri)

    def open(self) -> None:
        """Start (or restart) at frame 0."""
        self.close()
        self._next = 0
        # In-order frames through the workstation's pipelined iterator (camera effects in a
        # worker thread while the next frame is composited).
        self._frames = self.workstation.frames()
        self._open = True

    def read(self) -> Frame | None:
        if not self._open:
            raise SourceError(f"source {self.name} is not open; call open() or use it as a context manager")
        i = self._next
        image = next(self._frames, None)
        if image is None:
            return None
        self._next += 1
        return Frame(image=image, timestamp_s=i / self.workstation.fps, index=i, source_index=i)

    def close(self) -> None:
        frames = getattr(self, "_frames", None)
        if frames is not None:
            frames.close()  # stops the worker threads
            self._frames = None
        self._open = False

    @property
    def fps(self) -> float:
        return self.workstation.fps

    @property
    def frame_size(self) -> tuple[int, int]:
        return self.workstation.size

    @property
    def frame_count(self) -> int | None:
        return self.workstation.n_frames


def parse_spec(uri: str) -> dict:
    """Keyword arguments of `SyntheticWorkstation` from a `synthetic://` spec (ConfigError if bad)."""
    parts = urlsplit(str(uri))
    scenario = (parts.netloc or parts.path.strip("/")) or "assembly"
    if parts.scheme.lower() != "synthetic":
        raise ConfigError(f"{uri!r} is not a synthetic source; use synthetic://assembly?seed=7&minutes=2")
    if scenario not in SCENARIOS:
        raise ConfigError(f"synthetic source {uri!r}: scenario {scenario!r} is not known; "
                          f"use synthetic://{SCENARIOS[0]}?seed=7&minutes=2")
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    query: dict[str, str] = {}
    for key, value in pairs:
        if key not in KEYS:
            raise ConfigError(f"synthetic source {uri!r}: unknown key {key!r}; allowed keys are {', '.join(KEYS)}")
        if key in query:
            raise ConfigError(f"synthetic source {uri!r}: key {key!r} is given twice; give it once")
        query[key] = value
    kwargs: dict = {
        "seed": _parse(uri, query, "seed", _non_negative_int, 7, "an integer >= 0, e.g. seed=7"),
        "minutes": _parse(uri, query, "minutes", _positive_float, 2.0, "a positive number of minutes, e.g. minutes=2"),
        "fps": _parse(uri, query, "fps", _positive_float, 30.0, "frames per second in [1, 240], e.g. fps=30"),
        "size": _parse(uri, query, "size", parse_size, (640, 480), "WIDTHxHEIGHT with even numbers, e.g. size=640x480"),
        "hands": _parse(uri, query, "hands", _hands, None, "1 or 2"),
        "rest_fraction": _parse(uri, query, "rests", _fraction, 0.5, "a fraction in [0, 1], e.g. rests=0.5"),
        "distractor": _parse(uri, query, "distractor", _distractor, None, " or ".join(DISTRACTORS)),
    }
    try:
        kwargs["nuisances"] = Nuisances.parse(query.get("nuisances", "all"))
    except ConfigError as err:
        raise ConfigError(f"synthetic source {uri!r}: {err}") from None
    try:
        SyntheticWorkstation.validate(**kwargs)
    except ConfigError as err:
        raise ConfigError(f"synthetic source {uri!r}: {err}") from None
    return kwargs


def parse_size(text: str) -> tuple[int, int]:
    """'640x480' -> (640, 480); ValueError if not WIDTHxHEIGHT."""
    w, h = str(text).lower().split("x")
    return int(w), int(h)


def _non_negative_int(text: str) -> int:
    v = int(text)
    if v < 0:
        raise ValueError(text)
    return v


def _positive_float(text: str) -> float:
    v = float(text)
    if not v > 0 or v == float("inf"):
        raise ValueError(text)
    return v


def _fraction(text: str) -> float:
    v = float(text)
    if not 0.0 <= v <= 1.0:
        raise ValueError(text)
    return v


def _hands(text: str) -> int:
    v = int(text)
    if v not in (1, 2):
        raise ValueError(text)
    return v


def _distractor(text: str) -> str:
    if text not in DISTRACTORS:
        raise ValueError(text)
    return text


def _parse(uri: str, query: dict, key: str, conv, default, allowed: str):
    if key not in query:
        return default
    try:
        return conv(query[key])
    except (ValueError, TypeError):
        raise ConfigError(f"synthetic source {uri!r}: {key}={query[key]!r} is not allowed; use {allowed}") from None
