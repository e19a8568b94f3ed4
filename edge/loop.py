"""The one frame loop: source -> `Pipeline.process(frame)` -> sinks.

Every use runs it: `laps-edge run` on a file, the device service, calibration recordings and
the benchmarks. What a frame produces travels as typed records:

- `FrameStep`: one frame's energies, FSQ code and stage latency, and the segments that ended
  at it;
- `FinishedSegment`: a segment with its keyframe JPEGs and optional clip, all keyed by the
  source's `Frame.index`.

A sink receives them through one small protocol (`Sink`): `frame(step)` for every frame,
`segment(finished)` for every finished segment, `stream_end(next_index, finished)` when a
stream stops. The outbox publisher, the JSONL writer, the energy-trace recorder and the metrics
are sinks; anything later plugs in the same way.

`StreamLoop.run(source)` drives one opened source to its end, to a stop request, or to a
failure of a live source; reconnecting, resuming and back-off belong to its caller (the
service's `edge.service_loop.ServiceLoop`).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Mapping, Protocol, Sequence

from edge.errors import SourceError
from edge.segments import Segment
from edge.sources.base import Frame, FrameSource


@dataclass(frozen=True)
class FinishedSegment:
    """A finished segment and the media that go with it.

    keyframes: JPEG bytes by `Frame.index` (those of `segment.keyframes` still held; empty when
    the pipeline keeps no stills). clip: MJPEG AVI bytes of the segment's frames, or None.
    """

    segment: Segment
    keyframes: Mapping[int, bytes] = field(default_factory=dict)
    clip: bytes | None = None


@dataclass(frozen=True)
class FrameStep:
    """What one frame produced.

    index, timestamp_s, source_index: the frame's `Frame.index`, timestamp (seconds from the
    stream start) and `Frame.source_index` (its position before resampling).
    raw_energy / smoothed_energy: the kernel's energy before and after the EMA at this frame.
    code: the FSQ code of this frame's newest token, -1 without a tokenizer.
    proxy_energy: the velocity-energy proxy (mean |v| of the visible points, px/step), which
    calibration's pseudo-labels need whatever the model.
    latency_ms: this frame's time per stage in ms ("track", "features", "kernel", "total").
    finished: the segments that ended at this frame.
    """

    index: int
    timestamp_s: float
    source_index: int
    raw_energy: float
    smoothed_energy: float
    code: int
    proxy_energy: float
    latency_ms: Mapping[str, float]
    finished: tuple[FinishedSegment, ...] = ()


class Sink(Protocol):
    """Receives what the loop produces. Implement the methods you need; `SinkBase` gives
    no-op defaults for the others."""

    def frame(self, step: FrameStep) -> None: ...

    def segment(self, finished: FinishedSegment) -> None: ...

    def stream_end(self, next_index: int, finished: bool) -> None: ...


class SinkBase:
    """No-op defaults of the `Sink` protocol."""

    def frame(self, step: FrameStep) -> None:
        """Called after every processed frame (its segments are delivered first)."""

    def segment(self, finished: FinishedSegment) -> None:
        """Called once per finished segment, in order."""

    def stream_end(self, next_index: int, finished: bool) -> None:
        """The stream stopped after its open segment was delivered. next_index: the
        `Frame.index` of the first frame not processed; finished: the source reached its end."""


class SegmentList(SinkBase):
    """Collects finished segments in memory (tests, benchmarks, short files)."""

    def __init__(self) -> None:
        self.items: list[FinishedSegment] = []

    def segment(self, finished: FinishedSegment) -> None:
        self.items.append(finished)

    @property
    def segments(self) -> list[Segment]:
        return [f.segment for f in self.items]


class PipelineGuard(Protocol):
    """Watches the running pipeline between frames (the OTA agent's `PipelineSwitch`)."""

    def adopt(self, current): ...

    def frame_failed(self, err: BaseException) -> bool: ...

    def frame_done(self, latency_ms: float) -> None: ...


#: Why `StreamLoop.run` returned.
ENDED, STOPPED, LOST, SWAPPED = "ended", "stopped", "lost", "swapped"


@dataclass
class StreamOutcome:
    """How a stream stopped: `reason` one of ENDED (finite source at its end), STOPPED (stop
    requested), LOST (a live source failed; `detail` says how), SWAPPED (a new pipeline wants
    another frame size or rate: reopen the source). frames: frames processed."""

    reason: str
    frames: int
    next_index: int  # the `Frame.index` of the first frame not processed (all read, at ENDED)
    detail: str = ""


class StreamLoop:
    """Feeds the frames of one opened source through a pipeline into sinks.

    pipe: an `edge.pipeline.Pipeline`. sinks: receivers of every `FrameStep` and
    `FinishedSegment`. stop: set it to stop after the current frame. pace: deliver frames no
    faster than their timestamps (a file replayed as a camera would deliver it). live: a source
    that can come back by itself: its read failures end the stream as LOST instead of raising.
    guard: optional `PipelineGuard` (OTA) consulted between frames. idle: called for frames
    skipped before `skip_to` (the service pings its watchdog there).
    """

    def __init__(self, pipe, sinks: Sequence[Sink], *, stop: threading.Event | None = None,
                 pace: bool = False, live: bool = False, guard: PipelineGuard | None = None,
                 idle: Callable[[], None] | None = None) -> None:
        self.pipe = pipe
        self.sinks = list(sinks)
        self.stop = stop or threading.Event()
        self.pace, self.live, self.guard, self.idle = pace, live, guard, idle
        self.origin_utc: datetime | None = None
        self._next_index = 0

    def run(self, source: FrameSource, origin_utc: datetime | None = None, skip_to: int = 0) -> StreamOutcome:
        """Process `source` (already opened) from its frame `skip_to` on. origin_utc: wall-clock
        time of the source's timestamp 0 (`edge.segments.stream_origin`); None: the pipeline's
        own. The pipeline is reset before and after, and its open segment is delivered at the end."""
        self.pipe.reset()
        self.origin_utc = origin_utc
        if origin_utc is not None:
            self.pipe.start_stream(origin_utc)
        self._next_index = skip_to
        try:
            outcome = self._frames(source, skip_to)
        except SourceError:
            # A file that fails part-way (truncated): keep the segment its good frames gave.
            self._end(self._next_index, finished=False)
            raise
        self._end(outcome.next_index, finished=outcome.reason == ENDED)
        return outcome

    def _end(self, next_index: int, finished: bool) -> None:
        for fin in self.pipe.finish():
            self._deliver(fin)
        for sink in self.sinks:
            sink.stream_end(next_index, finished)
        self.pipe.reset()

    def _frames(self, source: FrameSource, skip_to: int) -> StreamOutcome:
        frames = 0
        read_next = skip_to  # the index after the last frame read (skipped ones included)
        t0: float | None = None
        finite = source.frame_count is not None
        while not self.stop.is_set():
            if self.guard is not None and self._adopt():
                return StreamOutcome(SWAPPED, frames, self._next_index)
            try:
                frame = source.read()
            except SourceError as err:
                if not self.live:
                    raise  # a damaged file does not heal by reopening: the caller says so in one line
                return StreamOutcome(LOST, frames, self._next_index, str(err))
            if frame is None:
                if finite:
                    return StreamOutcome(ENDED, frames, max(read_next, self._next_index))
                return StreamOutcome(LOST, frames, self._next_index, f"source {source.name} ended; reconnecting")
            read_next = frame.index + 1
            if frame.index < skip_to:
                if self.idle is not None:
                    self.idle()  # decoded and skipped (resume): no tracking, no pacing
                continue
            if self.pace:
                if t0 is None:
                    t0 = time.monotonic() - frame.timestamp_s  # pace from here, not from the file's start
                delay = t0 + frame.timestamp_s - time.monotonic()
                if delay > 0:
                    self.stop.wait(delay)
            if not self._process(frame):
                continue
            frames += 1
            self._next_index = frame.index + 1
        return StreamOutcome(STOPPED, frames, self._next_index)

    def _process(self, frame: Frame) -> bool:
        t = time.perf_counter()
        try:
            step = self.pipe.process(frame)
        except Exception as err:
            # A model under its OTA health window takes the blame: the guard swaps back.
            if self.guard is None or not self.guard.frame_failed(err):
                raise
            return False
        if self.guard is not None:
            self.guard.frame_done((time.perf_counter() - t) * 1000.0)
        for fin in step.finished:
            self._deliver(fin)
        for sink in self.sinks:
            sink.frame(step)
        return True

    def _deliver(self, fin: FinishedSegment) -> None:
        for sink in self.sinks:
            sink.segment(fin)

    def _adopt(self) -> bool:
        """Switch to a pipeline the guard hands in; the old one's open segment is delivered
        first and the new one keeps this stream's clock. True when the source must be reopened
        (the new model wants another frame size or rate)."""
        new = self.guard.adopt(self.pipe)
        if new is None:
            return False
        for fin in self.pipe.finish():
            self._deliver(fin)
        old = (tuple(self.pipe.input_size), float(self.pipe.fps))
        self.pipe = new
        new.reset()
        if self.origin_utc is not None:
            new.start_stream(self.origin_utc)
        return (tuple(new.input_size), float(new.fps)) != old


def run_stream(source: FrameSource, pipe, sinks: Sequence[Sink] = (), origin_utc: datetime | None = None,
               **loop_options) -> list[Segment]:
    """Open `source`, run it through `pipe` into `sinks` to its end, close it; returns the
    segments (also delivered to the sinks). loop_options: those of `StreamLoop`."""
    collected = SegmentList()
    loop = StreamLoop(pipe, [*sinks, collected], **loop_options)
    with source:
        loop.run(source, origin_utc=origin_utc)
    return collected.segments
