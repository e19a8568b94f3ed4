"""The life cycle every frame source follows, and the frame it yields."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Iterator

import numpy as np


@dataclass(frozen=True)
class Frame:
    """One video frame.

    image: (H, W, 3) uint8, BGR (OpenCV's order).
    timestamp_s: presentation time in seconds from the start of the source.
    index: position in the stream this source yields (after any fps resampling), from 0.
    source_index: position of the frame in the underlying stream before resampling.
    """

    image: np.ndarray
    timestamp_s: float
    index: int
    source_index: int


class FrameSource(abc.ABC):
    """A source of frames with one life cycle: `open()`, `read()` until None, `close()`.

    Usable as a context manager (`with open_source(...) as src: for frame in src: ...`).
    `read()` returns None at the end of a finite stream. Errors are `edge.errors.SourceError`
    subclasses with one-line messages.
    """

    #: Human-readable name of the source (path, URL, device) for messages and logs.
    name: str = ""

    @abc.abstractmethod
    def open(self) -> None:
        """Acquire the underlying resource; raise a SourceError naming the problem and fix."""

    @abc.abstractmethod
    def read(self) -> Frame | None:
        """Return the next frame, or None at the end of the stream."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the resource. Safe to call twice."""

    @property
    @abc.abstractmethod
    def fps(self) -> float:
        """Frames per second this source yields (after resampling, if any)."""

    @property
    @abc.abstractmethod
    def frame_size(self) -> tuple[int, int]:
        """(width, height) in pixels of the frames this source yields."""

    @property
    def frame_count(self) -> int | None:
        """Number of frames this source will yield, when known (files, synthetic), else None."""
        return None

    def __enter__(self) -> "FrameSource":
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Frame]:
        while True:
            frame = self.read()
            if frame is None:
                return
            yield frame
