"""The device configuration: one TOML file, validated on load into frozen dataclasses.

`load_config(path)` is the only entry point the service needs. Every mistake is a one-line
`ConfigError` naming the file, the key (dotted: `mqtt.port`), the offending value and what is
allowed; unknown keys are rejected (a typo must not silently fall back to a default).
Relative paths are resolved against the config file's folder, so a config and the files it
names can travel together. A documented example lives in `examples/laps-edge.toml`.

Sections (see the example for every key and its default):
    [device]   site, id                      -> topic `laps/v1/<site>/<id>/...`, upload path
    [source]   spec, fps, pace, reconnect back-off, ready timeout
    [model]    dir, tracker, providers, calibration, [model.thresholds]
    [mqtt]     host, port, keepalive, client_id, username/password or credentials_file,
               max_inflight, session expiry, reconnect back-off, [mqtt.tls] ca/cert/key
    [outbox]   path, max_bytes, max_age_s
    [upload]   endpoint, interval_s, disk cap, clips
    [metrics]  interval_s, prometheus_port (0 = off), prometheus_host
    [paths]    state_dir, cache_dir
    [ota]      enabled, root, trusted keys + threshold, health window, latency budget, limits
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.broker import BrokerConfig
from edge.tracking import TRACKER_BACKENDS as TRACKERS  # one list, shared with the pipeline
from edge.errors import ConfigError
from edge.model.directory import DEFAULT_MODEL_SPEC, NO_MODEL_SPEC, shipped_model_dir

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 devices
    import tomli as tomllib

#: Device and site ids become MQTT topic levels and URL path segments: no '/', '+', '#'.
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
PROVIDERS = ("auto", "cpu", "cuda", "tensorrt")
#: mqtt.delivery: who must acknowledge a segment before it leaves the outbox
DELIVERY_MODES = ("central", "broker")
MIB = 1024 * 1024


@dataclass(frozen=True)
class DeviceConfig:
    """Who this device is. `site` and `id`: 1-64 chars of [A-Za-z0-9._-], starting alphanumeric."""

    site: str
    id: str

    def _check(self, ctx: "ConfigContext") -> None:
        for key in ("site", "id"):
            value = getattr(self, key)
            if not _ID_RE.match(value):
                ctx.fail(key, value, "1-64 characters from A-Z a-z 0-9 . _ -, starting with a "
                         "letter or digit (it becomes an MQTT topic level)")


@dataclass(frozen=True)
class SourceConfig:
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

    spec: str
    fps: float = 0.0
    pace: bool = False
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 30.0
    ready_timeout_s: float = 60.0
    allow_truncated: bool = False
    resume: bool = True

    def _check(self, ctx: "ConfigContext") -> None:
        if not self.spec.strip():
            ctx.fail("spec", self.spec, "a non-empty source (file path, /dev/videoN, rtsp://..., synthetic:...)")
        ctx.range("fps", self.fps, 0.0, 240.0)
        ctx.range("reconnect_min_s", self.reconnect_min_s, 0.01, 3600.0)
        ctx.range("reconnect_max_s", self.reconnect_max_s, self.reconnect_min_s, 3600.0,
                  "a number of seconds >= source.reconnect_min_s and <= 3600")
        ctx.range("ready_timeout_s", self.ready_timeout_s, 0.0, 86400.0)


@dataclass(frozen=True)
class ModelConfig:
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

    dir: str = "default"
    tracker: str = "lk"
    providers: str = "auto"
    calibration: str = ""
    thresholds: dict[str, float] = field(default_factory=dict)

    def _check(self, ctx: "ConfigContext") -> None:
        ctx.choice("tracker", self.tracker, TRACKERS)
        ctx.choice("providers", self.providers, PROVIDERS)
        if self.dir in ("", DEFAULT_MODEL_SPEC) and shipped_model_dir() is None:
            ctx.fail("dir", self.dir, "a model directory: this installation ships no default model "
                     "('none' runs the velocity-energy proxy)")
        if self.dir not in ("", DEFAULT_MODEL_SPEC, NO_MODEL_SPEC) and not Path(self.dir).is_dir():
            ctx.fail("dir", self.dir, "an existing model directory, 'default' (the shipped model) or 'none' "
                     "(the velocity-energy proxy)")
        if self.calibration and not Path(self.calibration).is_file():
            ctx.fail("calibration", self.calibration, "an existing calibration.json (make one with laps-calibrate)")
        for name, value in self.thresholds.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                ctx.fail(f"thresholds.{name}", value, "a finite number")


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

    def _check(self, ctx: "ConfigContext") -> None:
        super()._check(ctx)
        ctx.range("max_inflight", self.max_inflight, 1, 65535)
        ctx.range("auth_retry_s", self.auth_retry_s, 0.01, 86400.0)
        ctx.range("drain_timeout_s", self.drain_timeout_s, 0.0, 600.0)
        ctx.choice("delivery", self.delivery, DELIVERY_MODES)
        ctx.range("ack_timeout_s", self.ack_timeout_s, 0.1, 86400.0)
        ctx.range("max_unconfirmed", self.max_unconfirmed, 1, 10**6)


@dataclass(frozen=True)
class OutboxConfig:
    """The store-and-forward queue. path: SQLite file (empty = <state_dir>/outbox.sqlite).
    max_bytes / max_age_s: caps; the oldest unsent messages beyond them are evicted, counted
    and reported on `.../metrics`."""

    path: str = ""
    max_bytes: int = 64 * MIB
    max_age_s: float = 7 * 24 * 3600.0

    def _check(self, ctx: "ConfigContext") -> None:
        ctx.range("max_bytes", self.max_bytes, 4096, 2**40)
        ctx.range("max_age_s", self.max_age_s, 1.0, 10 * 365 * 86400.0)


@dataclass(frozen=True)
class UploadConfig:
    """Periodic batch upload of keyframes (and optional clips).

    endpoint: base URL of the receiver (http:// or https://; empty = no upload, keyframes are
    not kept). interval_s: seconds between batches. max_disk_bytes: cap of the local spool;
    the oldest batches beyond it are evicted and counted. clips: also cut a short MJPEG clip
    of each segment (at most clip_max_s seconds, frames scaled by clip_scale). ca: CA bundle
    for an https endpoint. token_file: file holding this device's bearer token (from
    `laps-central devices add`), sent as Authorization. cert/key: client certificate and key for
    an endpoint that wants mutual TLS (both or neither; its common name is the device id).
    """

    endpoint: str = ""
    interval_s: float = 300.0
    max_disk_bytes: int = 1024 * MIB
    clips: bool = False
    clip_max_s: float = 10.0
    clip_scale: float = 0.5
    timeout_s: float = 30.0
    ca: str = ""
    token_file: str = ""
    cert: str = ""
    key: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.endpoint)

    def _check(self, ctx: "ConfigContext") -> None:
        if self.endpoint and not re.match(r"^https?://[^/\s]+", self.endpoint):
            ctx.fail("endpoint", self.endpoint, "an http:// or https:// URL (or empty to disable upload)")
        ctx.range("interval_s", self.interval_s, 0.1, 86400.0)
        ctx.range("max_disk_bytes", self.max_disk_bytes, 64 * 1024, 2**44)
        ctx.range("clip_max_s", self.clip_max_s, 0.5, 600.0)
        ctx.range("clip_scale", self.clip_scale, 0.05, 1.0)
        ctx.range("timeout_s", self.timeout_s, 0.1, 3600.0)
        for key in ("ca", "token_file", "cert", "key"):
            value = getattr(self, key)
            if value and not os.access(value, os.R_OK):
                ctx.fail(key, value, "a readable file")
        if bool(self.cert) != bool(self.key):
            ctx.fail("cert" if not self.cert else "key", self.cert or self.key,
                     "both upload.cert and upload.key, or neither")


@dataclass(frozen=True)
class MetricsConfig:
    """interval_s: seconds between `.../metrics` messages (and a metrics log line); also the
    window of the Prometheus fps and stage-latency min/mean/max gauges.
    prometheus_port: TCP port of the Prometheus endpoint (`GET /metrics`, edge.prometheus);
    0 = off, the default: a device that refuses to start because another program holds a
    port is worse than an endpoint one switches on (and several cameras on one box each need
    their own port). prometheus_host: the address it binds, loopback unless you say otherwise."""

    interval_s: float = 30.0
    prometheus_port: int = 0
    prometheus_host: str = "127.0.0.1"

    def _check(self, ctx: "ConfigContext") -> None:
        ctx.range("interval_s", self.interval_s, 0.1, 86400.0)
        ctx.range("prometheus_port", self.prometheus_port, 0, 65535, "a TCP port 1-65535, or 0 to turn it off")
        if not self.prometheus_host.strip():
            ctx.fail("prometheus_host", self.prometheus_host, "an address to bind, e.g. 127.0.0.1")


@dataclass(frozen=True)
class PathsConfig:
    """state_dir: outbox, upload spool (systemd StateDirectory; left out of the file under systemd,
    $STATE_DIRECTORY, see `systemd_directory_defaults`). cache_dir: Numba cache and
    other rebuildable files (systemd CacheDirectory). min_free_bytes: free space the service
    keeps on state_dir's file system: below it the oldest upload media, then the oldest unsent
    segments are evicted (counted, logged, on `.../metrics`); 0 = no floor."""

    state_dir: str = "/var/lib/laps-edge"
    cache_dir: str = "/var/cache/laps-edge"
    min_free_bytes: int = 64 * MIB

    def _check(self, ctx: "ConfigContext") -> None:
        for key in ("state_dir", "cache_dir"):
            if not getattr(self, key).strip():
                ctx.fail(key, getattr(self, key), "a directory path")
        ctx.range("min_free_bytes", self.min_free_bytes, 0, 2**44)


@dataclass(frozen=True)
class OtaConfig:
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

    enabled: bool = False
    root: str = ""
    trusted_keys: list[str] = field(default_factory=list)
    trusted_keys_inline: list[str] = field(default_factory=list)
    threshold: int = 1
    health_window_s: float = 60.0
    health_min_frames: int = 100
    health_grace_s: float = 120.0
    latency_budget_ms: float = 200.0
    max_download_bytes: int = 2048 * MIB
    disk_reserve_bytes: int = 64 * MIB
    download_timeout_s: float = 30.0
    retry_max_s: float = 60.0
    keep_bundles: int = 3
    ca: str = ""

    def _check(self, ctx: "ConfigContext") -> None:
        if self.enabled and not (self.trusted_keys or self.trusted_keys_inline):
            ctx.fail("trusted_keys", self.trusted_keys, "at least one trusted public key (a .pub file from "
                     "`laps-export bundle keygen`) when ota.enabled = true")
        for path in self.trusted_keys:
            if not os.access(path, os.R_OK):
                ctx.fail("trusted_keys", path, "readable public key files")
        n_keys = len(self.trusted_keys) + len(self.trusted_keys_inline)
        ctx.range("threshold", self.threshold, 1, max(n_keys, 1),
                  f"an integer from 1 to the number of trusted keys ({n_keys})")
        ctx.range("health_window_s", self.health_window_s, 0.0, 86400.0)
        ctx.range("health_min_frames", self.health_min_frames, 1, 10**7)
        ctx.range("health_grace_s", self.health_grace_s, 0.0, 86400.0)
        ctx.range("latency_budget_ms", self.latency_budget_ms, 0.001, 60000.0)
        ctx.range("max_download_bytes", self.max_download_bytes, 1024, 2**44)
        ctx.range("disk_reserve_bytes", self.disk_reserve_bytes, 0, 2**44)
        ctx.range("download_timeout_s", self.download_timeout_s, 0.1, 3600.0)
        ctx.range("retry_max_s", self.retry_max_s, 0.1, 86400.0)
        ctx.range("keep_bundles", self.keep_bundles, 2, 100)
        if self.ca and not os.access(self.ca, os.R_OK):
            ctx.fail("ca", self.ca, "a readable PEM file")


@dataclass(frozen=True)
class EdgeConfig:
    """The whole device configuration (see the module docstring for the sections)."""

    device: DeviceConfig
    source: SourceConfig
    model: ModelConfig = field(default_factory=ModelConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    outbox: OutboxConfig = field(default_factory=OutboxConfig)
    upload: UploadConfig = field(default_factory=UploadConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    ota: OtaConfig = field(default_factory=OtaConfig)
    #: the file this was loaded from (for messages), "" when built in code
    origin: str = field(default="", compare=False)

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
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"config file {p} does not exist; copy examples/laps-edge.toml there and edit it") from None
    except OSError as err:
        raise ConfigError(f"config file {p} cannot be read ({err.strerror}); check its permissions") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"config file {p} is not UTF-8 text; save it as UTF-8 TOML") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"config file {p} is not valid TOML: {err}; fix the syntax there") from None
    return config_from_dict(data, origin=str(p), base_dir=p.resolve().parent)


def config_from_dict(data: dict, origin: str = "", base_dir: str | os.PathLike | None = None) -> EdgeConfig:
    """Validate a parsed TOML document (nested dicts) into an `EdgeConfig`.

    base_dir: folder against which relative paths are resolved (the config file's folder).
    """
    ctx = ConfigContext(origin, "", Path(base_dir) if base_dir is not None else None)
    cfg = ctx.build(EdgeConfig, systemd_directory_defaults(data))
    return dataclasses.replace(cfg, origin=origin)


def systemd_directory_defaults(data: dict, environ: typing.Mapping[str, str] | None = None) -> dict:
    """`data` with paths.state_dir / paths.cache_dir, where the file leaves them out, set to the
    folders systemd made for this unit ($STATE_DIRECTORY, $CACHE_DIRECTORY; the first of a
    colon-separated list). So `laps-edge@<name>.service` keeps each camera's outbox in
    /var/lib/laps-edge/<name> without the config naming it; a key the file sets always wins."""
    env = os.environ if environ is None else environ
    paths = data.get("paths", {})
    if not isinstance(paths, dict):
        return data  # not a table: ConfigContext reports it
    extra = {}
    for key, var in (("state_dir", "STATE_DIRECTORY"), ("cache_dir", "CACHE_DIRECTORY")):
        folder = env.get(var, "").split(":")[0]
        if key not in paths and folder:
            extra[key] = folder
    return {**data, "paths": {**paths, **extra}} if extra else data


# -- validation machinery ---------------------------------------------------------------------
#: keys whose string values are file or folder paths, resolved against the config's folder
_PATH_KEYS = {
    "model.dir", "model.calibration", "mqtt.tls.ca", "mqtt.tls.cert", "mqtt.tls.key",
    "outbox.path", "upload.ca", "upload.token_file", "upload.cert", "upload.key", "paths.state_dir", "paths.cache_dir",
    "ota.root", "ota.trusted_keys", "ota.ca",
}

#: words a path key also takes that name no file ("default" model, "none")
_PATH_WORDS = {"model.dir": (DEFAULT_MODEL_SPEC, NO_MODEL_SPEC)}


def _where(origin: str) -> str:
    return f"config {origin}: " if origin else "config: "


class ConfigContext:
    """Walks one table of a TOML document into a frozen dataclass, validating as it goes; knows
    its dotted prefix for error messages. `path_keys`: dotted keys whose string values are
    paths, resolved against `base_dir`. Shared by the device and the central configuration.
    """

    def __init__(self, origin: str, prefix: str, base_dir: Path | None,
                 path_keys: frozenset[str] | set[str] = frozenset()) -> None:
        self.origin, self.prefix, self.base_dir = origin, prefix, base_dir
        self.path_keys = path_keys or _PATH_KEYS

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def fail(self, name: str, value: Any, allowed: str) -> None:
        raise ConfigError(f"{_where(self.origin)}key {self.key(name)} = {_show(value)} is not allowed: expected {allowed}")

    def range(self, name: str, value: float, lo: float, hi: float, allowed: str | None = None) -> None:
        if not (lo <= value <= hi):
            kind = "an integer" if isinstance(value, int) else "a number"
            self.fail(name, value, allowed or f"{kind} from {lo:g} to {hi:g}")

    def choice(self, name: str, value: str, allowed: tuple[str, ...]) -> None:
        if value not in allowed:
            self.fail(name, value, "one of " + ", ".join(repr(a) for a in allowed))

    def build(self, cls: type, table: Any) -> Any:
        if not isinstance(table, dict):
            where = self.prefix or "the top level"
            raise ConfigError(f"{_where(self.origin)}{where} must be a table ([{self.prefix}]), got {_show(table)}")
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "origin"}
        unknown = sorted(set(table) - set(fields))
        if unknown:
            raise ConfigError(
                f"{_where(self.origin)}key {self.key(unknown[0])} is not known; allowed in "
                f"{'[' + self.prefix + ']' if self.prefix else 'the top level'}: {', '.join(fields)}"
            )
        kwargs = {}
        for name, f in fields.items():
            if name not in table:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    hint = f"add it under [{self.prefix}]" if self.prefix else f"add a [{name}] table"
                    raise ConfigError(f"{_where(self.origin)}key {self.key(name)} is required; {hint}")
                continue
            kwargs[name] = self._value(name, hints[name], table[name])
        obj = cls(**kwargs)
        check = getattr(obj, "_check", None)
        if check is not None:
            check(self)
        return obj

    def _value(self, name: str, hint: Any, value: Any) -> Any:
        if dataclasses.is_dataclass(hint):
            return ConfigContext(self.origin, self.key(name), self.base_dir, self.path_keys).build(hint, value)
        origin = typing.get_origin(hint)
        if origin is dict:
            if not isinstance(value, dict):
                self.fail(name, value, f"a table ([{self.key(name)}])")
            return dict(value)
        if origin is list:  # only lists of strings are used (paths resolve like single paths)
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                self.fail(name, value, "a list of strings ([\"a\", \"b\"])")
            if self.key(name) in self.path_keys:
                return [self._resolve(name, v) for v in value]
            return list(value)
        if hint is bool:
            if not isinstance(value, bool):
                self.fail(name, value, "true or false")
            return value
        if hint is int:
            if isinstance(value, bool) or not isinstance(value, int):
                self.fail(name, value, "an integer")
            return value
        if hint is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                self.fail(name, value, "a number")
            return float(value)
        if hint is str:
            if not isinstance(value, str):
                self.fail(name, value, "a string (in quotes)")
            if self.key(name) in self.path_keys and value and value not in _PATH_WORDS.get(self.key(name), ()):
                return self._resolve(name, value)
            if self.key(name) == "mqtt.credentials_file" and value:
                return self._resolve_credentials(value)
            return value
        raise TypeError(f"unsupported config field type {hint!r}")  # programming error

    def _resolve(self, name: str, value: str) -> str:
        p = Path(os.path.expanduser(value))
        if not p.is_absolute() and self.base_dir is not None:
            p = self.base_dir / p
        return str(p)

    def _resolve_credentials(self, value: str) -> str:
        p = Path(os.path.expanduser(value))
        cred_dir = os.environ.get("CREDENTIALS_DIRECTORY")
        if not p.is_absolute() and cred_dir:
            return str(Path(cred_dir) / p)
        return self._resolve("credentials_file", value)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."

