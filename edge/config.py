"""The device configuration: one TOML file, loaded into frozen dataclasses that validate themselves.

`load_config(path)` is the only entry point the service needs. Every section checks its values
when it is built (`edge.config_schema`), so a config made in code or changed with
`dataclasses.replace` is held to the same rules as one loaded from a file. Every mistake is a
one-line `ConfigError` naming the file (when there is one), the key (dotted: `mqtt.port`), the
offending value and what is allowed; unknown keys are rejected (a typo must not silently fall
back to a default). Relative paths are resolved against the config file's folder, so a config
and the files it names can travel together. A documented example lives in
`examples/laps-edge.toml`.

Sections (see the example for every key and its default):
    [device]   site, id                      -> topic `laps/v1/<site>/<id>/...`, upload path
    [source]   spec, fps, pace, reconnect back-off, ready timeout
    [model]    dir, tracker, providers, calibration, [model.thresholds]
    [mqtt]     host, port, keepalive, client_id, username/password or credentials_file,
               max_inflight, session expiry, reconnect back-off, [mqtt.tls] ca/cert/key
    [outbox]   path, max_bytes, max_age_s
    [upload]   endpoint, interval_s, disk cap, clips
    [metrics]  interval_s, prometheus_port (0 = off), prometheus_host
    [roi]      polygons (regions of interest: only grid points inside them are tracked)
    [paths]    state_dir, cache_dir
    [ota]      enabled, root, trusted keys + threshold, health window, latency budget, limits
"""

from __future__ import annotations

import math
import os
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from edge.broker import BrokerConfig
from edge.config_schema import (Checks, ConfigSection, build_section, origin_field, path_setting, read_toml,
                                setting, where)
from edge.errors import ConfigError
from edge.model.directory import DEFAULT_MODEL_SPEC, NO_MODEL_SPEC, shipped_model_dir
from edge.tracking import TRACKER_BACKENDS as TRACKERS  # one list, shared with the pipeline
from edge.tracking.roi import ROI_SYNTAX, RegionOfInterest, polygon_problem

#: Device and site ids become MQTT topic levels and URL path segments: no '/', '+', '#'.
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_ID_ALLOWED = ("1-64 characters from A-Z a-z 0-9 . _ -, starting with a letter or digit "
               "(it becomes an MQTT topic level)")
PROVIDERS = ("auto", "cpu", "cuda", "tensorrt")
#: mqtt.delivery: who must acknowledge a segment before it leaves the outbox
DELIVERY_MODES = ("central", "broker")
MIB = 1024 * 1024


@dataclass(frozen=True)
class DeviceConfig(ConfigSection):
    """Who this device is. `site` and `id`: 1-64 chars of [A-Za-z0-9._-], starting alphanumeric."""

    SECTION: ClassVar[str] = "device"
    site: str = setting(pattern=_ID_RE, allowed=_ID_ALLOWED)
    id: str = setting(pattern=_ID_RE, allowed=_ID_ALLOWED)


@dataclass(frozen=True)
class SourceConfig(ConfigSection):
    """Where frames come from.

    spec: what `edge.sources.factory.open_source` accepts (a file path, /dev/videoN, rtsp://...,
          a GStreamer pipeline, synthetic:...). fps: frames per second to resample to; 0 = the
          model's fps. pace: throttle finite sources (files, synthetic) to real time, as a
          camera would deliver. reconnect_min_s/max_s: exponential back-off between attempts
          to (re)open a failed source. ready_timeout_s: if the source cannot be opened within
          this many seconds of start, tell systemd READY anyway and keep retrying (the process
          must stay alive and report state rather than restart-loop on an unplugged camera).
          allow_truncated: a video file cut short ends cleanly after its last good frame (one
          warning) instead of stopping the service with an error. resume: a finite source (a
          video file, synthetic://) continues after a restart where the last run's committed
          segments end (the position is kept in the outbox database); false = from its start.
    """

    SECTION: ClassVar[str] = "source"
    spec: str = setting(nonempty=True, allowed="a non-empty source (file path, /dev/videoN, rtsp://..., synthetic:...)")
    fps: float = setting(0.0, lo=0.0, hi=240.0)
    pace: bool = False
    reconnect_min_s: float = setting(1.0, lo=0.01, hi=3600.0)
    reconnect_max_s: float = 30.0  # >= reconnect_min_s: see _check
    ready_timeout_s: float = setting(60.0, lo=0.0, hi=86400.0)
    allow_truncated: bool = False
    resume: bool = True

    def _check(self, checks: Checks) -> None:
        checks.range("reconnect_max_s", self.reconnect_max_s, self.reconnect_min_s, 3600.0,
                     "a number of seconds >= source.reconnect_min_s and <= 3600")


@dataclass(frozen=True)
class ModelConfig(ConfigSection):
    """The models and thresholds.

    dir: a model directory (manifest.json, tokenizer.onnx, calibration.json); "default" (or
         empty) = the model shipped with the package; "none" = the velocity-energy proxy
         without a tokenizer.
    tracker: one of edge.tracking.TRACKER_BACKENDS ("lk", or "onnx", which needs tracker.onnx
         in the model directory or the shipped default).
    providers: "auto" (TensorRT -> CUDA -> CPU, whichever exist), "cpu", "cuda" or "tensorrt".
    calibration: a calibration.json overriding the model directory's own.
    thresholds: hysteresis parameters overriding both (names as `edge.energy.HysteresisParams`).
    """

    SECTION: ClassVar[str] = "model"
    dir: str = path_setting(DEFAULT_MODEL_SPEC, must="dir", words=(DEFAULT_MODEL_SPEC, NO_MODEL_SPEC),
                            allowed="an existing model directory, 'default' (the shipped model) or 'none' "
                                    "(the velocity-energy proxy)")
    tracker: str = setting("lk", choices=TRACKERS)
    providers: str = setting("auto", choices=PROVIDERS)
    calibration: str = path_setting("", must="file",
                                    allowed="an existing calibration.json (make one with laps-calibrate)")
    thresholds: dict[str, float] = field(default_factory=dict)

    def _check(self, checks: Checks) -> None:
        if self.dir in ("", DEFAULT_MODEL_SPEC) and shipped_model_dir() is None:
            checks.fail("dir", self.dir, "a model directory: this installation ships no default model "
                        "('none' runs the velocity-energy proxy)")
        for name, value in self.thresholds.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                checks.fail(f"thresholds.{name}", value, "a finite number")


@dataclass(frozen=True)
class MqttConfig(BrokerConfig):
    """The device's broker connection (MQTT v5, QoS 1, persistent session): the shared keys of
    `edge.broker.BrokerConfig` (host, port, keepalive, login, TLS, session, reconnect back-off)
    plus the device's own.

    enabled: false = no broker (segments stay in the outbox). client_id: empty =
    "laps-edge-<site>-<device>" (stable, so the broker keeps the session). max_inflight:
    unacknowledged QoS 1 messages at once. An authentication refusal makes the back-off jump to
    at least `auth_retry_s`. drain_timeout_s: on clean shutdown, how long to wait for the outbox
    to empty.
    delivery: when a segment leaves the outbox. "central" (default): when central has committed
    it (a `laps.ack/1` on `.../acks`); one the broker took but central did not acknowledge within
    ack_timeout_s is sent again, at most max_unconfirmed waiting at once. "broker": on the
    broker's PUBACK (for a central older than laps.ack/1; a broker that loses a message after
    its PUBACK then loses the segment).
    """

    enabled: bool = True
    max_inflight: int = 20
    auth_retry_s: float = 30.0
    drain_timeout_s: float = 3.0
    delivery: str = "central"
    ack_timeout_s: float = 30.0
    max_unconfirmed: int = 1000

    _HOST_HINT = "a broker host name or address (or mqtt.enabled = false)"

    def _host_required(self) -> bool:
        return self.enabled

    def _check(self, ctx: Checks) -> None:
        super()._check(ctx)
        ctx.range("max_inflight", self.max_inflight, 1, 65535)
        ctx.range("auth_retry_s", self.auth_retry_s, 0.01, 86400.0)
        ctx.range("drain_timeout_s", self.drain_timeout_s, 0.0, 600.0)
        ctx.choice("delivery", self.delivery, DELIVERY_MODES)
        ctx.range("ack_timeout_s", self.ack_timeout_s, 0.1, 86400.0)
        ctx.range("max_unconfirmed", self.max_unconfirmed, 1, 10**6)


@dataclass(frozen=True)
class OutboxConfig(ConfigSection):
    """The store-and-forward queue. path: SQLite file (empty = <state_dir>/outbox.sqlite).
    max_bytes / max_age_s: caps; the oldest unsent messages beyond them are evicted, counted
    and reported on `.../metrics`."""

    SECTION: ClassVar[str] = "outbox"
    path: str = path_setting()
    max_bytes: int = setting(64 * MIB, lo=4096, hi=2**40)
    max_age_s: float = setting(7 * 24 * 3600.0, lo=1.0, hi=10 * 365 * 86400.0)


@dataclass(frozen=True)
class UploadConfig(ConfigSection):
    """Periodic batch upload of keyframes (and optional clips).

    endpoint: base URL of the receiver (http:// or https://; empty = no upload, keyframes are
    not kept). interval_s: seconds between batches. max_disk_bytes: cap of the local spool;
    the oldest batches beyond it are evicted and counted. clips: also cut a short MJPEG clip
    of each segment (at most clip_max_s seconds, frames scaled by clip_scale). ca: CA bundle
    for an https endpoint. token_file: file holding this device's bearer token (from
    `laps-central devices add`), sent as Authorization. cert/key: client certificate and key for
    an endpoint that wants mutual TLS (both or neither; its common name is the device id).
    """

    SECTION: ClassVar[str] = "upload"
    endpoint: str = ""
    interval_s: float = setting(300.0, lo=0.1, hi=86400.0)
    max_disk_bytes: int = setting(1024 * MIB, lo=64 * 1024, hi=2**44)
    clips: bool = False
    clip_max_s: float = setting(10.0, lo=0.5, hi=600.0)
    clip_scale: float = setting(0.5, lo=0.05, hi=1.0)
    timeout_s: float = setting(30.0, lo=0.1, hi=3600.0)
    ca: str = path_setting(must="readable")
    token_file: str = path_setting(must="readable")
    cert: str = path_setting(must="readable")
    key: str = path_setting(must="readable")

    @property
    def enabled(self) -> bool:
        return bool(self.endpoint)

    def _check(self, checks: Checks) -> None:
        if self.endpoint and not re.match(r"^https?://[^/\s]+", self.endpoint):
            checks.fail("endpoint", self.endpoint, "an http:// or https:// URL (or empty to disable upload)")
        if bool(self.cert) != bool(self.key):
            checks.fail("cert" if not self.cert else "key", self.cert or self.key,
                        "both upload.cert and upload.key, or neither")


@dataclass(frozen=True)
class MetricsConfig(ConfigSection):
    """interval_s: seconds between `.../metrics` messages (and a metrics log line); also the
    window of the Prometheus fps and stage-latency min/mean/max gauges.
    prometheus_port: TCP port of the Prometheus endpoint (`GET /metrics`, edge.prometheus);
    0 = off, the default: a device that refuses to start because another program holds a
    port is worse than an endpoint one switches on (and several cameras on one box each need
    their own port). prometheus_host: the address it binds, loopback unless you say otherwise."""

    SECTION: ClassVar[str] = "metrics"
    interval_s: float = setting(30.0, lo=0.1, hi=86400.0)
    prometheus_port: int = setting(0, lo=0, hi=65535, allowed="a TCP port 1-65535, or 0 to turn it off")
    prometheus_host: str = setting("127.0.0.1", nonempty=True, allowed="an address to bind, e.g. 127.0.0.1")


@dataclass(frozen=True)
class RoiConfig(ConfigSection):
    """Regions of interest (edge.tracking.roi): polygons = one string per polygon, "x,y x,y x,y ..."
    in normalised image coordinates (0..1 of the width and height, y down; so a region survives a
    change of camera resolution). Only the grid points inside one of them are tracked; the others
    count as never visible. Empty (the default): the whole frame. Check one with `laps-edge roi`."""

    SECTION: ClassVar[str] = "roi"
    polygons: list[str] = field(default_factory=list)

    @property
    def region(self) -> RegionOfInterest | None:
        """The region to track in, or None for the whole frame."""
        return RegionOfInterest.parse(self.polygons) if self.polygons else None

    def _check(self, checks: Checks) -> None:
        for k, text in enumerate(self.polygons):
            _, problem = polygon_problem(text)
            if problem:
                checks.fail(f"polygons[{k}]", text, f"{ROI_SYNTAX} ({problem})")


@dataclass(frozen=True)
class PathsConfig(ConfigSection):
    """state_dir: outbox, upload spool (systemd StateDirectory; left out of the file under systemd,
    $STATE_DIRECTORY, see `systemd_directory_defaults`). cache_dir: Numba cache and
    other rebuildable files (systemd CacheDirectory). min_free_bytes: free space the service
    keeps on state_dir's file system: below it the oldest upload media, then the oldest unsent
    segments are evicted (counted, logged, on `.../metrics`); 0 = no floor."""

    SECTION: ClassVar[str] = "paths"
    state_dir: str = path_setting("/var/lib/laps-edge", nonempty=True, allowed="a directory path")
    cache_dir: str = path_setting("/var/cache/laps-edge", nonempty=True, allowed="a directory path")
    min_free_bytes: int = setting(64 * MIB, lo=0, hi=2**44)


@dataclass(frozen=True)
class OtaConfig(ConfigSection):
    """Over-the-air model updates (edge.ota). Off unless enabled.

    root: the OTA store (bundles/, current, previous, state.json; empty = <state_dir>/ota); the
    pipeline loads `<root>/current`, seeded from model.dir (or the shipped default model) on first
    start. trusted_keys: Ed25519 public key files (`.pub` from `laps-export bundle keygen`, or
    PEM); trusted_keys_inline: the same keys as base64 strings. threshold: distinct trusted
    signatures a bundle needs (k of n; rotate keys by trusting old and new for a while).
    health_window_s / health_min_frames: how long and how many frames the new model must run
    cleanly before it is committed; health_grace_s: extra time allowed to see those frames.
    latency_budget_ms: p95 per-frame latency the new model must stay under in that window.
    max_download_bytes: larger bundles are refused. disk_reserve_bytes: free space left after a
    download. keep_bundles: installed bundles kept on disk (current and previous always).
    ca: CA bundle for https bundle URLs (empty = system store).
    """

    SECTION: ClassVar[str] = "ota"
    enabled: bool = False
    root: str = path_setting()
    trusted_keys: list[str] = path_setting(default_factory=list, must="readable",
                                           allowed="readable public key files")
    trusted_keys_inline: list[str] = field(default_factory=list)
    threshold: int = 1  # at most the number of trusted keys: see _check
    health_window_s: float = setting(60.0, lo=0.0, hi=86400.0)
    health_min_frames: int = setting(100, lo=1, hi=10**7)
    health_grace_s: float = setting(120.0, lo=0.0, hi=86400.0)
    latency_budget_ms: float = setting(200.0, lo=0.001, hi=60000.0)
    max_download_bytes: int = setting(2048 * MIB, lo=1024, hi=2**44)
    disk_reserve_bytes: int = setting(64 * MIB, lo=0, hi=2**44)
    download_timeout_s: float = setting(30.0, lo=0.1, hi=3600.0)
    retry_max_s: float = setting(60.0, lo=0.1, hi=86400.0)
    keep_bundles: int = setting(3, lo=2, hi=100)
    ca: str = path_setting(must="readable", allowed="a readable PEM file")

    def _check(self, checks: Checks) -> None:
        if self.enabled and not (self.trusted_keys or self.trusted_keys_inline):
            checks.fail("trusted_keys", self.trusted_keys, "at least one trusted public key (a .pub file from "
                        "`laps-export bundle keygen`) when ota.enabled = true")
        n_keys = len(self.trusted_keys) + len(self.trusted_keys_inline)
        checks.range("threshold", self.threshold, 1, max(n_keys, 1),
                     f"an integer from 1 to the number of trusted keys ({n_keys})")


@dataclass(frozen=True)
class EdgeConfig(ConfigSection):
    """The whole device configuration (see the module docstring for the sections)."""

    device: DeviceConfig
    source: SourceConfig
    model: ModelConfig = field(default_factory=ModelConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    outbox: OutboxConfig = field(default_factory=OutboxConfig)
    upload: UploadConfig = field(default_factory=UploadConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    roi: RoiConfig = field(default_factory=RoiConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    ota: OtaConfig = field(default_factory=OtaConfig)
    #: the file this was loaded from (for messages), "" when built in code
    origin: str = origin_field()

    @property
    def outbox_path(self) -> Path:
        return Path(self.outbox.path) if self.outbox.path else Path(self.paths.state_dir) / "outbox.sqlite"

    @property
    def upload_dir(self) -> Path:
        return Path(self.paths.state_dir) / "upload"

    @property
    def ota_root(self) -> Path:
        return Path(self.ota.root) if self.ota.root else Path(self.paths.state_dir) / "ota"

    @property
    def numba_cache_dir(self) -> Path:
        return Path(self.paths.cache_dir) / "numba"

    @property
    def client_id(self) -> str:
        return self.mqtt.client_id or f"laps-edge-{self.device.site}-{self.device.id}"


def load_config(path: str | os.PathLike) -> EdgeConfig:
    """Read and validate a TOML config file; raises a one-line `ConfigError` on any mistake."""
    p = Path(path)
    data = read_toml(p, "copy examples/laps-edge.toml there and edit it")
    return config_from_dict(data, origin=str(p), base_dir=p.resolve().parent)


def load_roi(spec: str) -> RegionOfInterest:
    """The region of interest a `--roi` option names: the path of a TOML file with a [roi] table
    (a device config, or a file holding only that table), else inline polygons "x,y x,y x,y ..."
    (normalised, several separated by ';'). A one-line `ConfigError` on any mistake."""
    p = Path(spec)
    if p.suffix.lower() == ".toml" or p.is_file():
        data = read_toml(p, "give an existing TOML file with a [roi] table, or the polygon inline")
        table = data.get("roi")
        roi = build_section(RoiConfig, {} if table is None else table, origin=str(p), prefix="roi").region
        if roi is None:
            raise ConfigError(f"{where(str(p))}has no [roi] polygons; add e.g. polygons = [\"0,0.2 1,0.2 1,1 0,1\"]")
        return roi
    return RegionOfInterest.parse(spec)


def config_from_dict(data: dict, origin: str = "", base_dir: str | os.PathLike | None = None) -> EdgeConfig:
    """Validate a parsed TOML document (nested dicts) into an `EdgeConfig`.

    base_dir: folder against which relative paths are resolved (the config file's folder).
    """
    return build_section(EdgeConfig, systemd_directory_defaults(data), origin=origin, base_dir=base_dir)


def systemd_directory_defaults(data: dict, environ: typing.Mapping[str, str] | None = None) -> dict:
    """`data` with paths.state_dir / paths.cache_dir, where the file leaves them out, set to the
    folders systemd made for this unit ($STATE_DIRECTORY, $CACHE_DIRECTORY; the first of a
    colon-separated list). So `laps-edge@<name>.service` keeps each camera's outbox in
    /var/lib/laps-edge/<name> without the config naming it; a key the file sets always wins."""
    env = os.environ if environ is None else environ
    paths = data.get("paths", {})
    if not isinstance(paths, dict):
        return data  # not a table: build_section reports it
    extra = {}
    for key, var in (("state_dir", "STATE_DIRECTORY"), ("cache_dir", "CACHE_DIRECTORY")):
        folder = env.get(var, "").split(":")[0]
        if key not in paths and folder:
            extra[key] = folder
    return {**data, "paths": {**paths, **extra}} if extra else data
