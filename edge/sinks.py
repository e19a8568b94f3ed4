"""Sinks of the frame loop (`edge.loop.Sink`) that any caller can plug in.

- `JsonlSink`: finished segments appended to a JSONL file (`edge.segments.SegmentWriter`).
- `FrameLimit`: stops the loop after the frames of the first N seconds.
- `ProgressBar`: a tqdm bar over the frames (stderr).

The device's own sink (outbox, upload spool, metrics) is `edge.service_loop.DevicePublisher`; the
energy trace `laps-calibrate` reads is gathered by `edge.energy_trace.EnergyTraceRecorder`.
"""

from __future__ import annotations

import os
import threading

from edge.loop import FinishedSegment, FrameStep, SinkBase
from edge.segments import SegmentWriter


class JsonlSink(SinkBase):
    """Appends every finished segment to `path` (one JSON object per line, flushed per segment)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.writer = SegmentWriter(path)

    def segment(self, finished: FinishedSegment) -> None:
        self.writer.write(finished.segment)

    def close(self) -> None:
        self.writer.close()


class FrameLimit(SinkBase):
    """Sets `stop` once the first int(max_seconds * fps) frames (by `Frame.index`, at the model
    fps) are processed; the loop then closes the open segment and stops."""

    def __init__(self, max_seconds: float, stop: threading.Event, fps: float) -> None:
        # The last frame processed is the one before max_seconds (as frame index < seconds * fps).
        self.last_index = int(max_seconds * fps) - 1
        self.stop = stop

    def frame(self, step: FrameStep) -> None:
        if step.index >= self.last_index:
            self.stop.set()


class ProgressBar(SinkBase):
    """A tqdm progress bar over the frames on stderr; `close()` ends it."""

    def __init__(self, total: int | None, desc: str, disable: bool = False, leave: bool = True) -> None:
        import sys

        from tqdm import tqdm

        self.bar = tqdm(total=total, desc=desc, unit="frame", disable=disable, file=sys.stderr, leave=leave)
        self.frames = 0

    def frame(self, step: FrameStep) -> None:
        self.frames += 1
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()
