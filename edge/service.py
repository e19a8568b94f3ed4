"""The long-running device service behind `laps-edge run --config FILE`.

`run_service(config)` wires the pieces and runs the frame loop until SIGTERM/SIGINT:

    source (reconnect with back-off, state reported) -> Pipeline.process -> segments
      -> SegmentEmitter: keyframes/clip to the upload spool, the `laps.segment/1` message into
         the outbox (fsync) -> MqttLink forwards it (QoS 1; central's `laps.ack/1` deletes the
         row, or the PUBACK with mqtt.delivery = "broker")
      -> UploadWorker: periodic batches, PUT, manifest announced on `.../batches`
    every frame: systemd watchdog ping (from the frame loop itself, so a stuck loop is noticed)
    every metrics.interval_s: `.../metrics` (fps, stage latency, outbox depth, evictions, ...)
    on scrape, with [metrics] prometheus_port set: the same figures for Prometheus (edge.prometheus)

Start-up order: models loaded and warmed (Numba compiled, one dummy inference) and the source
opened BEFORE READY=1. A source that cannot be opened is retried with back-off while the
device reports `source_lost` on `.../state`; after `source.ready_timeout_s` READY is sent anyway
so systemd keeps the process (alive and reporting) instead of restart-looping on an unplugged
camera.

Full disk (`edge.disk_floor`): below `paths.min_free_bytes` free, the oldest upload media, then
the oldest unsent segments are evicted (counted, logged, "disk" on `.../metrics`); a write that
still fails is retried once, then dropped and counted; the process keeps running and starts on
a full disk. A finite source resumes after a restart where its committed segments end
(`edge.resume`).

Shutdown (SIGTERM/SIGINT): the pipeline closes its open segment, which is committed to the
outbox; the link drains for up to `mqtt.drain_timeout_s`, publishes the retained "stopped"
state and DISCONNECTs normally, so the broker does not fire the last will. Exit status 0.

`python -m edge.service --config FILE --synthetic-segments N` runs the same service without a
pipeline, fed by a synthetic segment generator: the reliability tests and the benchmark use it
to exercise the real outbox/MQTT/upload path in a real process that can be SIGKILLed.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sqlite3
import sys
import threading
import time
import uuid
from pathlib import Path
from datetime import datetime, timezone
from typing import Callable, Iterable, Iterator

from edge.config import EdgeConfig, load_config
from edge.disk_floor import DiskFloor
from edge.errors import ConfigError, LapsError, SourceError
from edge.messages import BatchManifest, MetricsMessage, SegmentMessage, StateMessage, Topics
from edge.outbox import Outbox, SourcePosition, is_disk_full
from edge.prometheus import StageLatency, serve_device_metrics
from edge.model import resolve_model_spec
from edge.sdnotify import SystemdNotifier
from edge.segments import Segment, stream_origin, utc_iso, uuid7

log = logging.getLogger(__name__)


def run_service(config: EdgeConfig) -> int:
    """Run the device service until SIGTERM/SIGINT (0) or the end of a finite source (0).

    Raises `LapsError` (one line) for a bad config, an unreadable model or a source that can
    never work (a missing video file); the CLI driver prints it and exits 2.
    """
    _prepare_numba_cache(config)
    runtime = DeviceRuntime(config)
    ota = None
    try:
        model_dir = resolve_model_spec(config.model.dir)
        if config.ota.enabled:
            from edge.ota.device import OtaRuntime

            # Recovers an interrupted update and seeds the store; the model is <ota.root>/current.
            ota = OtaRuntime(config, runtime)
            model_dir = str(ota.model_dir)
        runtime.notifier.status("loading models")
        pipe = make_pipeline(config, model_dir)
        runtime.start(model_version=pipe.model_version, providers=list(pipe.providers_in_use))
        runtime.notifier.status("warming up (models, Numba kernel)")
        t0 = time.monotonic()
        pipe.warm_up()
        log.info("pipeline warm in %.2f s: model %s, providers %s, %g fps, input %dx%d",
                 time.monotonic() - t0, pipe.model_version, ",".join(pipe.providers_in_use),
                 pipe.fps, *pipe.input_size)
        loop = FrameLoop(config, pipe, runtime, switch=ota.switch if ota is not None else None)
        if ota is not None:
            def restart_on(bundle_dir) -> object:  # the agent's "restart the pipeline in-process"
                new = make_pipeline(config, str(bundle_dir))
                new.warm_up()
                return new

            ota.start(build_pipeline=restart_on, current_pipeline=lambda: loop.pipe)
        loop.run()
    except BaseException as err:
        if ota is not None:
            ota.stop()
        runtime.close(detail=f"stopped by error: {err}" if isinstance(err, LapsError) else "stopped by error")
        raise
    if ota is not None:
        ota.stop()
    runtime.close(detail="stopped")
    return 0


def make_pipeline(config: EdgeConfig, model_dir: str | None, keep_keyframes: bool | None = None):
    """The pipeline the config asks for, on `model_dir` (None: the velocity-energy proxy).
    keep_keyframes: default = whether uploads are on."""
    from edge.pipeline import build_pipeline

    return build_pipeline(
        model_dir=model_dir,
        tracker=config.model.tracker,
        providers=config.model.providers,
        params=_threshold_params(config),
        calibration_path=config.model.calibration or None,
        keep_keyframes=config.upload.enabled if keep_keyframes is None else keep_keyframes,
    )


def configured_model_dir(config: EdgeConfig) -> str | None:
    """The model directory the service would start on, without changing anything: with OTA the
    store's `current` once it exists, else `model.dir` resolved ("default", "none", a path)."""
    if config.ota.enabled:
        current = Path(config.ota_root) / "current"
        if current.exists():
            return str(current)
    return resolve_model_spec(config.model.dir)


# -- the device side that does not depend on the pipeline --------------------------------------------
class DeviceRuntime:
    """Outbox, MQTT link, upload, systemd notifier, signal handling and metrics of one device.

    Shared by `run_service` (with the pipeline) and `run_publisher` (synthetic segments), so the
    tests exercise the very code the service runs.
    """

    def __init__(self, config: EdgeConfig) -> None:
        self.cfg = config
        self.boot_id = str(uuid.uuid4())
        self.topics = Topics(config.device.site, config.device.id)
        self.notifier = SystemdNotifier()
        self.stop_event = threading.Event()
        self.started_at = time.monotonic()
        self.model_version = ""
        self.providers: list[str] = []
        self.source_state = "starting"
        self.source_detail = ""
        self.frames_total = 0
        self.segments_total = 0
        self.seq = 0
        self._frames_since = 0
        self.latency = StageLatency()
        self.fps_last = 0.0  # frames/s over the last metrics interval
        self.source_reconnects = 0
        self.ota_state = "idle"  # the last OTA status reported (edge.ota.device.OtaRuntime.report)
        self.ota_installed_version: int | None = None
        self._last_metrics = time.monotonic()
        self.prometheus = None
        self._previous_handlers: dict[int, object] = {}
        self.link = None
        self.spool = None
        self.uploader = None
        self._make_dirs()
        # On a full disk the oldest media go before the outbox is opened, so the service starts.
        self.disk = DiskFloor(config.paths.state_dir, config.paths.min_free_bytes)
        self.spool = self._open_spool()
        self.disk.attach(spool=self.spool)
        self.disk.before_write(0)
        self.outbox = self._open_outbox()
        self.disk.attach(outbox=self.outbox)
        self._install_signals()

    # -- start / stop -----------------------------------------------------------------------------
    def start(self, model_version: str, providers: list[str]) -> None:
        """Connect MQTT (in the background) and start the upload worker."""
        from edge.mqtt_link import MqttLink

        self.model_version, self.providers = model_version, providers
        cfg = self.cfg
        self.prometheus = serve_device_metrics(self)
        if self.prometheus is not None:
            log.info("Prometheus metrics on %s", self.prometheus.url)
        if self.spool is not None:
            from edge.upload import BatchUploader, UploadWorker

            token = ""
            if cfg.upload.token_file:
                token = open(cfg.upload.token_file, encoding="utf-8").read().strip()
            self.uploader = UploadWorker(
                self.spool,
                BatchUploader(cfg.upload.endpoint, cfg.device.id, timeout_s=cfg.upload.timeout_s,
                              ca_file=cfg.upload.ca, token=token, site=cfg.device.site,
                              cert_file=cfg.upload.cert, key_file=cfg.upload.key),
                interval_s=cfg.upload.interval_s,
                announce=self.announce_batch,
            )
            self.uploader.start()
        if cfg.mqtt.enabled:
            self.link = MqttLink(
                cfg.mqtt, client_id=cfg.client_id, topics=self.topics, outbox=self.outbox,
                will=self._state("offline", "connection lost (last will)"),
                credentials=cfg.mqtt.credentials(cfg.origin), origin=cfg.origin,
            )
            self.link.set_state(self._state("online", "starting"))
            self.link.start()
        else:
            log.warning("mqtt.enabled = false: segments stay in the outbox %s (capped, evictions counted)",
                        self.cfg.outbox_path)

    def close(self, detail: str = "stopped") -> None:
        """Clean shutdown: stop upload, drain and disconnect MQTT without the will, close the outbox."""
        self.notifier.stopping(detail)
        if self.uploader is not None:
            self.uploader.stop()
        if self.link is not None:
            self.link.stop(final_state=self._state("stopped", detail))
            self.link = None
        if self.prometheus is not None:
            self.prometheus.close()
            self.prometheus = None
        stats = self.outbox.stats()
        self.outbox.close()
        log.info("stopped: outbox holds %d unsent message(s) for the next start; %d evicted in total",
                 stats.depth, stats.evicted_total)
        self._restore_signals()
        self.notifier.close()

    # -- segments --------------------------------------------------------------------------------
    def emit(self, segment: Segment, keyframes: dict[int, bytes] | None = None, clip: bytes | None = None,
             position: SourcePosition | None = None) -> SegmentMessage:
        """Make a finished segment durable: files into the upload spool, message into the outbox
        (with `position`, the source position after it, in the same transaction).

        Returns the message. When this returns, the segment survives a crash or power cut, unless
        the disk was full even after eviction (then it is dropped and counted, see DiskFloor).
        """
        frames: list[int] = []
        if self.spool is not None and (keyframes or clip):
            size = sum(len(b) for b in (keyframes or {}).values()) + len(clip or b"")
            failed = self._write_with_room(size, lambda: self.spool.add_segment(segment.segment_id, keyframes or {}, clip))
            if failed is None:
                frames = sorted(keyframes or {})
            else:
                self.disk.dropped("media of segment", segment.segment_id, failed)
        msg = SegmentMessage.from_segment(
            segment, device_id=self.cfg.device.id, site=self.cfg.device.site, boot_id=self.boot_id,
            seq=self.seq, model_version=segment.model_version or self.model_version, keyframes=frames,
        )
        payload = msg.to_json()
        # With delivery "central" the row stays until central has committed the segment.
        end_to_end = self.cfg.mqtt.delivery == "central"
        failed = self._write_with_room(len(payload), lambda: self.outbox.put(
            segment.segment_id, self.topics.segments, payload, end_to_end=end_to_end, position=position))
        if failed is not None:
            self.disk.dropped("segment", segment.segment_id, failed)
        self.seq += 1
        self.segments_total += 1
        if self.link is not None:
            self.link.wake()
        return msg

    def announce_batch(self, message: BatchManifest) -> None:
        """Queue a batch announcement durably (called by the upload worker after a 2xx)."""
        key, payload = f"batch:{message.archive.sha256}", message.to_json()
        failed = self._write_with_room(len(payload), lambda: self.outbox.put(key, self.topics.batches, payload))
        if failed is not None:
            self.disk.dropped("batch announcement", key, failed)
        if self.link is not None:
            self.link.wake()

    def save_position(self, position: SourcePosition) -> None:
        """Record how far a finite source is done (between segments: a stop, its end)."""
        failed = self._write_with_room(64, lambda: self.outbox.set_position(position))
        if failed is not None:
            log.error("disk full: the position of %s (frame %d) is not saved (%s); a restart re-processes "
                      "from the last committed segment", position.source, position.frame, failed)

    def _write_with_room(self, nbytes: int, write: Callable[[], object]) -> BaseException | None:
        """Run `write()` after the disk floor made room for `nbytes`; on a full disk once more
        after evicting all media. Returns None when written, else the last disk-full error
        (any other error is raised)."""
        self.disk.before_write(nbytes)
        failure: BaseException | None = None
        for attempt in range(2):
            if attempt:
                self.disk.after_full(nbytes)
            try:
                write()
                return None
            except (OSError, sqlite3.Error) as err:
                if not is_disk_full(err):
                    raise
                failure = err
        return failure

    # -- state and metrics --------------------------------------------------------------------------
    def set_source_state(self, state: str, detail: str) -> None:
        """Report the source state on `.../state` (retained) when it changes; log it once."""
        if (state, detail) == (self.source_state, self.source_detail):
            return
        self.source_state, self.source_detail = state, detail
        if state == "online":
            log.info("source online: %s", detail)
        else:
            log.error("%s", detail)
        self.notifier.status(f"{state}: {detail}")
        if self.link is not None:
            self.link.set_state(self._state(state, detail))

    def frame_done(self, latency_ms: dict[str, float]) -> None:
        """Count one processed frame and its per-stage latency; ping the watchdog; maybe metrics."""
        self.frames_total += 1
        self._frames_since += 1
        self.latency.add(latency_ms)
        self.tick()

    def tick(self) -> None:
        """Called from the loop (also while waiting for a source): watchdog and metrics."""
        self.notifier.watchdog_tick()
        now = time.monotonic()
        if now - self._last_metrics >= self.cfg.metrics.interval_s:
            self.publish_metrics(now)

    def publish_metrics(self, now: float | None = None) -> MetricsMessage:
        """Close the metrics window: `.../metrics` on MQTT, the log line, and the figures the
        Prometheus endpoint shows for the last interval (fps, stage latency min/mean/max)."""
        now = time.monotonic() if now is None else now
        elapsed = max(now - self._last_metrics, 1e-9)
        # The caps apply even when nothing new is put: the age cap, and the disk floor.
        if self._write_with_room(0, self.outbox.evict_expired) is not None:
            log.warning("disk full: the outbox age cap could not be applied now; trying again next interval")
        self.fps_last = self._frames_since / elapsed
        msg = MetricsMessage(
            device_id=self.cfg.device.id, site=self.cfg.device.site, boot_id=self.boot_id,
            fps=self.fps_last,
            stage_latency_ms=self.latency.close_window(),
            outbox=self.outbox.stats().to_dict(),
            model_version=self.model_version, providers=self.providers,
            source_state=self.source_state, uptime_s=now - self.started_at,
            frames_total=self.frames_total, segments_total=self.segments_total,
            mqtt=self.link.stats() if self.link is not None else {},
            upload=self.uploader.stats() if self.uploader is not None else {},
            disk=self.disk.stats(),
        )
        self._last_metrics, self._frames_since = now, 0
        ob = msg.outbox
        disk = msg.disk
        log.info("metrics: %.1f fps, %d segments, outbox depth %d (%d bytes), evicted %d, mqtt %s, disk %s",
                 msg.fps, self.segments_total, ob["depth"], ob["bytes"], ob["evicted_total"],
                 "connected" if msg.mqtt.get("connected") else "disconnected",
                 f"{disk['free_bytes'] // 2**20} MiB free" + (" (at its floor: evicting)" if disk["at_floor"] else ""))
        if self.link is not None:
            self.link.publish_metrics(msg)
        return msg

    def reset_metrics_window(self) -> None:
        self._last_metrics, self._frames_since = time.monotonic(), 0
        self.latency.reset_window()

    def sleep(self, seconds: float) -> None:
        """Wait up to `seconds`, returning early on stop, still pinging the watchdog and metrics."""
        deadline = time.monotonic() + seconds
        while not self.stop_event.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.stop_event.wait(min(left, 0.25))
            self.tick()

    def _state(self, state: str, detail: str) -> StateMessage:
        import edge

        return StateMessage(state, device_id=self.cfg.device.id, site=self.cfg.device.site,
                            boot_id=self.boot_id, detail=detail, model_version=self.model_version,
                            software=f"laps-edge {edge.__version__}")

    # -- setup helpers -------------------------------------------------------------------------------
    def _make_dirs(self) -> None:
        for key, path in (("paths.state_dir", self.cfg.paths.state_dir), ("paths.cache_dir", self.cfg.paths.cache_dir)):
            try:
                os.makedirs(path, exist_ok=True)
                if not os.access(path, os.W_OK):
                    raise PermissionError(13, "not writable")
            except OSError as err:
                raise ConfigError(
                    f"{key} {path!r} cannot be created or written ({err.strerror}); run under systemd "
                    f"(StateDirectory=/CacheDirectory=) or point {key} at a writable folder"
                ) from None

    def _open_outbox(self) -> Outbox:
        """Open the outbox; on a disk too full for SQLite to open it, once more after giving
        up the disk reserve. Anything else is a one-line ConfigError."""
        config = self.cfg
        for attempt in range(2):
            try:
                return Outbox(config.outbox_path, max_bytes=config.outbox.max_bytes, max_age_s=config.outbox.max_age_s)
            except Exception as err:  # sqlite3.Error, OSError: a person must fix the path
                # SQLite says "disk I/O error" when it cannot even create its shared-memory index.
                full = is_disk_full(err) or self.disk.free_bytes() < 64 * 1024
                if full and attempt == 0 and self.disk.release_reserve():
                    continue
                fix = ("free space on that disk" if full else
                       "set outbox.path or paths.state_dir to a writable local folder")
                raise ConfigError(f"outbox {config.outbox_path} cannot be opened ({err}); {fix}") from None
        raise AssertionError("not reached")

    def _open_spool(self):
        """The upload spool (None without upload). Created before the outbox so the disk floor
        can evict its media first."""
        if not self.cfg.upload.enabled:
            return None
        from edge.upload import BatchSpool

        try:
            return BatchSpool(self.cfg.upload_dir, device_id=self.cfg.device.id, site=self.cfg.device.site,
                              max_bytes=self.cfg.upload.max_disk_bytes)
        except OSError as err:
            raise ConfigError(f"upload spool {self.cfg.upload_dir} cannot be created ({err.strerror}); "
                              "point paths.state_dir at a writable local folder") from None

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signals can only be handled in the main thread; the caller stops us instead

        def handler(signum, frame) -> None:
            log.info("received %s: shutting down cleanly", signal.Signals(signum).name)
            self.stop_event.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous_handlers[sig] = signal.signal(sig, handler)

    def _restore_signals(self) -> None:
        for sig, old in self._previous_handlers.items():
            signal.signal(sig, old)  # type: ignore[arg-type]
        self._previous_handlers.clear()


# -- the frame loop ---------------------------------------------------------------------------------
class FrameLoop:
    """Reads the source, feeds the pipeline, emits segments; survives source failures."""

    def __init__(self, config: EdgeConfig, pipe, runtime: DeviceRuntime, switch=None) -> None:
        self.cfg, self.pipe, self.rt = config, pipe, runtime
        # OTA (edge.ota.agent.PipelineSwitch): hands in a restarted pipeline between two frames
        # and watches its health window; None without OTA.
        self.switch = switch
        self.fps = config.source.fps or float(pipe.fps)
        self.clips = None
        if config.upload.enabled and config.upload.clips:
            from edge.upload import ClipRecorder

            self.clips = ClipRecorder(self.fps, max_s=config.upload.clip_max_s, scale=config.upload.clip_scale)
        # A finite source resumes where its committed segments end (edge.resume); live ones have
        # no position. offset: frames skipped at this opening, added to the segments' frames.
        self.identity = None
        if config.source.resume and not is_live_spec(config.source.spec):
            from edge.resume import source_identity

            self.identity = source_identity(config.source.spec)
        self.offset = 0
        self._skip_to = 0
        self._read_index = 0  # frames read from this opening so far (skipped ones included)

    def run(self) -> None:
        rt, cfg = self.rt, self.cfg
        from edge.sources.factory import open_source

        backoff = cfg.source.reconnect_min_s
        ready = False
        opened = False  # a later opening is a reconnect (counted for Prometheus)
        t_start = time.monotonic()
        while not rt.stop_event.is_set():
            if not self._find_resume_point():
                return  # a file processed to its end by an earlier run
            try:
                source = open_source(cfg.source.spec, fps=self.fps, size=tuple(self.pipe.input_size),
                                     allow_truncated=cfg.source.allow_truncated)
                source.open()
            except SourceError as err:
                if not is_live_spec(cfg.source.spec):
                    raise  # a missing or unreadable file does not heal by waiting: one-line error, exit 2
                rt.set_source_state("source_lost", str(err))
                if not ready and time.monotonic() - t_start >= cfg.source.ready_timeout_s:
                    rt.notifier.ready(f"running without a source: {err}")
                    ready = True
                rt.sleep(backoff * 1.0)
                backoff = min(backoff * 2.0, cfg.source.reconnect_max_s)
                continue
            # Segment times: the source's clock, anchored so a fast replay never runs ahead of now.
            self.pipe.start_stream(stream_origin(datetime.now(timezone.utc), frame_count=source.frame_count,
                                                 fps=source.fps, paced=cfg.source.pace))
            rt.set_source_state("online", f"{source.name or cfg.source.spec} at {self.fps:g} fps")
            if opened:
                rt.source_reconnects += 1
            opened = True
            if not ready:
                rt.reset_metrics_window()  # fps and latency count from the first frame, not from start-up
                rt.notifier.ready(f"running: {cfg.source.spec}, model {self.pipe.model_version}")
                ready = True
            backoff = cfg.source.reconnect_min_s
            try:
                ended = self._consume(source)
            except SourceError:
                # A file that fails part-way (truncated): keep the segment its good frames gave.
                self._flush(self.pipe.finish())
                self._save_position(finished=False)
                raise
            finally:
                source.close()
            self._flush(self.pipe.finish())
            self._save_position(finished=ended)
            self.pipe.reset()  # a new stream starts with fresh tracker and kernel state
            if self.clips is not None:
                self.clips = type(self.clips)(self.fps, max_s=cfg.upload.clip_max_s, scale=cfg.upload.clip_scale)
            if ended:
                log.info("source ended (finite stream): %s", cfg.source.spec)
                return

    def _consume(self, source) -> bool:
        """Process frames until stop (False), source failure (False) or a finite end (True)."""
        rt, pace = self.rt, self.cfg.source.pace
        finite = source.frame_count is not None
        t0 = time.monotonic()
        first = True
        self.offset = self._read_index = 0
        while not rt.stop_event.is_set():
            if self.switch is not None and self._adopt_new_pipeline():
                return False  # the new model wants another frame size or rate: reopen the source
            try:
                frame = source.read()
            except SourceError as err:
                if not is_live_spec(self.cfg.source.spec):
                    raise  # a damaged file does not heal by reopening: one-line error, exit 2
                rt.set_source_state("source_lost", str(err))
                return False
            if frame is None:
                if finite:
                    return True
                rt.set_source_state("source_lost", f"source {source.name or self.cfg.source.spec} ended; reconnecting")
                return False
            self._read_index = frame.index + 1
            if frame.index < self._skip_to:
                rt.tick()  # decoded and skipped (resume): no tracking, no pacing
                continue
            if first:
                first = False
                self.offset = frame.index
                t0 = time.monotonic() - frame.timestamp_s  # pace from here, not from the file's start
            if pace:
                # Deliver as a camera would: never faster than the frame timestamps.
                delay = t0 + frame.timestamp_s - time.monotonic()
                if delay > 0:
                    rt.stop_event.wait(delay)
            t_frame = time.perf_counter()
            try:
                segments = self.pipe.process(frame)
            except Exception as err:
                # A model under its OTA health window takes the blame: the agent swaps back.
                if self.switch is None or not self.switch.frame_failed(err):
                    raise
                continue
            if self.switch is not None:
                self.switch.frame_done((time.perf_counter() - t_frame) * 1000.0)
            if self.clips is not None:
                self.clips.add(self.pipe.frames - 1, frame.image)  # numbered as the pipeline numbers segments
            self._flush(segments)
            rt.frame_done(self.pipe.stage_latency_ms)
        return False

    def _adopt_new_pipeline(self) -> bool:
        """Switch to a pipeline the OTA agent handed in (the old one's open segment is closed
        and emitted first). True when the source must be reopened for it."""
        new = self.switch.adopt(self.pipe)
        if new is None:
            return False
        self._flush(self.pipe.finish())
        self._save_position(finished=False)  # at the old pipeline's rate, before it changes
        old_size, old_fps = tuple(self.pipe.input_size), self.fps
        self.pipe = new
        self.offset = self._read_index  # the new pipeline counts its frames from here
        self.rt.model_version = new.model_version
        self.fps = self.cfg.source.fps or float(new.fps)
        if self.clips is not None:  # the new pipeline numbers its frames from 0: so must the ring
            cfg = self.cfg.upload
            self.clips = type(self.clips)(self.fps, max_s=cfg.clip_max_s, scale=cfg.clip_scale)
        log.info("now running model %s", new.model_version)
        return tuple(new.input_size) != old_size or self.fps != old_fps

    def _flush(self, segments: list[Segment]) -> None:
        from edge.resume import shift_segment

        for seg in segments:
            keyframes = self.pipe.keyframes(seg.segment_id) if self.cfg.upload.enabled else {}
            clip = self.clips.clip(seg.start_frame, seg.end_frame) if self.clips is not None else None
            seg, keyframes = shift_segment(seg, keyframes, self.offset)
            position = SourcePosition(self.identity, seg.end_frame, self.fps) if self.identity else None
            self.rt.emit(seg, keyframes, clip, position=position)

    def _find_resume_point(self) -> bool:
        """Set the frame this opening starts at from the recorded position. False when the
        source was already processed to its end (nothing to do)."""
        self._skip_to = 0
        if self.identity is None:
            return True
        from edge.resume import resume_frame

        pos = self.rt.outbox.position(self.identity)
        if pos is None:
            return True
        if pos.finished:
            log.info("source %s was processed to its end by an earlier run (%d frames); nothing to do "
                     "(set source.resume = false to process it again)", self.cfg.source.spec, pos.frame)
            return False
        self._skip_to = resume_frame(pos.frame, pos.fps, self.fps)
        if self._skip_to:
            log.info("resuming %s at frame %d (%.1f s), where the committed segments of the last run end; "
                     "skipping the frames before it", self.cfg.source.spec, self._skip_to, self._skip_to / self.fps)
        return True

    def _save_position(self, finished: bool) -> None:
        """After the pipeline closed its open segment: every frame processed so far is in
        committed segments, so the next run starts after them."""
        if self.identity is None:
            return
        if finished:
            done = self._read_index
        elif self.pipe.frames:
            done = self.offset + self.pipe.frames
        else:
            return  # nothing processed since the position was last saved
        self.rt.save_position(SourcePosition(self.identity, done, self.fps, finished=finished))


# -- the publisher entry (no pipeline) ----------------------------------------------------------------
def synthetic_segments(count: int, fps: float = 10.0, steps: int = 20, seed: int = 0) -> Iterator[Segment]:
    """`count` plausible segments with fresh UUIDv7 ids (count < 0: endless), for transport tests.

    Each spans `steps` frames starting where the previous one ended plus a gap of 5 frames;
    codes are deterministic in `seed`; times are wall-clock UTC from now.
    """
    import random

    rng = random.Random(seed)
    origin = datetime.now(timezone.utc)
    frame = 0
    i = 0
    while count < 0 or i < count:
        start, end = frame, frame + steps
        seg = Segment(
            segment_id=str(uuid7()), start_frame=start, end_frame=end, start_s=start / fps, end_s=end / fps,
            fps=fps, start_utc=utc_iso(origin, start / fps), end_utc=utc_iso(origin, end / fps),
            codes=[rng.randrange(1920) for _ in range(steps)], energy_mean=rng.random(),
            energy_max=1.0 + rng.random(), keyframes=[start + steps // 2], model_version="synthetic",
        )
        yield seg
        frame = end + 5
        i += 1


def run_publisher(
    config: EdgeConfig,
    segments: Iterable[Segment],
    interval_s: float = 0.0,
    keyframe_bytes: Callable[[Segment], dict[int, bytes]] | None = None,
    on_committed: Callable[[Segment], None] | None = None,
    until_drained_s: float = 0.0,
) -> int:
    """The service without a pipeline: emit `segments` every `interval_s` through the real
    outbox/MQTT/upload path, then stop cleanly (or on SIGTERM). `on_committed(segment)` runs
    after each segment is durable in the outbox. until_drained_s: after the last segment, wait
    up to this long for the outbox to empty (and the upload spool to be delivered) first."""
    rt = DeviceRuntime(config)
    try:
        rt.start(model_version="synthetic", providers=[])
        rt.notifier.ready("publishing synthetic segments")
        rt.set_source_state("online", "synthetic segment generator")
        for seg in segments:
            if rt.stop_event.is_set():
                break
            dropped = rt.disk.counters["dropped_segments"]
            rt.emit(seg, keyframe_bytes(seg) if keyframe_bytes else None)
            if on_committed is not None and rt.disk.counters["dropped_segments"] == dropped:
                on_committed(seg)  # not for a segment a full disk made us drop (counted, logged)
            rt.tick()
            if interval_s > 0:
                rt.sleep(interval_s)
        deadline = time.monotonic() + until_drained_s
        while not rt.stop_event.is_set() and time.monotonic() < deadline:
            pending_upload = 0
            if rt.spool is not None and rt.uploader is not None:
                spool = rt.spool.stats()
                pending_upload = spool["pending_batches"] + spool["pending_segments"]
                if pending_upload:
                    rt.uploader.run_once()
            if rt.outbox.depth == 0 and not pending_upload:
                break
            rt.sleep(0.05)
    except BaseException:
        rt.close(detail="stopped by error")
        raise
    rt.close(detail="stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m edge.service --config FILE --synthetic-segments N`: the transport without a
    pipeline, for reliability tests and benchmarks. Prints `committed <segment_id>` to stdout
    once each segment is durable in the outbox."""
    parser = argparse.ArgumentParser(prog="python -m edge.service", description=main.__doc__)
    parser.add_argument("--config", required=True, help="device TOML config")
    parser.add_argument("--synthetic-segments", type=int, default=10,
                        help="segments to publish (-1: until SIGTERM; 0: only drain the outbox)")
    parser.add_argument("--interval-s", type=float, default=0.05, help="seconds between segments")
    parser.add_argument("--keyframes", type=int, default=0, help="JPEG keyframes per segment (upload path)")
    parser.add_argument("--until-drained-s", type=float, default=0.0,
                        help="after the last segment, wait up to this long for the outbox to empty")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic codes")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        config = load_config(args.config)
        keyframe_bytes = _tiny_keyframes(args.keyframes) if args.keyframes > 0 else None

        def committed(seg: Segment) -> None:
            print(f"committed {seg.segment_id}", flush=True)

        return run_publisher(config, synthetic_segments(args.synthetic_segments, seed=args.seed),
                             interval_s=args.interval_s, keyframe_bytes=keyframe_bytes,
                             on_committed=committed, until_drained_s=args.until_drained_s)
    except LapsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _tiny_keyframes(n: int) -> Callable[[Segment], dict[int, bytes]]:
    import cv2
    import numpy as np

    def make(seg: Segment) -> dict[int, bytes]:
        out = {}
        for k in range(n):
            frame = seg.start_frame + k
            img = np.full((48, 64, 3), (frame * 37) % 256, np.uint8)
            out[frame] = cv2.imencode(".jpg", img)[1].tobytes()
        return out

    return make


# -- helpers ----------------------------------------------------------------------------------------
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


def _threshold_params(config: EdgeConfig):
    """HysteresisParams from [model.thresholds], or None (then calibration file or model's own)."""
    t = config.model.thresholds
    if not t:
        return None
    from edge.energy import HysteresisParams

    where = f"config {config.origin}: " if config.origin else "config: "
    if "theta_on" not in t:
        raise ConfigError(f"{where}[model.thresholds] needs theta_on (or remove the table to use "
                          "the calibration file)")
    try:
        return HysteresisParams.from_dict(t)
    except ConfigError as err:
        raise ConfigError(f"{where}[model.thresholds]: {err}") from None


def _prepare_numba_cache(config: EdgeConfig) -> None:
    """Point Numba's cache at <cache_dir>/numba unless NUMBA_CACHE_DIR is set (systemd sets it)."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    path = config.numba_cache_dir
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        log.warning("Numba cache %s cannot be created (%s); the kernel compiles on every start", path, err)
        return
    os.environ["NUMBA_CACHE_DIR"] = str(path)
    if "numba" in sys.modules:  # already imported: make it re-read the environment
        from numba.core import config as numba_config

        numba_config.reload_config()


if __name__ == "__main__":
    raise SystemExit(main())
