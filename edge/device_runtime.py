"""The runtime state of one device: outbox, MQTT link, upload, systemd notifier, signals, metrics.

Everything here is independent of the pipeline: `edge.service_loop` feeds it finished segments
and per-frame figures, `edge.service` wires the two. Durability: `DeviceRuntime.emit` writes a
segment's media into the upload spool and its `laps.segment/2` message into the outbox (fsync)
before it returns; the link forwards it (QoS 1; central's `laps.ack/1` deletes the row, or the
PUBACK with `mqtt.delivery = "broker"`). Full disk (`edge.disk_floor`): below
`paths.min_free_bytes` free, the oldest media, then the oldest unsent segments are evicted
(counted, logged, "disk" on `.../metrics`); a write that still fails is retried once, then
dropped and counted.
"""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import threading
import time
import uuid
from typing import Callable

from edge.config import EdgeConfig
from edge.disk_floor import DiskFloor
from edge.errors import ConfigError
from edge.messages import BatchManifest, MetricsMessage, SegmentMessage, StateMessage, Topics
from edge.outbox import Outbox, SourcePosition, is_disk_full
from edge.prometheus import StageLatency, serve_device_metrics
from edge.sdnotify import SystemdNotifier
from edge.segments import Segment

log = logging.getLogger(__name__)


class DeviceRuntime:
    """Outbox, MQTT link, upload, systemd notifier, signal handling and metrics of one device.

    The service's loop feeds it through `edge.service_loop.DevicePublisher` (a sink); the
    transport tests feed it synthetic segments (tests/service/publisher.py), so they exercise
    the very code the service runs.
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
