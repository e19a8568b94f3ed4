"""The fleet-side configuration: one TOML file, loaded into frozen dataclasses that validate themselves.

`load_central_config(path)` is the entry point of `laps-central ingest`, `cluster` and
`export-dataset`. Every section checks its values when it is built, however it is built (the
machinery is `edge.config_schema`, shared with the device). Every mistake is a one-line
`ConfigError` naming the file, the dotted key, the offending value and what is allowed; unknown
keys are rejected (a typo must not fall back to a default silently). Relative paths are resolved against the config file's folder.

Sections (every key optional; defaults shown in `central_config_example()`):
    [paths]  data_dir (keyframes/clips unpacked from batches live in <data_dir>/media, or in
             media_dir when set: a folder shared by several ingest hosts), models_dir (the model registry: one model directory per version)
    [store]  url ("" = SQLite at path; "postgresql://user@host:5432/db" = PostgreSQL, shared by
             several ingest hosts), path (SQLite, WAL), synchronous ("full": fsync on every
             commit, the promise behind "acknowledge only after commit"; "normal": faster, may
             lose the last commits on power loss), pool_size, connect_timeout_s (PostgreSQL)
    [mqtt]   host, port, group (the shared-subscription group), topic, client_id, keepalive,
             session_expiry_s, receive_maximum, batch_max, username/password or
             credentials_file, reconnect back-off, [mqtt.tls] ca/cert/key
    [http]   enabled, host, port, token_file, max_batch_bytes, tls cert/key, client_ca (mutual
             TLS), workers, queue, timeout_s
    [devices] dir (the device registry and the Mosquitto password/ACL files made from it)
    [metrics] prometheus_port (0 = off), prometheus_host: the ingest's Prometheus endpoint
    [dashboard] host, port, username, password_file (HTTP Basic), rate_window_s,
             members_per_page: `laps-central serve`
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from edge.broker import BrokerConfig
from edge.config_schema import Checks, ConfigSection, build_section, origin_field, path_setting, read_toml, setting
from edge.errors import ConfigError

MIB = 1024 * 1024
#: MQTT topic filter of the segment messages of every device of every site (docs/formats.md#mqtt-topics).
SEGMENT_TOPIC = "laps/v1/+/+/segments"
_GROUP_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


@dataclass(frozen=True)
class PathsConfig(ConfigSection):
    """data_dir: unpacked keyframes and clips (`<data_dir>/media/<device>/<segment>/...`).
    models_dir: the model registry (one model directory per version, any folder names).
    media_dir: where keyframes and clips go instead of <data_dir>/media; several ingest hosts
    sharing one PostgreSQL store point it at one shared folder (NFS, ...) so that every host's
    dashboard and exports find every batch's files."""

    SECTION: ClassVar[str] = "paths"
    data_dir: str = path_setting("laps-central-data", nonempty=True, allowed="a directory path")
    models_dir: str = path_setting("laps-central-data/models", nonempty=True, allowed="a directory path")
    media_dir: str = path_setting(allowed="a directory path, or empty for <data_dir>/media")


@dataclass(frozen=True)
class StoreConfig(ConfigSection):
    """Where the segments go (`central.store_protocol.open_store`).

    url: empty = the SQLite file at `path` (the embedded default); "postgresql://user@host:5432/db"
    (or postgres://) = a PostgreSQL database, which several ingest hosts may share (the password
    in the URL, or better in ~/.pgpass or PGPASSWORD); "sqlite:///abs/path" or an absolute path
    = a SQLite file there. path: the SQLite file (WAL) when url is empty. synchronous: "full"
    (fsync per commit; PostgreSQL: synchronous_commit on) or "normal" (faster; the last commits
    may be lost on power loss). pool_size: PostgreSQL connections one process may hold (ingest
    workers + batch endpoint threads share them). connect_timeout_s: one PostgreSQL connection
    attempt at most this long.
    """

    SECTION: ClassVar[str] = "store"
    url: str = ""
    path: str = path_setting("laps-central-data/central.sqlite", nonempty=True,
                             allowed="a file path for the SQLite store")
    synchronous: str = setting("full", choices=("full", "normal"))
    pool_size: int = setting(8, lo=1, hi=1000)
    connect_timeout_s: float = setting(10.0, lo=1.0, hi=600.0)

    def _check(self, checks: Checks) -> None:
        url = self.url.strip()
        scheme = url.split("://", 1)[0].lower() if "://" in url else ""
        if scheme in ("postgresql", "postgres"):
            if not url.split("://", 1)[1].strip("/"):
                checks.fail("url", self.url, "postgresql://user@host:5432/dbname (host and database are missing)")
        elif scheme == "sqlite":
            if not url[len("sqlite://"):].startswith("/") or len(url) <= len("sqlite:///"):
                checks.fail("url", self.url, "sqlite:///absolute/path/central.sqlite, a postgresql://user@host:5432/dbname "
                            "URL, or empty for the SQLite file at store.path (which may be relative)")
        elif url and (scheme or not os.path.isabs(url)):
            checks.fail("url", self.url, "postgresql://user@host:5432/dbname, sqlite:///absolute/path, an absolute "
                        "SQLite path, or empty for the SQLite file at store.path")

    @property
    def backend(self) -> str:
        """"postgresql" or "sqlite"."""
        return "postgresql" if self.url.strip().lower().startswith(("postgresql://", "postgres://")) else "sqlite"

    @property
    def sqlite_path(self) -> str:
        """The SQLite file (for the sqlite backend): url's path when url is set, else `path`."""
        url = self.url.strip()
        if not url:
            return self.path
        return url[len("sqlite://"):] if url.lower().startswith("sqlite://") else url

    @property
    def location(self) -> str:
        """The store for messages: the SQLite file, or the PostgreSQL URL without its password."""
        if self.backend == "sqlite":
            return self.sqlite_path
        from central.store_postgres import redact_url

        return redact_url(self.url.strip())


@dataclass(frozen=True)
class MqttConfig(BrokerConfig):
    """The ingest's broker connection (MQTT v5, shared subscription, persistent session): the
    shared keys of `edge.broker.BrokerConfig` (host, port, keepalive, login, TLS, session,
    reconnect back-off; the same rules as on the device) plus central's own.

    group: shared-subscription group; every ingest worker with the same group shares the
    load (`$share/<group>/<topic>`), each message goes to one of them. client_id: empty =
    "laps-central-ingest-<hostname>-<worker>" (stable per worker, so the broker keeps the
    session and its queued messages across restarts); set, workers after the first get
    "<client_id>-<worker>". receive_maximum: unacknowledged
    messages the broker may have in flight to this worker. batch_max: messages committed in
    one store transaction (then acknowledged together).
    """

    group: str = "laps-central"
    topic: str = SEGMENT_TOPIC
    receive_maximum: int = 200
    batch_max: int = 200

    def client_id_for(self, worker: int) -> str:
        """Worker `worker`'s client id: the configured one (worker 0) or `<client_id>-<worker>`;
        by default laps-central-ingest-<hostname>-<worker>. Distinct per worker: two clients
        with one id would keep disconnecting each other."""
        if self.client_id:
            return self.client_id if worker == 0 else f"{self.client_id}-{worker}"
        return f"laps-central-ingest-{socket.gethostname()}-{worker}"

    @property
    def shared_topic(self) -> str:
        return f"$share/{self.group}/{self.topic}"

    def _check(self, ctx: Checks) -> None:
        super()._check(ctx)
        if not _GROUP_RE.match(self.group):
            ctx.fail("group", self.group, "1-64 characters from A-Z a-z 0-9 . _ - (no '/', '+', '#')")
        if not self.topic.endswith("/segments") or self.topic.startswith("$"):
            ctx.fail("topic", self.topic, "a filter of segment topics such as laps/v1/+/+/segments")
        ctx.range("receive_maximum", self.receive_maximum, 1, 65535)
        ctx.range("batch_max", self.batch_max, 1, 100000)


@dataclass(frozen=True)
class HttpConfig(ConfigSection):
    """The batch endpoint `PUT /v1/batches/<device>/<sha256>`.

    Who may PUT: once the device registry lists a device (`laps-central devices add`), only a
    device presenting ITS OWN token (or, with client_ca, its own client certificate) and only
    under its own path. Without a registry: token_file, a fleet-wide bearer token (empty = no
    authentication; only on a trusted network). Authentication happens before the body is read.
    max_batch_bytes: larger bodies are refused with 413. cert/key: serve HTTPS with this
    certificate. client_ca: CA file of the devices' client certificates: mutual TLS, the
    certificate's common name is the device id. workers: requests served at once; queue:
    connections waiting for a worker (beyond them: 503). timeout_s: a connection that sends
    nothing for this long (a stalled body or header) is closed.
    """

    SECTION: ClassVar[str] = "http"
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = setting(8470, lo=0, hi=65535, allowed="an integer from 0 (any free port) to 65535")
    token_file: str = path_setting(must="readable")
    max_batch_bytes: int = setting(512 * MIB, lo=1024, hi=2**40)
    cert: str = path_setting(must="readable")
    key: str = path_setting(must="readable")
    client_ca: str = path_setting(must="readable")
    workers: int = setting(8, lo=1, hi=256)
    queue: int = setting(64, lo=0, hi=100000)
    timeout_s: float = setting(30.0, lo=0.1, hi=3600.0)

    def _check(self, checks: Checks) -> None:
        if bool(self.cert) != bool(self.key):
            checks.fail("cert" if not self.cert else "key", self.cert or self.key, "both cert and key, or neither")
        if self.client_ca and not self.cert:
            checks.fail("client_ca", self.client_ca,
                        "client certificates only over HTTPS: set http.cert and http.key too")

    def token(self) -> str:
        return Path(self.token_file).read_text(encoding="utf-8").strip() if self.token_file else ""


@dataclass(frozen=True)
class DevicesConfig(ConfigSection):
    """dir: the device registry folder (registry.json, mosquitto.passwd, mosquitto.acl; see
    `central.devices`); empty = <data_dir>/devices."""

    SECTION: ClassVar[str] = "devices"
    dir: str = path_setting()


@dataclass(frozen=True)
class MetricsConfig(ConfigSection):
    """prometheus_port: TCP port of `laps-central ingest`'s Prometheus endpoint (`GET /metrics`,
    central.prometheus); 0 = off, the default (as on the device: nothing binds a port nobody
    asked for). prometheus_host: the address it binds, loopback unless you say otherwise."""

    SECTION: ClassVar[str] = "metrics"
    prometheus_port: int = setting(0, lo=0, hi=65535, allowed="a TCP port 1-65535, or 0 to turn it off")
    prometheus_host: str = setting("127.0.0.1", nonempty=True, allowed="an address to bind, e.g. 127.0.0.1")


#: addresses that only this machine can reach: the dashboard may serve them without a login
LOOPBACK_HOSTS = ("127.0.0.1", "localhost")


@dataclass(frozen=True)
class DashboardConfig(ConfigSection):
    """`laps-central serve`, the fleet dashboard (read-only HTML pages; central.dashboard).

    host/port: the address it binds (loopback by default; `--host/--port` override them).
    username/password_file: HTTP Basic authentication (the browser asks once); with a password
    set, every page asks for it, also on loopback. Without one the dashboard serves loopback
    only: a host other than 127.0.0.1 or localhost needs a password. Basic sends the password
    unencrypted: beyond a trusted network, put the dashboard behind a TLS proxy.
    rate_window_s: the "segments per minute" of each device counts what central received in this
    many seconds. members_per_page: segments listed per page of a cluster.
    """

    SECTION: ClassVar[str] = "dashboard"
    host: str = setting("127.0.0.1", nonempty=True, allowed="an address to bind, e.g. 127.0.0.1")
    port: int = setting(8480, lo=0, hi=65535, allowed="an integer from 0 (any free port) to 65535")
    username: str = setting("operator", nonempty=True, allowed="a user name for the login")
    password_file: str = path_setting(must="readable")
    rate_window_s: float = setting(600.0, lo=10.0, hi=7 * 86400.0)
    members_per_page: int = setting(50, lo=1, hi=10000)

    def _check(self, checks: Checks) -> None:
        if self.host not in LOOPBACK_HOSTS and not self.password_file:
            checks.fail("host", self.host, "127.0.0.1 or localhost, or set dashboard.password_file so that "
                        "every page asks for a login")
        if ":" in self.username:
            checks.fail("username", self.username, "a user name without ':' (HTTP Basic separates with it)")

    def password(self) -> str:
        """The password (the file's first line, stripped); "" when none is configured. An empty
        file is an error: it must not turn a login the operator asked for into none."""
        if not self.password_file:
            return ""
        lines = Path(self.password_file).read_text(encoding="utf-8").strip().splitlines()
        if not lines or not lines[0].strip():
            raise ConfigError(f"dashboard.password_file {self.password_file} is empty; write the dashboard's "
                              "password on its first line")
        return lines[0].strip()


@dataclass(frozen=True)
class CentralConfig(ConfigSection):
    """The whole fleet-side configuration."""

    paths: PathsConfig = field(default_factory=PathsConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    devices: DevicesConfig = field(default_factory=DevicesConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    dashboard: DashboardConfig = field(default_factory=DashboardConfig)
    origin: str = origin_field()

    @property
    def media_dir(self) -> Path:
        return Path(self.paths.media_dir) if self.paths.media_dir else Path(self.paths.data_dir) / "media"

    @property
    def devices_dir(self) -> Path:
        return Path(self.devices.dir) if self.devices.dir else Path(self.paths.data_dir) / "devices"


def load_central_config(path: str | os.PathLike) -> CentralConfig:
    """Read and validate a TOML file; a one-line `ConfigError` on any mistake."""
    p = Path(path)
    data = read_toml(p, "write one (see `laps-central ingest --help`)")
    return central_config_from_dict(data, origin=str(p), base_dir=p.resolve().parent)


def central_config_from_dict(data: dict, origin: str = "", base_dir: str | os.PathLike | None = None) -> CentralConfig:
    """Build and validate a config from a parsed TOML dict (relative paths against base_dir)."""
    return build_section(CentralConfig, data, origin=origin, base_dir=base_dir)


def central_config_example() -> str:
    """A commented example config with every key at its default."""
    return """\
# laps-central configuration (laps-central ingest | cluster | export-dataset --config FILE)
[paths]
data_dir = "laps-central-data"          # keyframes/clips from batches: <data_dir>/media
models_dir = "laps-central-data/models" # the model registry: one model directory per version
media_dir = ""                          # "" = <data_dir>/media; one shared folder for several ingest hosts

[store]
url = ""                                # "" = SQLite at path; "postgresql://laps@db-host:5432/laps" = PostgreSQL
path = "laps-central-data/central.sqlite"
synchronous = "full"                    # full: fsync per commit (ack only after a durable commit)
pool_size = 8                           # PostgreSQL connections per process
connect_timeout_s = 10.0

[mqtt]
host = "localhost"
port = 0                                # 0 = 1883, or 8883 with TLS
group = "laps-central"                  # workers with the same group share the load
topic = "laps/v1/+/+/segments"
client_id = ""                          # "" = laps-central-ingest-<hostname>-<worker>
keepalive = 30
session_expiry_s = 604800
receive_maximum = 200
batch_max = 200
username = ""
password = ""
credentials_file = ""                    # "username:password" (or the password when username is set)

[http]
enabled = true
host = "127.0.0.1"
port = 8470
token_file = ""                         # fleet-wide token, only while no device is registered
max_batch_bytes = 536870912
cert = ""                               # HTTPS certificate and key
key = ""
client_ca = ""                          # mutual TLS: CA of the devices' certificates (CN = device id)
workers = 8                             # requests served at once
queue = 64                              # connections waiting for a worker; beyond: 503
timeout_s = 30.0                        # a connection silent this long is closed

[devices]
dir = ""                                # "" = <data_dir>/devices: registry.json, mosquitto.passwd/.acl

[metrics]
prometheus_port = 0                     # `laps-central ingest` on http://<host>:<port>/metrics; 0 = off
prometheus_host = "127.0.0.1"           # (suggested port: 9470)

[dashboard]
host = "127.0.0.1"                      # laps-central serve; beyond loopback only with a password
port = 8480
username = "operator"                   # HTTP Basic login, asked for when password_file is set
password_file = ""                      # one line: the password ("" = no login, loopback only)
rate_window_s = 600.0                   # segments per minute over this window
members_per_page = 50
"""


# -- validation: the device's machinery, with the central's path keys ---------------------------
#: keys whose string values are file or folder paths, resolved against the config's folder
_PATH_KEYS = frozenset({
    "paths.data_dir", "paths.models_dir", "paths.media_dir", "store.path", "mqtt.tls.ca", "mqtt.tls.cert", "mqtt.tls.key",
    "http.token_file", "http.cert", "http.key", "http.client_ca", "devices.dir", "dashboard.password_file",
})
