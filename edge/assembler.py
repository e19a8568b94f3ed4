"""Turn the energy kernel's per-step events into `edge.segments.Segment` records.

The device loop (and `segments_from_features`) calls, for every step:

    event = energy_step(state, params, energy)        # or latent_step(state, params, z)
    segments = assembler.push(state, event, code)     # the Segments kept at this step (0, 1 or 2)
    ...
    segments = assembler.finish(state, finish(state, params))   # at end of stream

The assembler reads the step index, the smoothed energy and the segment bounds from the kernel
state, so it never re-derives the state machine. Each step may carry the source frame it came
from (`Frame.index`, `Frame.timestamp_s`): segment frames and times are then the source's own,
whatever its rate and gaps; without them step t is frame t at t / fps seconds. START is emitted `up_steps - 1` steps after the
segment's first step, so the last `lookback_steps` steps are kept in a ring until START; after
START the open segment keeps one code and one smoothed energy per step (compact arrays). Memory is
therefore O(lookback_steps + length of the open segment), independent of the stream length; a
`max_steps` cap in the kernel bounds the open segment too. A within-activity SPLIT closes the
open segment's first part and keeps the rest open; SPLIT_END closes both parts.
"""

from __future__ import annotations

import math
from array import array
from collections import deque
from datetime import datetime, timezone
from typing import Sequence

import numpy as np

from edge.energy.kernel import (
    EVENT_DISCARD,
    EVENT_END,
    EVENT_SPLIT,
    EVENT_SPLIT_END,
    EVENT_START,
    energy_step,
    finish,
    latent_step,
    new_state,
    segment_end,
    segment_start,
    smoothed_energy,
    split_at,
    step_index,
)
from edge.energy.params import HysteresisParams
from edge.errors import ConfigError, LapsError
from edge.segments import Segment, utc_iso, uuid7


class AssemblerError(LapsError):
    """The assembler was driven out of order or configured too small for the kernel."""


class SegmentAssembler:
    """Builds a `Segment` per kept kernel segment.

    fps:            model steps per second: the time of a step pushed without a timestamp is
                    its index / fps, and a segment still open at the end of the stream ends one
                    1 / fps after its last step when no later frame shows where it ends.
    origin_utc:     timezone-aware wall-clock time of timestamp 0; default: now, at construction.
    model_version:  copied into every Segment.
    n_keyframes:    keyframes per segment, evenly spaced frame indices from the first to the last
                    step (3 = first, middle, last); fewer when the segment is shorter.
    lookback_steps: steps kept before START is confirmed; must be >= the kernel's up_steps.
    """

    def __init__(
        self,
        fps: float,
        origin_utc: datetime | None = None,
        model_version: str = "",
        n_keyframes: int = 3,
        lookback_steps: int = 16,
    ) -> None:
        if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
            raise ConfigError(
                f"fps={fps!r} is not allowed; give a positive number of steps per second"
            )
        if n_keyframes < 0:
            raise ConfigError(f"n_keyframes={n_keyframes!r} is negative; give 0 or more")
        if lookback_steps < 1:
            raise ConfigError(
                f"lookback_steps={lookback_steps!r} is too small; give at least the "
                f"kernel's up_steps"
            )
        if origin_utc is None:
            origin_utc = datetime.now(timezone.utc)
        elif origin_utc.tzinfo is None:
            raise ConfigError(
                f"origin_utc={origin_utc.isoformat()} has no time zone; pass an aware datetime "
                f"such as datetime.now(timezone.utc)"
            )
        self.fps = float(fps)
        self.origin_utc = origin_utc
        self.model_version = model_version
        self.n_keyframes = int(n_keyframes)
        self.lookback_steps = int(lookback_steps)
        # Per step: (step, smoothed energy, code, source frame index, source timestamp s).
        self._ring: deque[tuple[int, float, int | None, int, float]] = deque(maxlen=self.lookback_steps)
        self._next_step = 0
        self._with_codes: bool | None = None  # decided by the first push
        self._open_start = -1
        self._open_y = array("d")
        self._open_codes = array("q")
        self._open_index = array("q")
        self._open_time = array("d")
        self._source_clock = False  # True once a step came with the source's timestamp

    @property
    def oldest_frame(self) -> int | None:
        """The source frame index of the oldest step still held (the open segment's first step,
        else the oldest step of the look-back ring); None before the first push. A segment
        finished later cannot start before it, so per-step data of older frames can go."""
        if self._open_start >= 0 and len(self._open_index):
            return int(self._open_index[0])
        if self._ring:
            return int(self._ring[0][3])
        return None

    @property
    def buffered_steps(self) -> int:
        """Steps currently held (ring before START plus the open segment)."""
        return len(self._ring) + len(self._open_y)

    def push(self, state: np.ndarray, event: int, code: int | None = None,
             frame_index: int | None = None, timestamp_s: float | None = None) -> list[Segment]:
        """Record the step just taken by the kernel; returns the Segments it closed and kept
        (one for END or SPLIT, two for SPLIT_END, none otherwise).

        state: the kernel state right after the step; event: what that step returned; code: the
        step's FSQ code, given on every push or on none (codes are optional as a whole).
        frame_index / timestamp_s: the source frame of this step (`Frame.index`, seconds from
        the stream start); default: the step index and step / fps.
        """
        t = step_index(state)
        if t != self._next_step:
            raise AssemblerError(
                f"push() got kernel step {t} but expected step {self._next_step}; call push() "
                f"exactly once after every energy_step/latent_step, in order"
            )
        self._next_step = t + 1
        has_code = code is not None
        if self._with_codes is None:
            self._with_codes = has_code
        elif has_code != self._with_codes:
            raise AssemblerError(
                f"step {t} was pushed {'with' if has_code else 'without'} a code but earlier "
                f"steps were not; give a code on every step or on none"
            )
        y = smoothed_energy(state)
        index = t if frame_index is None else int(frame_index)
        ts = t / self.fps if timestamp_s is None else float(timestamp_s)
        self._source_clock = self._source_clock or timestamp_s is not None
        if self._open_start >= 0:
            self._open_y.append(y)
            self._open_index.append(index)
            self._open_time.append(ts)
            if has_code:
                self._open_codes.append(int(code))
        else:
            self._ring.append((t, y, int(code) if has_code else None, index, ts))

        if event == EVENT_START:
            self._open_from_ring(segment_start(state))
            return []
        return self._closing(state, event)

    def finish(self, state: np.ndarray, event: int) -> list[Segment]:
        """End of stream: `event` is what `edge.energy.kernel.finish(state, params)` returned."""
        return self._closing(state, event)

    # --- helpers -------------------------------------------------------------------------------

    def _closing(self, state: np.ndarray, event: int) -> list[Segment]:
        if event == EVENT_SPLIT:
            return [self._split(split_at(state))]
        if event == EVENT_SPLIT_END:
            first = self._split(split_at(state))
            return [first, self._close(segment_end(state), keep=True)]
        if event == EVENT_END or event == EVENT_DISCARD:
            segment = self._close(segment_end(state), keep=event == EVENT_END)
            return [] if segment is None else [segment]
        return []

    def _split(self, at: int) -> Segment:
        """Close the open segment's part before step `at` (kept); the rest stays open from `at`."""
        start = self._open_start
        n = at - start
        segment = self._build(start, self._open_y[:n], self._open_codes[:n], self._open_index[:n + 1],
                              self._open_time[:n + 1])
        del self._open_y[:n]
        del self._open_codes[:n]
        del self._open_index[:n]
        del self._open_time[:n]
        self._open_start = at
        return segment

    def _open_from_ring(self, start: int) -> None:
        if not self._ring or self._ring[0][0] > start:
            oldest = self._ring[0][0] if self._ring else self._next_step
            raise AssemblerError(
                f"segment starts at step {start} but the assembler only kept steps from {oldest}; "
                f"set lookback_steps (now {self.lookback_steps}) >= the kernel's up_steps"
            )
        self._open_start = start
        for step, y, code, index, ts in self._ring:
            if step >= start:
                self._open_y.append(y)
                self._open_index.append(index)
                self._open_time.append(ts)
                if code is not None:
                    self._open_codes.append(code)
        self._ring.clear()

    def _close(self, end: int, keep: bool) -> Segment | None:
        start = self._open_start
        n = end - start
        # A confirmed OFF ends the segment at the first step of the down run: drop those steps
        # (that first step stays in the index/time arrays: it is where the segment ends).
        del self._open_y[n:]
        del self._open_codes[n:]
        segment = None
        if keep:
            segment = self._build(start, self._open_y, self._open_codes, self._open_index[:n + 1],
                                  self._open_time[:n + 1])
        self._open_start = -1
        self._open_y = array("d")
        self._open_codes = array("q")
        self._open_index = array("q")
        self._open_time = array("d")
        return segment

    def _build(self, first_step: int, ys_buf: array, codes: array, index: array, times: array) -> Segment:
        """A Segment over the steps of `ys_buf` (kernel steps from `first_step`); `index`/`times` hold the source frame index and
        timestamp of those steps plus, when already seen, of the first step after them (where
        the segment ends). Without that step (end of stream) the segment ends one frame period
        after its last frame: the period its source showed last, else 1 / fps."""
        n = len(ys_buf)
        start, start_s = int(index[0]), float(times[0])
        if len(index) > n:
            end, end_s = int(index[n]), float(times[n])
        elif not self._source_clock:
            end = int(index[n - 1]) + 1
            end_s = end / self.fps  # the step clock, exactly (no accumulated float error)
        else:
            period = float(times[n - 1] - times[n - 2]) if n >= 2 else 1.0 / self.fps
            if not (period > 0 and math.isfinite(period)):
                period = 1.0 / self.fps
            end, end_s = int(index[n - 1]) + 1, float(times[n - 1]) + period
        step_frames = [int(i) for i in index[:n]]
        start_utc = utc_iso(self.origin_utc, start_s)
        # Whole milliseconds of the origin plus the offset, so 0.3 s never floors to 299 ms.
        unix_ms = int(math.floor(self.origin_utc.timestamp() * 1000.0)) + int(math.floor(start_s * 1000.0 + 1e-6))
        ys = np.frombuffer(ys_buf, dtype=np.float64) if len(ys_buf) else np.zeros(0)
        finite = ys[np.isfinite(ys)]
        return Segment(
            segment_id=str(uuid7(unix_ms)),
            start_frame=start,
            end_frame=end,
            start_s=start_s,
            end_s=end_s,
            fps=self.fps,
            start_utc=start_utc,
            end_utc=utc_iso(self.origin_utc, end_s),
            codes=list(codes),
            energy_mean=float(finite.mean()) if finite.size else 0.0,
            energy_max=float(finite.max()) if finite.size else 0.0,
            keyframes=[step_frames[k - first_step]
                       for k in keyframe_indices(first_step, first_step + n, self.n_keyframes)],
            model_version=self.model_version,
        )


def keyframe_indices(start: int, end: int, n: int) -> list[int]:
    """`n` frame indices evenly spaced over [start, end - 1] (first and last included), unique."""
    if n <= 0 or end <= start:
        return []
    if n == 1:
        return [(start + end - 1) // 2]
    idx = np.rint(np.linspace(start, end - 1, n)).astype(np.int64)
    return sorted(set(int(i) for i in idx))


def segments_from_features(
    features: np.ndarray,
    fps: float,
    params: HysteresisParams,
    codes: Sequence[int] | np.ndarray | None = None,
    origin_utc: datetime | None = None,
    model_version: str = "",
    n_keyframes: int = 3,
) -> list[Segment]:
    """Segments of any per-step feature sequence, through the same kernel step as the device.

    features: (T,) raw energies, or (T, D) per-step vectors (quantised latents, pre-quantisation
    latents, velocities, ...) whose step-to-step L2 distance is the energy (and, with a split
    window in `params`, whose window means the split step compares). codes: optional (T,)
    ints copied into the segments. Runs `energy_step`/`latent_step` once per step from Python
    (the device path), then `finish`.
    """
    x = np.asarray(features)
    if x.ndim not in (1, 2):
        raise ConfigError(
            f"features have shape {x.shape}; expected (T,) energies or (T, D) vectors"
        )
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    x = np.ascontiguousarray(x)
    n_steps = x.shape[0]
    if codes is not None and len(codes) != n_steps:
        raise ConfigError(
            f"codes have length {len(codes)} but features have {n_steps} steps; "
            f"give one code per step"
        )
    p = params.to_array()
    assembler = SegmentAssembler(
        fps, origin_utc=origin_utc, model_version=model_version, n_keyframes=n_keyframes,
        lookback_steps=params.up_steps,
    )
    out: list[Segment] = []
    if x.ndim == 1:
        state = new_state(0)
        step = energy_step
    else:
        state = new_state(x.shape[1])
        step = latent_step
    code_list = None if codes is None else [int(c) for c in codes]
    for t in range(n_steps):
        event = step(state, p, x[t])
        out.extend(assembler.push(state, event, None if code_list is None else code_list[t]))
    out.extend(assembler.finish(state, finish(state, p)))
    return out
