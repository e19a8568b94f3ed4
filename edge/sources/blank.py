"""A finite source of black frames at a fixed rate.

For runs whose tracker does not look at pixels (tracks replayed from a file in calibration,
benchmarks of the stages after the tracker): they still go through the one frame loop
(`edge.loop.StreamLoop`), so their segments get the same frame indices and timestamps as a
real source would give.
"""

from __future__ import annotations

import numpy as np

from edge.errors import ConfigError, SourceError
from edge.sources.base import Frame, FrameSource


class BlankSource(FrameSource):
    """`n_frames` black (H, W, 3) uint8 frames, frame i at i / fps seconds.

    size: (width, height) in pixels.
    """

    def __init__(self, n_frames: int, fps: float, size: tuple[int, int], name: str = "blank") -> None:
        if n_frames < 0 or not fps > 0:
            raise ConfigError(f"blank source needs n_frames >= 0 and fps > 0, got {n_frames} and {fps}")
        self.name = name
        self._n, self._fps, self._size = int(n_frames), float(fps), (int(size[0]), int(size[1]))
        self._image = np.zeros((self._size[1], self._size[0], 3), np.uint8)
        self._next = -1

    def open(self) -> None:
        self._next = 0

    def read(self) -> Frame | None:
        if self._next < 0:
            raise SourceError(f"source {self.name} is not open; call open() or use it as a context manager")
        i = self._next
        if i >= self._n:
            return None
        self._next += 1
        return Frame(self._image, i / self._fps, i, i)

    def close(self) -> None:
        self._next = -1

    @property
    def fps(self) -> float:
        return self._fps

    @property
    def frame_size(self) -> tuple[int, int]:
        return self._size

    @property
    def frame_count(self) -> int | None:
        return self._n
