"""The broker connection, in one place for the device and the fleet side.

`BrokerConfig` holds what every MQTT client of this project needs to reach the broker (the keys
of a config file's `[mqtt]` table that the device's `edge.config.MqttConfig` and central's
`central.config.MqttConfig` share; each adds its own keys by subclassing it), with one set of
rules for checking them. `BrokerConfig.credentials` is the one reader of a credentials file,
and `new_client` the one place a paho client gets its protocol, login, TLS and last will.

Rules (the same on the device and on central):
- port 0 means 1883, or 8883 with TLS; keepalive 1-65535 s; reconnect_max_s >= reconnect_min_s.
- Login: username/password in the config, or credentials_file, not both; a password needs a
  username. credentials_file holds `username:password` on its first line (or only the password
  when `username` is set); an empty user name or password is refused, never turned into an
  anonymous login. It is read when connecting, so a rotated file is picked up on restart. A
  relative credentials_file is looked up in $CREDENTIALS_DIRECTORY (systemd LoadCredential=)
  when that is set, else next to the config file.
- client_id: at most 128 characters, no '/'.
- TLS: on when [mqtt.tls] enabled, or a ca or cert is given; the broker's certificate is
  always verified (against ca, or the system store); a client certificate needs its key.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, NamedTuple

from edge.config_schema import Checks, ConfigSection, path_setting
from edge.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import paho.mqtt.client as mqtt


class Credentials(NamedTuple):
    """Broker user name and password ("" when the broker is anonymous)."""

    username: str
    password: str


@dataclass(frozen=True)
class TlsConfig(ConfigSection):
    """TLS towards the broker. ca: CA bundle that signed the broker's certificate (empty = the
    system store). cert/key: client certificate and key for mutual TLS (both or neither).
    enabled: use TLS even when no file is given (system CA store)."""

    SECTION: ClassVar[str] = "mqtt.tls"
    enabled: bool = False
    ca: str = path_setting(must="readable", allowed="a readable PEM file")
    cert: str = path_setting(must="readable", allowed="a readable PEM file")
    key: str = path_setting(must="readable", allowed="a readable PEM file")

    @property
    def active(self) -> bool:
        return self.enabled or bool(self.ca or self.cert)

    def _check(self, checks: Checks) -> None:
        if bool(self.cert) != bool(self.key):
            checks.fail("cert" if not self.cert else "key", self.cert or self.key,
                        "both mqtt.tls.cert and mqtt.tls.key, or neither")


@dataclass(frozen=True)
class BrokerConfig(ConfigSection):
    """Where the broker is and how to log in (MQTT v5, persistent session).

    host/port: the broker (port 0 = 1883, or 8883 with TLS). keepalive: seconds between pings;
    a dead broker is noticed after ~1.5x this. client_id: the session's id on the broker (each
    subclass says what empty means). username/password, or credentials_file (see the module
    docstring). session_expiry_s: how long the broker keeps the session after a disconnect.
    reconnect_min_s/max_s: back-off between connection attempts (doubling).
    """

    SECTION: ClassVar[str] = "mqtt"
    host: str = "localhost"
    port: int = 0
    keepalive: int = 30
    client_id: str = ""
    username: str = ""
    password: str = ""
    credentials_file: str = path_setting(credentials=True)
    session_expiry_s: int = 7 * 24 * 3600
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 60.0
    tls: TlsConfig = field(default_factory=TlsConfig)

    @property
    def effective_port(self) -> int:
        """The configured port, or 8883 with TLS / 1883 without."""
        return self.port or (8883 if self.tls.active else 1883)

    #: what `host` must be, for the error message (a subclass that can run without a broker says how)
    _HOST_HINT = "a broker host name or address"

    def _host_required(self) -> bool:
        """Whether an empty host is a mistake."""
        return True

    def _check(self, ctx: Checks) -> None:
        if self._host_required() and not self.host.strip():
            ctx.fail("host", self.host, self._HOST_HINT)
        ctx.range("port", self.port, 0, 65535, "an integer from 1 to 65535 (0 = 1883, or 8883 with TLS)")
        ctx.range("keepalive", self.keepalive, 1, 65535)
        ctx.range("session_expiry_s", self.session_expiry_s, 0, 2**32 - 1)
        ctx.range("reconnect_min_s", self.reconnect_min_s, 0.01, 3600.0)
        ctx.range("reconnect_max_s", self.reconnect_max_s, self.reconnect_min_s, 86400.0,
                  "a number of seconds >= mqtt.reconnect_min_s")
        if self.password and self.credentials_file:
            ctx.fail("credentials_file", self.credentials_file,
                     "either mqtt.password or mqtt.credentials_file, not both")
        if self.password and not self.username:
            ctx.fail("password", "***", "a password only together with mqtt.username")
        if self.credentials_file and not os.access(self.credentials_file, os.R_OK):
            ctx.fail("credentials_file", self.credentials_file,
                     "a file readable by the service user holding 'username:password' "
                     "(or systemd LoadCredential=)")
        if self.client_id and ("/" in self.client_id or len(self.client_id) > 128):
            ctx.fail("client_id", self.client_id, "at most 128 characters without '/'")

    def credentials(self, origin: str = "") -> Credentials:
        """The login: username/password, or read from credentials_file now (not at load, so a
        rotated file is picked up on restart). origin: the config file, for error messages.
        `ConfigError` (one line, with the fix) when the file is unreadable or malformed."""
        if not self.credentials_file:
            return Credentials(self.username, self.password)
        where = f"config {origin}: " if origin else "config: "
        path = Path(self.credentials_file)
        try:
            line = path.read_text(encoding="utf-8").splitlines()[0].strip() if path.stat().st_size else ""
        except (OSError, UnicodeDecodeError) as err:
            why = getattr(err, "strerror", None) or "not UTF-8 text"
            raise ConfigError(
                f"{where}mqtt.credentials_file {str(path)!r} cannot be read ({why}); "
                "make it readable by the service user (or use systemd LoadCredential=)"
            ) from None
        if self.username:
            user, password = self.username, line
        elif ":" in line:
            user, password = line.split(":", 1)
        else:
            raise ConfigError(
                f"{where}mqtt.credentials_file {str(path)!r} must hold 'username:password' on its "
                "first line (or only the password when mqtt.username is set)"
            )
        if not user or not password:
            raise ConfigError(f"{where}mqtt.credentials_file {str(path)!r} has an empty user name or password")
        return Credentials(user, password)


def new_client(cfg: BrokerConfig, client_id: str, *, credentials: Credentials | None = None,
               will: tuple[str, bytes] | None = None, manual_ack: bool = False) -> "mqtt.Client":
    """A paho MQTT v5 client, not yet connected, with `cfg`'s login, TLS and reconnect back-off.

    credentials: the login to use (None: read `cfg.credentials()` now; an empty username:
    anonymous). will: (topic, payload) the broker publishes retained at QoS 1 if the connection
    dies without a DISCONNECT. manual_ack: the caller acknowledges each message itself (central's
    ingest acknowledges only after its commit). Callbacks and flow control are the caller's.
    """
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv5, manual_ack=manual_ack)
    login = cfg.credentials() if credentials is None else credentials
    if login.username:
        client.username_pw_set(login.username, login.password or None)
    if cfg.tls.active:
        client.tls_set(ca_certs=cfg.tls.ca or None, certfile=cfg.tls.cert or None, keyfile=cfg.tls.key or None,
                       cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
    if will is not None:
        client.will_set(will[0], will[1], qos=1, retain=True)
    client.reconnect_delay_set(cfg.reconnect_min_s, cfg.reconnect_max_s)  # type: ignore[arg-type]
    return client
