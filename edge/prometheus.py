"""Prometheus exposition of the device service's metrics (`[metrics] prometheus_port`).

The device keeps publishing `laps.metrics/1` on MQTT (`.../metrics`); this module exposes the
same figures for a Prometheus scraper on a loopback HTTP port, with `prometheus-client`:

    laps_edge_info{device,site,model_version,providers}     1
    laps_edge_uptime_seconds                                 gauge
    laps_edge_frames_total, laps_edge_segments_total         counters (rate() = frames/s)
    laps_edge_frames_per_second                              gauge, over the last metrics interval
    laps_edge_stage_latency_seconds{stage}                   summary (_count, _sum since start)
    laps_edge_stage_latency_{min,mean,max}_seconds{stage}    gauges, over the last metrics interval
    laps_edge_outbox_messages, laps_edge_outbox_bytes        gauges (unsent or unconfirmed rows)
    laps_edge_outbox_oldest_age_seconds                      gauge
    laps_edge_outbox_evicted_messages_total / _bytes_total   counters (since the outbox was created)
    laps_edge_source_state{laps_edge_source_state}           state set (1 for the current state)
    laps_edge_source_reconnects_total                        counter (re-openings after the first)
    laps_edge_mqtt_connected, laps_edge_mqtt_connects_total  gauge, counter
    laps_edge_disk_free_bytes                                gauge (state_dir's file system)
    laps_edge_ota_enabled, laps_edge_ota_state{laps_edge_ota_state}, laps_edge_ota_installed_version

Every value is read from the service when scraped (a custom collector), so nothing is counted
twice and the frame loop pays only for `StageLatency.add`. Each process uses its own
`CollectorRegistry` (never the client's global one), so several services in one test process
do not collide. `serve(...)` binds the port; the service closes it on shutdown.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Iterator

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    StateSetMetricFamily,
    SummaryMetricFamily,
)

from edge.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from edge.device_runtime import DeviceRuntime

#: the states `DeviceRuntime.source_state` takes (edge.service_loop.ServiceLoop)
SOURCE_STATES = ("starting", "online", "source_lost")
#: "idle": no OTA status reported since start; the rest are `laps.ota-status/1` states
OTA_STATES = ("idle", "downloading", "verifying", "self_testing", "swapping", "health_check",
              "committed", "rolled_back", "refused", "failed")


class StageLatency:
    """Per-stage latency of processed frames: totals since start and the last closed window.

    `add` runs in the frame loop; `close_window` at each metrics interval; `snapshot` in the
    scrape thread. All three hold one lock (a dict must not grow while another thread copies it).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._totals: dict[str, list[float]] = {}  # stage -> [count, sum_s]
        self._window: dict[str, list[float]] = {}  # stage -> [count, sum_s, min_s, max_s]
        self._last: dict[str, tuple[float, float, float]] = {}  # stage -> (min_s, mean_s, max_s)

    def add(self, latency_ms: dict[str, float]) -> None:
        """Count one frame's latency per stage (milliseconds, as `Pipeline.stage_latency_ms`)."""
        with self._lock:
            for stage, ms in latency_ms.items():
                s = ms / 1000.0
                tot = self._totals.setdefault(stage, [0.0, 0.0])
                tot[0] += 1
                tot[1] += s
                win = self._window.get(stage)
                if win is None:
                    self._window[stage] = [1.0, s, s, s]
                else:
                    win[0] += 1
                    win[1] += s
                    win[2] = min(win[2], s)
                    win[3] = max(win[3], s)

    def close_window(self) -> dict[str, float]:
        """End the current window; returns its mean per stage in milliseconds (for `.../metrics`).
        A window without frames keeps the previous one's min/mean/max for the scraper."""
        with self._lock:
            if self._window:
                self._last = {k: (w[2], w[1] / w[0], w[3]) for k, w in self._window.items()}
            means = {k: 1000.0 * w[1] / w[0] for k, w in self._window.items()}
            self._window = {}
            return means

    def reset_window(self) -> None:
        """Drop the open window (start-up frames are not the steady state)."""
        with self._lock:
            self._window = {}

    def snapshot(self) -> tuple[dict[str, tuple[float, float]], dict[str, tuple[float, float, float]]]:
        """(totals {stage: (count, sum_s)}, last window {stage: (min_s, mean_s, max_s)})."""
        with self._lock:
            return ({k: (v[0], v[1]) for k, v in self._totals.items()}, dict(self._last))


class DeviceCollector:
    """Reads a `DeviceRuntime` at scrape time and yields its metric families."""

    def __init__(self, runtime: "DeviceRuntime") -> None:
        self.rt = runtime

    def collect(self) -> Iterator[Metric]:
        rt = self.rt
        cfg = rt.cfg
        info = GaugeMetricFamily("laps_edge_info", "This device service: ids, model and inference providers.",
                                 labels=["device", "site", "model_version", "providers"])
        info.add_metric([cfg.device.id, cfg.device.site, rt.model_version, ",".join(rt.providers)], 1.0)
        yield info
        yield GaugeMetricFamily("laps_edge_uptime_seconds", "Seconds since the service started.",
                                value=time.monotonic() - rt.started_at)
        yield CounterMetricFamily("laps_edge_frames_total", "Frames processed by the pipeline.",
                                  value=rt.frames_total)
        yield CounterMetricFamily("laps_edge_segments_total", "Segments committed to the outbox.",
                                  value=rt.segments_total)
        yield GaugeMetricFamily("laps_edge_frames_per_second",
                                "Frames processed per second over the last metrics interval.", value=rt.fps_last)
        totals, last = rt.latency.snapshot()
        summary = SummaryMetricFamily("laps_edge_stage_latency_seconds",
                                      "Per-frame latency of each pipeline stage, since start.", labels=["stage"])
        for stage, (count, total) in sorted(totals.items()):
            summary.add_metric([stage], count_value=count, sum_value=total)
        yield summary
        for i, stat in enumerate(("min", "mean", "max")):
            g = GaugeMetricFamily(f"laps_edge_stage_latency_{stat}_seconds",
                                  f"The {stat} per-frame latency of each stage over the last metrics interval.",
                                  labels=["stage"])
            for stage, values in sorted(last.items()):
                g.add_metric([stage], values[i])
            yield g
        ob = rt.outbox.stats()
        yield GaugeMetricFamily("laps_edge_outbox_messages", "Messages in the outbox (unsent or unconfirmed).",
                                value=ob.depth)
        yield GaugeMetricFamily("laps_edge_outbox_bytes", "Payload bytes of the messages in the outbox.",
                                value=ob.bytes)
        yield GaugeMetricFamily("laps_edge_outbox_oldest_age_seconds", "Age of the oldest outbox message.",
                                value=ob.oldest_age_s)
        yield CounterMetricFamily("laps_edge_outbox_evicted_messages_total",
                                  "Messages evicted by the outbox caps (size, age, disk floor).",
                                  value=ob.evicted_total)
        yield CounterMetricFamily("laps_edge_outbox_evicted_bytes_total", "Payload bytes evicted from the outbox.",
                                  value=ob.evicted_bytes)
        yield _state_set("laps_edge_source_state", "The frame source's state.", SOURCE_STATES, rt.source_state)
        yield CounterMetricFamily("laps_edge_source_reconnects_total",
                                  "Times the source was opened again after the first opening.",
                                  value=rt.source_reconnects)
        link = rt.link
        mqtt = link.stats() if link is not None else {}
        yield GaugeMetricFamily("laps_edge_mqtt_connected", "1 while the MQTT session is up.",
                                value=1.0 if mqtt.get("connected") else 0.0)
        yield CounterMetricFamily("laps_edge_mqtt_connects_total", "MQTT sessions established (CONNACK).",
                                  value=mqtt.get("connects", 0))
        yield GaugeMetricFamily("laps_edge_disk_free_bytes", "Free bytes on the state directory's file system.",
                                value=rt.disk.free_bytes())
        yield GaugeMetricFamily("laps_edge_ota_enabled", "1 when over-the-air model updates are on.",
                                value=1.0 if cfg.ota.enabled else 0.0)
        yield _state_set("laps_edge_ota_state", "The last OTA status the device reported ('idle': none yet).",
                         OTA_STATES, rt.ota_state)
        if rt.ota_installed_version is not None:
            yield GaugeMetricFamily("laps_edge_ota_installed_version", "The committed model bundle version.",
                                    value=rt.ota_installed_version)


class MetricsServer:
    """A running exposition endpoint (`GET /metrics`); `close()` stops it and frees the port."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int, what: str) -> None:
        try:
            self._httpd, self._thread = start_http_server(port, addr=host, registry=registry)
        except OSError as err:
            raise ConfigError(f"{what}: prometheus_port {port} on {host} cannot be bound ({err.strerror}); pick a "
                              "free port (one per service on a box) or set prometheus_port = 0 to turn it off") from None
        self.host, self.port = host, int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5.0)


def serve_device_metrics(runtime: "DeviceRuntime") -> MetricsServer | None:
    """Expose `runtime` on `[metrics] prometheus_host:prometheus_port` (None when the port is 0)."""
    m = runtime.cfg.metrics
    if m.prometheus_port == 0:
        return None
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DeviceCollector(runtime))
    where = f"config {runtime.cfg.origin}: metrics" if runtime.cfg.origin else "metrics"
    return MetricsServer(registry, m.prometheus_host, m.prometheus_port, where)


def _state_set(name: str, documentation: str, states: tuple[str, ...], current: str) -> StateSetMetricFamily:
    """A Prometheus state set: one series per known state, 1 for `current` (added if unknown)."""
    values = {s: s == current for s in states}
    values.setdefault(current, True)
    return StateSetMetricFamily(name, documentation, value=values)
