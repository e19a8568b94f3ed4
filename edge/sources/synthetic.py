"""`synthetic://` frame source: the generated workstation (`edge.synthetic`) as a FrameSource.

Spec: `synthetic://assembly?seed=7&minutes=2&nuisances=all&fps=30&size=640x480&hands=2&rests=0.5`
(every key optional; the defaults are those values, hands drawn from the seed). Frames come at
the scenario's own fps with timestamp i / fps; resampling to the model fps is the generic
resampler's job, as for any other source.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from edge.errors import ConfigError
from edge.sources.base import Frame, FrameSource
from edge.synthetic import Nuisances, SyntheticWorkstation

SCENARIOS = ("assembly",)
_KEYS = ("seed", "minutes", "nuisances", "fps", "size", "hands", "rests")


class SyntheticSource(FrameSource):
    """Frames of a `SyntheticWorkstation`; `.workstation` gives its ground truth."""

    def __init__(self, workstation: SyntheticWorkstation, name: str = "") -> None:
        self.workstation = workstation
        self.name = name or f"synthetic://assembly?seed={workstation.seed}"
        self._next = 0
        self._open = False

    @classmethod
    def from_uri(cls, uri: str) -> "SyntheticSource":
        """Parse a `synthetic://` spec; a bad key or value is a one-line ConfigError."""
        parts = urlsplit(uri)
        scenario = (parts.netloc or parts.path.strip("/")) or "assembly"
        if parts.scheme.lower() != "synthetic" or scenario not in SCENARIOS:
            raise ConfigError(f"synthetic source {uri!r}: scenario {scenario!r} is not known; "
                              f"use synthetic://{SCENARIOS[0]}?seed=7&minutes=2")
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        for key in query:
            if key not in _KEYS:
                raise ConfigError(f"synthetic source {uri!r}: unknown key {key!r}; allowed keys are {', '.join(_KEYS)}")
        kwargs: dict = {}
        kwargs["seed"] = _parse(uri, query, "seed", int, 7, "a non-negative integer")
        kwargs["minutes"] = _parse(uri, query, "minutes", float, 2.0, "a positive number of minutes")
        kwargs["fps"] = _parse(uri, query, "fps", float, 30.0, "frames per second, e.g. 30")
        kwargs["size"] = _parse(uri, query, "size", _size, (640, 480), "WIDTHxHEIGHT, e.g. 640x480")
        kwargs["rest_fraction"] = _parse(uri, query, "rests", float, 0.5, "a fraction in [0, 1]")
        kwargs["hands"] = _parse(uri, query, "hands", int, None, "1 or 2")
        kwargs["nuisances"] = Nuisances.parse(query.get("nuisances", "all"))
        return cls(SyntheticWorkstation(**kwargs), name=uri)

    def open(self) -> None:
        self._next = 0
        self._open = True

    def read(self) -> Frame | None:
        if not self._open:
            self.open()
        i = self._next
        if i >= self.workstation.n_frames:
            return None
        self._next += 1
        return Frame(image=self.workstation.render(i), timestamp_s=i / self.workstation.fps,
                     index=i, source_index=i)

    def close(self) -> None:
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


def _size(text: str) -> tuple[int, int]:
    w, h = text.lower().split("x")
    return int(w), int(h)


def _parse(uri: str, query: dict, key: str, conv, default, allowed: str):
    if key not in query:
        return default
    try:
        return conv(query[key])
    except (ValueError, TypeError):
        raise ConfigError(f"synthetic source {uri!r}: {key}={query[key]!r} is not valid; use {allowed}") from None
