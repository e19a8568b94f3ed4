"""Resampling a source to the model's frame rate by timestamp, and resizing to its input size.

`FpsResampler` lays a grid of ticks every 1/target_fps seconds, starting at the first frame's
timestamp, and delivers for each tick the source frame whose timestamp is nearest to it (ties go
to the earlier frame). It looks at timestamps, never at frame counts, so a 30 fps file, a 25 fps
file and a camera with jittery or variable frame times all give frames close to the same 0.1 s
ticks at 10 fps. Ticks after the last source frame are not filled.

A source slower than the target (or one that drops frames) does NOT get frames duplicated: a tick
whose nearest frame was already delivered for an earlier tick is skipped, and `skipped_ticks`
counts them (a warning is logged once). Duplicating would feed the tracker a zero-motion step
followed by a double step, which looks like stop-and-go motion to the tokenizer; skipping keeps
every step a real displacement, at the cost of a lower effective rate (visible in the
timestamps). Delivered frames keep their true presentation time in `timestamp_s`; `tick_s` on the
resampler says which tick the last frame was chosen for.

The output `Frame.index` counts delivered frames from 0; `Frame.source_index` is the index in the
underlying stream (kept through nested wrappers).
"""

from __future__ import annotations

import logging
import math
from collections import deque

import cv2

from edge.errors import ConfigError
from edge.sources.base import Frame, FrameSource

log = logging.getLogger(__name__)


class FpsResampler(FrameSource):
    """Deliver the frames of `source` nearest to ticks every 1/`target_fps` seconds.

    `target_fps`: output rate in frames per second (> 0). Opening/closing opens/closes the
    wrapped source. `frame_count` is exact for constant-rate sources whose count is known.
    """

    # Two timestamps closer than this (s) are treated as equally near a tick; the earlier wins.
    _TIE_S = 1e-9

    def __init__(self, source: FrameSource, target_fps: float) -> None:
        self.target_fps = check_fps(target_fps)
        self.source = source
        self.name = f"{source.name}@{self.target_fps:g}fps"
        self.skipped_ticks = 0
        self.tick_s = math.nan
        self._reset()

    def _reset(self) -> None:
        self._tick = 0                      # index k of the next tick to fill
        self._origin = math.nan             # timestamp of the first source frame
        self._prev: Frame | None = None     # latest source frame before the next tick
        self._last_source_index = -1        # source frame delivered last (never twice)
        self._out: deque[tuple[Frame, float]] = deque()
        self._index = 0
        self._exhausted = False
        self._warned = False

    def open(self) -> None:
        self.source.open()
        self._reset()
        self.skipped_ticks = 0

    def close(self) -> None:
        self.source.close()

    def read(self) -> Frame | None:
        while not self._out:
            if self._exhausted:
                return None
            frame = self.source.read()
            if frame is None:
                self._exhausted = True
                return None
            self._consume(frame)
        chosen, tick = self._out.popleft()
        self.tick_s = tick
        out = Frame(image=chosen.image, timestamp_s=chosen.timestamp_s, index=self._index,
                    source_index=chosen.source_index)
        self._index += 1
        return out

    def _tick_time(self, k: int) -> float:
        # origin + k * period, not a running sum, so long streams do not drift
        return self._origin + k / self.target_fps

    def _consume(self, frame: Frame) -> None:
        """Take one source frame; queue the frames chosen for every tick it closes."""
        ts = frame.timestamp_s
        if math.isnan(self._origin):
            self._origin = ts
        while ts >= self._tick_time(self._tick) - self._TIE_S:
            tick = self._tick_time(self._tick)
            chosen = frame
            if self._prev is not None and (tick - self._prev.timestamp_s) <= (ts - tick) + self._TIE_S:
                chosen = self._prev
            if chosen.source_index != self._last_source_index:
                self._last_source_index = chosen.source_index
                self._out.append((chosen, tick))
            else:
                self.skipped_ticks += 1
                if not self._warned:
                    self._warned = True
                    log.warning(
                        "%s delivers frames less often than %g fps; ticks without a new frame "
                        "are skipped, not filled with duplicates", self.source.name,
                        self.target_fps,
                    )
            self._tick += 1
        self._prev = frame

    @property
    def fps(self) -> float:
        return self.target_fps

    @property
    def frame_size(self) -> tuple[int, int]:
        return self.source.frame_size

    @property
    def frame_count(self) -> int | None:
        """Ticks between the first and the last source frame, for a constant-rate source."""
        n = self.source.frame_count
        src_fps = self.source.fps
        if n is None or not src_fps or src_fps <= 0:
            return None
        if src_fps < self.target_fps:
            return n  # every frame delivered once, ticks in between skipped
        return int(math.floor((n - 1) / src_fps * self.target_fps + 1e-6)) + 1


class ResizeSource(FrameSource):
    """Frames of `source` resized to `size` = (width, height) pixels (the model's input size).

    The image is scaled to exactly that size, without keeping the aspect ratio: the tracker's
    pixel convention is the model input, and a fixed camera gives the same mapping in training
    and on the device. INTER_AREA when shrinking (no aliasing of fine texture the tracker
    follows), INTER_LINEAR when enlarging. Timestamps and indices pass through unchanged.
    """

    def __init__(self, source: FrameSource, size: tuple[int, int]) -> None:
        self.size = check_size(size)
        self.source = source
        self.name = f"{source.name}@{self.size[0]}x{self.size[1]}"

    def open(self) -> None:
        self.source.open()

    def close(self) -> None:
        self.source.close()

    def read(self) -> Frame | None:
        frame = self.source.read()
        if frame is None:
            return None
        h, w = frame.image.shape[:2]
        if (w, h) == self.size:
            return frame
        shrink = self.size[0] * self.size[1] < w * h
        image = cv2.resize(frame.image, self.size,
                           interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        return Frame(image=image, timestamp_s=frame.timestamp_s, index=frame.index,
                     source_index=frame.source_index)

    @property
    def fps(self) -> float:
        return self.source.fps

    @property
    def frame_size(self) -> tuple[int, int]:
        return self.size

    @property
    def frame_count(self) -> int | None:
        return self.source.frame_count


def resample(source: FrameSource, target_fps: float) -> FrameSource:
    """`source` resampled by timestamp to `target_fps` frames per second (see FpsResampler)."""
    return FpsResampler(source, target_fps)


def resize(source: FrameSource, size: tuple[int, int]) -> FrameSource:
    """`source` with every frame resized to `size` = (width, height) pixels."""
    return ResizeSource(source, size)


def check_fps(fps: float) -> float:
    """`fps` as a float if it is a finite positive number, else ConfigError."""
    try:
        value = float(fps)
    except (TypeError, ValueError):
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"fps must be a positive number of frames per second, got {fps!r}; use e.g. 10")
    return value


def check_size(size: tuple[int, int]) -> tuple[int, int]:
    """`size` as (width, height) ints if both are positive, else ConfigError."""
    try:
        w, h = size
        ok = int(w) == w and int(h) == h and int(w) > 0 and int(h) > 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ConfigError(
            f"frame size must be (width, height) in positive whole pixels, got {size!r}; "
            f"use e.g. (320, 240)"
        )
    return int(w), int(h)

