"""The service's side of the one frame loop: open the source, reconnect with back-off, resume a
file where its committed segments end, and run `edge.loop.StreamLoop` into the device's sinks.

    ServiceLoop.run:  open source (retry with back-off; state `source_lost` while it fails)
                      -> StreamLoop.run(source) -> DevicePublisher (a sink)
                      -> DeviceRuntime.emit (media to the spool, message to the outbox)

A live source (camera, network stream) that fails is reopened; a file that cannot be read is
a one-line error (exit 2). A finite source resumes after a restart where its committed segments
end (`edge.resume`): frames are skipped by their `Frame.index`, so segment frames and times
stay those of the file.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone

from edge.config import EdgeConfig
from edge.device_runtime import DeviceRuntime
from edge.errors import SourceError
from edge.loop import ENDED, LOST, FinishedSegment, FrameStep, SinkBase, StreamLoop
from edge.outbox import SourcePosition
from edge.segments import stream_origin

log = logging.getLogger(__name__)


def is_live_spec(spec: str) -> bool:
    """True for sources that can come back by themselves (cameras, network streams, GStreamer):
    their failures are retried with back-off. Files and synthetic sources are not."""
    text = spec.strip()
    lowered = text.lower()
    return (
        text.isdigit()
        or text.startswith("/dev/")
        or lowered.startswith(("rtsp://", "rtsps://", "http://", "https://", "gst:"))
        or " ! " in text
    )


class DevicePublisher(SinkBase):
    """The device's sink: each finished segment made durable through `DeviceRuntime.emit`
    (media into the upload spool, then the message naming them into the outbox, with the source
    position after it in the same transaction); each frame counted for the metrics; the
    position of a finite source saved when a stream stops.

    identity: the source's resume identity (`edge.resume.source_identity`), None for live
    sources. fps: the rate the source was opened at (positions are stored with it).
    """

    def __init__(self, runtime: DeviceRuntime, identity: str | None, fps: float) -> None:
        self.rt, self.identity, self.fps = runtime, identity, fps

    def frame(self, step: FrameStep) -> None:
        self.rt.frame_done(step.latency_ms)

    def segment(self, finished: FinishedSegment) -> None:
        seg = finished.segment
        position = SourcePosition(self.identity, seg.end_frame, self.fps) if self.identity else None
        self.rt.emit(seg, dict(finished.keyframes), finished.clip, position=position)

    def stream_end(self, next_index: int, finished: bool) -> None:
        # After the pipeline closed its open segment: every frame before next_index is in
        # committed segments, so the next run starts there.
        if self.identity is not None:
            self.rt.save_position(SourcePosition(self.identity, next_index, self.fps, finished=finished))


class _ModelSwitch:
    """The OTA agent's `PipelineSwitch` seen from the loop: also tells the runtime and the
    service loop which model now runs."""

    def __init__(self, switch, owner: "ServiceLoop") -> None:
        self.switch, self.owner = switch, owner

    def adopt(self, current):
        new = self.switch.adopt(current)
        if new is not None:
            self.owner.rt.model_version = new.model_version
            self.owner.fps = self.owner.cfg.source.fps or float(new.fps)
            log.info("now running model %s", new.model_version)
        return new

    def frame_failed(self, err: BaseException) -> bool:
        return self.switch.frame_failed(err)

    def frame_done(self, latency_ms: float) -> None:
        self.switch.frame_done(latency_ms)


class ServiceLoop:
    """Reads the source, feeds the pipeline, emits segments; survives source failures.

    switch: the OTA agent's `PipelineSwitch` (hands in a restarted pipeline between two frames
    and watches its health window), None without OTA.
    """

    def __init__(self, config: EdgeConfig, pipe, runtime: DeviceRuntime, switch=None) -> None:
        self.cfg, self.rt = config, runtime
        self.fps = config.source.fps or float(pipe.fps)
        self.identity = None
        if config.source.resume and not is_live_spec(config.source.spec):
            from edge.resume import source_identity

            self.identity = source_identity(config.source.spec)
        self.publisher = DevicePublisher(runtime, self.identity, self.fps)
        self.stream = StreamLoop(
            pipe, [self.publisher], stop=runtime.stop_event, pace=config.source.pace,
            live=is_live_spec(config.source.spec), idle=runtime.tick,
            guard=_ModelSwitch(switch, self) if switch is not None else None,
        )

    @property
    def pipe(self):
        """The pipeline running now (OTA may have swapped it)."""
        return self.stream.pipe

    def run(self) -> None:
        rt, cfg = self.rt, self.cfg
        from edge.sources.factory import open_source

        backoff = cfg.source.reconnect_min_s
        ready = False
        opened = False  # a later opening is a reconnect (counted for Prometheus)
        t_start = time.monotonic()
        while not rt.stop_event.is_set():
            skip_to = self._resume_point()
            if skip_to is None:
                return  # a file processed to its end by an earlier run
            try:
                source = open_source(cfg.source.spec, fps=self.fps, size=tuple(self.pipe.input_size),
                                     allow_truncated=cfg.source.allow_truncated)
                source.open()
            except SourceError as err:
                if not self.stream.live:
                    raise  # a missing or unreadable file does not heal by waiting: one-line error, exit 2
                rt.set_source_state("source_lost", str(err))
                if not ready and time.monotonic() - t_start >= cfg.source.ready_timeout_s:
                    rt.notifier.ready(f"running without a source: {err}")
                    ready = True
                rt.sleep(backoff * 1.0)
                backoff = min(backoff * 2.0, cfg.source.reconnect_max_s)
                continue
            # Segment times: the source's clock, anchored so a fast replay never runs ahead of now.
            origin = stream_origin(datetime.now(timezone.utc), frame_count=source.frame_count,
                                   fps=source.fps, paced=cfg.source.pace)
            rt.set_source_state("online", f"{source.name or cfg.source.spec} at {self.fps:g} fps")
            if opened:
                rt.source_reconnects += 1
            opened = True
            if not ready:
                rt.reset_metrics_window()  # fps and latency count from the first frame, not from start-up
                rt.notifier.ready(f"running: {cfg.source.spec}, model {self.pipe.model_version}")
                ready = True
            backoff = cfg.source.reconnect_min_s
            self.publisher.fps = self.fps  # the rate this opening delivers frames at
            try:
                outcome = self.stream.run(source, origin_utc=origin, skip_to=skip_to)
            finally:
                source.close()
            if outcome.reason == LOST:
                rt.set_source_state("source_lost", outcome.detail)
            if outcome.reason == ENDED:
                log.info("source ended (finite stream): %s", cfg.source.spec)
                return

    def _resume_point(self) -> int | None:
        """The frame this opening starts at, from the recorded position; None when the source
        was already processed to its end (nothing to do)."""
        if self.identity is None:
            return 0
        from edge.resume import resume_frame

        pos = self.rt.outbox.position(self.identity)
        if pos is None:
            return 0
        if pos.finished:
            log.info("source %s was processed to its end by an earlier run (%d frames); nothing to do "
                     "(set source.resume = false to process it again)", self.cfg.source.spec, pos.frame)
            return None
        skip_to = resume_frame(pos.frame, pos.fps, self.fps)
        if skip_to:
            log.info("resuming %s at frame %d (%.1f s), where the committed segments of the last run end; "
                     "skipping the frames before it", self.cfg.source.spec, skip_to, skip_to / self.fps)
        return skip_to
