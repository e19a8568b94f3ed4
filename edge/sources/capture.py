"""What every OpenCV `VideoCapture`-backed source shares: its clock, frame stamping, release and
the properties fixed at open(). File, camera, stream and GStreamer sources differ only in how
they open and what a failed read means.
"""

from __future__ import annotations

import math
import time

import cv2
import numpy as np

from edge.errors import StreamUnreachableError
from edge.sources.base import Frame, FrameSource

#: frame rate assumed when a container or driver states none
DEFAULT_FPS = 30.0


class CaptureSource(FrameSource):
    """Base of the OpenCV capture sources. Subclasses set, in `open()`: `_cap` (the
    `cv2.VideoCapture`), `_clock` (a `CaptureClock`), `_fps`, `_size` and, when known, `_count`;
    `read()` grabs an image and returns `self._stamp(image)`.
    """

    _cap: "cv2.VideoCapture | None" = None
    _clock: "CaptureClock | None" = None
    _pending: object = None
    _index: int = 0
    _fps: float = 0.0
    _size: tuple[int, int] = (0, 0)
    _count: int | None = None

    def _adopt(self, cap: "cv2.VideoCapture", first_image: np.ndarray, default_fps: float) -> None:
        """Take over an opened capture whose first frame was read: rate, announced frame count
        (a finite source), size and clock; the first frame is delivered by the next read()."""
        fps = cap.get(cv2.CAP_PROP_FPS)
        self._fps = float(fps) if math.isfinite(fps) and 0 < fps < 1000 else default_fps
        count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        self._count = int(count) if math.isfinite(count) and count > 0 else None
        self._size = (int(first_image.shape[1]), int(first_image.shape[0]))
        self._cap = cap
        self._clock = CaptureClock(self._fps, live=self._count is None)
        self._pending = first_image
        self._index = 0

    def _adopt_stream(self, cap: "cv2.VideoCapture", default_fps: float, not_opened: str, no_frame: str) -> None:
        """`_adopt` for a network or pipeline capture: a capture that did not open, or opened but
        gave no first frame, is released and raises StreamUnreachableError with `not_opened` or
        `no_frame` (one line each: what failed and what to check)."""
        if not cap.isOpened():
            cap.release()
            raise StreamUnreachableError(not_opened)
        ok, image = cap.read()
        if not ok or image is None:
            cap.release()
            raise StreamUnreachableError(no_frame)
        self._adopt(cap, image, default_fps=default_fps)

    def _stamp(self, image: np.ndarray) -> Frame:
        """The next frame: timestamp from the capture's clock, index counted here."""
        assert self._clock is not None and self._cap is not None
        ts = self._clock.timestamp(self._cap.get(cv2.CAP_PROP_POS_MSEC))
        frame = Frame(image=image, timestamp_s=ts, index=self._index, source_index=self._index)
        self._index += 1
        return frame

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        self._pending = None

    @property
    def fps(self) -> float:
        """Nominal frame rate reported by the container, stream or driver (valid after open())."""
        return self._fps

    @property
    def frame_size(self) -> tuple[int, int]:
        """(width, height) of the decoded frames (valid after open())."""
        return self._size

    @property
    def frame_count(self) -> int | None:
        """Frames announced by a finite source (valid after open()); None for a live one."""
        return self._count


class CaptureClock:
    """Turns per-frame `CAP_PROP_POS_MSEC` readings into strictly increasing seconds from 0.

    The first reading becomes time 0. A reading that is not finite or not later than the
    previous timestamp (or, for a live source, more than MAX_GAP_S after it: a clock reset) is
    replaced: for files by the previous timestamp plus 1/fps; for live sources (`live=True`) by
    the wall-clock time since the first frame (when that is later than the previous timestamp),
    so a camera that drops frames keeps honest times. `fallbacks` counts the replaced readings.
    """

    #: largest believable gap between two frames' presentation times, in seconds
    MAX_GAP_S = 10.0

    def __init__(self, nominal_fps: float, live: bool) -> None:
        self.period_s = 1.0 / nominal_fps if nominal_fps > 0 else 1.0 / DEFAULT_FPS
        self.live = live
        self.fallbacks = 0
        self._origin_s: float | None = None
        self._wall_origin = 0.0
        self._last = -math.inf

    def timestamp(self, pos_msec: float) -> float:
        """Seconds since the first frame for a frame whose capture reported `pos_msec` (ms)."""
        now = time.monotonic()
        pos_s = pos_msec / 1000.0 if pos_msec is not None else math.nan
        if self._origin_s is None:
            self._origin_s = pos_s if math.isfinite(pos_s) and pos_s >= 0 else 0.0
            self._wall_origin = now
            self._last = 0.0
            return 0.0
        ts = pos_s - self._origin_s
        # A file may legitimately pause for minutes (motion-triggered recording); a live source
        # that jumps that far has had its clock reset, so only live sources cap the gap.
        limit = self._last + self.MAX_GAP_S if self.live else math.inf
        if not (math.isfinite(ts) and self._last < ts <= limit):
            self.fallbacks += 1
            ts = self._last + self.period_s
            if self.live:
                ts = max(now - self._wall_origin, self._last + 1e-6)
        self._last = ts
        return ts
