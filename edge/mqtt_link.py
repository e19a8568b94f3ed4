"""The device's MQTT connection: birth/last will, store-and-forward sender, back-off.

One thread owns the paho client (paho-mqtt 2.x, `CallbackAPIVersion.VERSION2`, MQTT v5) and
drives it with paho's external-loop API (`loop_read`/`loop_write`/`loop_misc` around our own
`select`), so connecting, publishing, PUBACK bookkeeping and the outbox all happen in one
thread with no races between "published" and "acknowledged":

- connect with `clean_start=False` and a session expiry (a persistent session), a retained
  last will on `.../state` saying "offline", and a retained birth message on every connect;
- publish outbox rows QoS 1 only while connected, at most `max_inflight` unacknowledged;
  a row is deleted from the outbox only when its PUBACK arrives (`on_publish`); rows paho
  still holds are re-sent by paho after a reconnect, and everything unacknowledged is
  re-read from the outbox after a restart (paho's own queue lives in RAM);
- end-to-end rows (segments, with `mqtt.delivery = "central"`): the PUBACK only records that
  the broker took the row; the link subscribes to its own `.../acks` and deletes a row when
  central's `laps.ack/1` names it, and publishes it again when no ack came within
  `ack_timeout_s` (at most `max_unconfirmed` rows wait for central at once). Mosquitto does
  not restore `$share/...` subscriptions after a restart, so a message it accepted before the
  ingest re-subscribed is dropped: the re-send is what delivers it;
- reconnect with exponential back-off and jitter; a refused login (bad user name or
  password, not authorised) is logged ONCE as one clear error with its fix and retried no
  faster than `auth_retry_s`, so a wrong password never becomes a reconnect storm;
- a clean `stop()` drains the outbox for a moment, publishes the final retained state and
  sends DISCONNECT with reason "normal", so the broker does NOT fire the last will.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import select
import socket
import sqlite3
import ssl
import threading
import time
from collections import deque
from typing import Any, Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge.broker import Credentials, new_client
from edge.config import MqttConfig
from edge.messages import AckMessage, MessageError, MetricsMessage, StateMessage, Topics, canonical_segment_id
from edge.outbox import Outbox

log = logging.getLogger(__name__)

#: reason codes (MQTT v5 CONNACK) that mean "your credentials are wrong": retry slowly
_AUTH_REFUSALS = {0x86, 0x87, 0x8C}  # bad user name or password, not authorised, bad auth method


class MqttLink:
    """A persistent, self-healing MQTT v5 connection that forwards an outbox.

    cfg: the [mqtt] section. client_id: stable id (the broker keys the session on it).
    topics: this device's topics. outbox: rows to forward (None: state/metrics only, as
    `laps-edge doctor` and tests use it). will: the retained "offline" state the broker
    publishes if the connection dies without a DISCONNECT. credentials: user/password
    (None or empty: anonymous). origin: config file name for messages.
    """

    def __init__(
        self,
        cfg: MqttConfig,
        *,
        client_id: str,
        topics: Topics,
        outbox: Outbox | None,
        will: StateMessage | None = None,
        credentials: Credentials | None = None,
        origin: str = "",
    ) -> None:
        self.cfg = cfg
        self.topics = topics
        self.outbox = outbox
        self.host, self.port = cfg.host, cfg.effective_port
        self._origin = origin
        self._client = new_client(cfg, client_id, credentials=credentials or Credentials("", ""),
                                  will=(topics.state, will.to_json()) if will is not None else None)
        self._client.max_inflight_messages_set(cfg.max_inflight + 8)  # room for state messages
        self._client.max_queued_messages_set(0)
        # Keep a dead broker from blocking a connect attempt for long.
        self._client.connect_timeout = float(min(10, max(1, cfg.keepalive)))
        self._user = credentials.username if credentials else ""
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._client.on_message = self._on_message

        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._thread: threading.Thread | None = None
        self._stop_evt = threading.Event()
        self._stop_state: StateMessage | None = None
        self._drain_timeout_s = cfg.drain_timeout_s
        self._connected_evt = threading.Event()
        self._lock = threading.Lock()        # guards the request queue and counters read by others
        self._requests: deque[tuple[str, bytes, int, bool]] = deque()
        self._state_msg: StateMessage | None = None
        # topic -> (qos, callback(topic, payload, retained)); (re)subscribed on every connection
        self._subscriptions: dict[str, tuple[int, Callable[[str, bytes, bool], None]]] = {}
        self._subscribed: set[str] = set()  # owned by the link thread
        self._end_to_end = cfg.delivery == "central" and outbox is not None
        if self._end_to_end:
            self._subscriptions[topics.acks] = (1, self._on_ack)

        # owned by the link thread
        self._inflight: dict[int, str] = {}   # paho mid -> outbox key
        self._inflight_keys: set[str] = set()
        self._inflight_e2e: set[str] = set()  # in-flight keys that wait for central after the PUBACK
        self._acked: list[str] = []
        self._sent: list[str] = []            # PUBACKed end-to-end rows, to mark in the outbox
        self._confirmed: list[str] = []       # rows central acknowledged, to delete
        self._rejected: set[str] = set()
        self._dirty = True
        self._last_scan = 0.0
        self._refused: ReasonCode | None = None
        self._first_connect = True
        self._last_logged_error = ""
        self._final_acked: set[int] = set()  # mids of non-outbox QoS 1 messages acknowledged

        self.counters = {
            "connect_attempts": 0, "connects": 0, "disconnects": 0, "auth_failures": 0,
            "published": 0, "acked": 0, "rejected": 0, "resent": 0, "confirmed": 0,
            "quarantined_by_central": 0,
        }
        self.last_error = ""

    # -- life cycle ----------------------------------------------------------------------------
    def start(self) -> None:
        """Start the link thread (connects in the background; never blocks on the broker)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="mqtt-link", daemon=True)
        self._thread.start()

    def stop(self, final_state: StateMessage | None = None, drain_timeout_s: float | None = None) -> None:
        """Clean shutdown: drain the outbox up to `drain_timeout_s`, publish `final_state`
        retained, DISCONNECT normally (no last will), and join the thread."""
        if self._thread is None:
            return
        self._stop_state = final_state
        if drain_timeout_s is not None:
            self._drain_timeout_s = drain_timeout_s
        self._stop_evt.set()
        self.wake()
        self._thread.join(timeout=self._drain_timeout_s + self._client.connect_timeout + 5.0)
        if self._thread.is_alive():
            log.warning("MQTT link did not stop in time; closing the socket (the broker may publish the last will)")
        self._thread = None
        for s in (self._wake_r, self._wake_w):
            s.close()
        c = self.counters
        log.info("MQTT link stopped: %d published, %d re-sent for want of central's ack, %d acknowledged by the "
                 "broker, %d confirmed by central (%d of them quarantined), %d connects",
                 c["published"], c["resent"], c["acked"], c["confirmed"], c["quarantined_by_central"], c["connects"])

    def wake(self) -> None:
        """Tell the link thread there is new work (an outbox row, a state or metrics message)."""
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # the pipe is full (already woken) or closed (stopping)

    # -- what others call ------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._connected_evt.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected_evt.wait(timeout)

    def set_state(self, message: StateMessage) -> None:
        """Publish a retained state now (if connected) and as the birth message on every connect."""
        with self._lock:
            self._state_msg = message
            self._requests.append((self.topics.state, message.to_json(), 1, True))
        self.wake()

    def subscribe(self, topic: str, callback: Callable[[str, bytes, bool], None], qos: int = 1) -> None:
        """Subscribe to `topic` (an exact topic) on every connection. `callback(topic, payload,
        retained)` runs in the link thread: it must only queue the work, never block."""
        with self._lock:
            self._subscriptions[topic] = (qos, callback)
        self.wake()

    def publish_metrics(self, message: MetricsMessage) -> None:
        """Publish a metrics message QoS 0 if connected (metrics are periodic; a lost one is
        replaced by the next, so they do not go through the outbox)."""
        with self._lock:
            self._requests.append((self.topics.metrics, message.to_json(), 0, False))
        self.wake()

    def stats(self) -> dict[str, Any]:
        """Counters for `.../metrics`: connection attempts, connects, auth failures, published,
        acknowledged, in flight, and the last error text."""
        out: dict[str, Any] = dict(self.counters)
        out["connected"] = self.connected
        out["inflight"] = len(self._inflight)
        out["delivery"] = "central" if self._end_to_end else "broker"
        out["last_error"] = self.last_error
        return out

    def inflight_count(self) -> int:
        return len(self._inflight)

    # -- the link thread ---------------------------------------------------------------------------
    def _run(self) -> None:
        delay = self.cfg.reconnect_min_s
        while not self._stop_evt.is_set():
            self.counters["connect_attempts"] += 1
            self._refused = None
            reached_connack = False
            try:
                self._open_socket()
            except (OSError, ssl.SSLError, ssl.CertificateError, ValueError) as err:
                self._report(self._explain_socket_error(err))
            else:
                reached_connack = self._session()
            if self._stop_evt.is_set():
                break
            if reached_connack:
                delay = self.cfg.reconnect_min_s  # a working session resets the back-off
            if self._refused is not None and self._refused.value in _AUTH_REFUSALS:
                delay = max(delay, self.cfg.auth_retry_s)
            wait = delay * random.uniform(0.8, 1.2)  # jitter: a fleet must not reconnect in step
            log.debug("MQTT: next connection attempt in %.2f s", wait)
            self._stop_evt.wait(wait)
            delay = min(delay * 2.0, max(self.cfg.reconnect_max_s, delay))
        self._close_socket()

    def _open_socket(self) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = int(self.cfg.session_expiry_s)
        if self._first_connect:
            self._client.connect(self.host, self.port, keepalive=self.cfg.keepalive,
                                 clean_start=False, properties=props)
            self._first_connect = False
        else:
            self._client.reconnect()

    def _session(self) -> bool:
        """Run one connection until it ends (or a clean stop finishes). Returns True if the
        broker accepted the connection."""
        accepted = False
        draining_since: float | None = None
        final_mid: int | None = None
        final_sent_at = disconnect_at = 0.0
        disconnect_sent = False
        while True:
            sock = self._client.socket()
            if sock is None:
                break
            if self.connected:
                accepted = True
            stopping = self._stop_evt.is_set()
            if stopping and not self.connected:
                break
            timeout = 0.0 if getattr(sock, "pending", lambda: 0)() else 0.5
            wlist = [sock] if self._client.want_write() else []
            try:
                readable, writable, _ = select.select([sock, self._wake_r], wlist, [], timeout)
            except (OSError, ValueError):
                readable, writable = [sock], []  # socket closed under us: let loop_read notice
            if self._wake_r in readable:
                self._drain_wake()
            if sock in readable or getattr(sock, "pending", lambda: 0)():
                self._client.loop_read()
            if self._client.socket() is not None and sock in writable:
                self._client.loop_write()
            if self._client.socket() is not None:
                self._client.loop_misc()
            self._service()
            if not stopping or not self.connected:
                continue
            # Clean stop: drain, then final state, then DISCONNECT (which keeps the will unsent).
            now = time.monotonic()
            if draining_since is None:
                draining_since = now
            drained = (self.outbox is None or self.outbox.depth == 0) and not self._inflight
            if final_mid is None and (drained or now - draining_since >= self._drain_timeout_s):
                if self._stop_state is not None:
                    info = self._client.publish(self.topics.state, self._stop_state.to_json(), qos=1, retain=True)
                    final_mid = info.mid
                else:
                    final_mid = -1
                final_sent_at = now
            if final_mid is not None and not disconnect_sent:
                if final_mid in self._final_acked or final_mid == -1 or now - final_sent_at > 1.0:
                    self._client.disconnect(reasoncode=ReasonCode(PacketTypes.DISCONNECT, "Normal disconnection"))
                    disconnect_sent = True
                    disconnect_at = now
            if disconnect_sent and now - disconnect_at > 1.0:
                break  # the broker did not close; give up waiting
        return accepted

    def _service(self) -> None:
        """Per loop turn: commit acknowledgements, publish requests and outbox rows."""
        if self.outbox is not None:
            self.counters["acked"] += self._record(self._acked, self.outbox.ack)
            self._record(self._sent, self.outbox.mark_sent)
            self.counters["confirmed"] += self._record(self._confirmed, self.outbox.confirm)
        if not self.connected:
            return
        with self._lock:
            missing = [(t, q) for t, (q, _) in self._subscriptions.items() if t not in self._subscribed]
        for topic, qos in missing:
            self._client.subscribe(topic, qos=qos)
            self._subscribed.add(topic)
        while True:
            with self._lock:
                if not self._requests:
                    break
                topic, payload, qos, retain = self._requests.popleft()
            self._client.publish(topic, payload, qos=qos, retain=retain)
        if self.outbox is None:
            return
        room = self.cfg.max_inflight - len(self._inflight)
        now = time.monotonic()
        if room <= 0 or not (self._dirty or now - self._last_scan > 1.0):
            return
        self._dirty = False
        self._last_scan = now
        rows = self.outbox.due(room, exclude=self._inflight_keys | self._rejected,
                               resend_before=time.time() - self.cfg.ack_timeout_s,
                               window=self.cfg.max_unconfirmed if self._end_to_end else None)
        for row in rows:
            info = self._client.publish(row.topic, row.payload, qos=1)
            if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
                log.warning("MQTT publish of %s failed locally (%s); will retry", row.key, mqtt.error_string(info.rc))
                break
            self._inflight[info.mid] = row.key
            self._inflight_keys.add(row.key)
            if row.end_to_end and self._end_to_end:
                self._inflight_e2e.add(row.key)
            if row.sent is not None:
                self.counters["resent"] += 1
                log.debug("MQTT: central has not acknowledged %s within %g s; sent again",
                          row.key, self.cfg.ack_timeout_s)
            self.counters["published"] += 1

    def _record(self, keys: list[str], write: Callable[[list[str]], int]) -> int:
        """Apply one kind of acknowledgement to the outbox (`ack`, `mark_sent`, `confirm`) and
        forget the keys. On a full disk (any SQLite error) the keys are kept for the next turn:
        a row whose acknowledgement is not recorded is at worst sent again. Returns rows changed."""
        if not keys:
            return 0
        try:
            done = write(keys)
        except sqlite3.Error as err:
            # One stable line (no count in it), so a long full-disk episode is logged once.
            self._report(f"outbox cannot record acknowledgements ({err}); keeping them and retrying",
                         level=logging.WARNING)
            return 0
        keys.clear()
        return done

    def _drain_wake(self) -> None:
        self._dirty = True
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def _close_socket(self) -> None:
        self._connected_evt.clear()
        sock = self._client.socket()
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    # -- paho callbacks (all run in the link thread) ------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason: ReasonCode, properties) -> None:
        if reason.is_failure:
            self._refused = reason
            if reason.value in _AUTH_REFUSALS:
                self.counters["auth_failures"] += 1
                who = f"user {self._user!r}" if self._user else "an anonymous client"
                self._report(
                    f"MQTT broker {self.host}:{self.port} refused the login of {who}: {reason}; "
                    "fix mqtt.username/mqtt.password or mqtt.credentials_file in "
                    f"{self._origin or 'the config'} (retrying every {self.cfg.auth_retry_s:g} s or slower)"
                )
            else:
                self._report(f"MQTT broker {self.host}:{self.port} refused the connection: {reason}")
            return
        self.counters["connects"] += 1
        self.last_error = ""
        self._last_logged_error = ""
        self._rejected.clear()
        self._subscribed.clear()
        self._dirty = True
        self._connected_evt.set()
        log.info("MQTT connected to %s:%s (session present: %s)", self.host, self.port, flags.session_present)
        with self._lock:
            # The birth: the current retained state, first thing on every connection.
            # Queued state updates are superseded by the current state.
            others = [r for r in self._requests if r[0] != self.topics.state]
            self._requests.clear()
            self._requests.extend(others)
            if self._state_msg is not None:
                self._requests.appendleft((self.topics.state, self._state_msg.to_json(), 1, True))

    def _on_disconnect(self, client, userdata, flags, reason: ReasonCode, properties) -> None:
        was = self.connected
        self._connected_evt.clear()
        if was:
            self.counters["disconnects"] += 1
            if self._stop_evt.is_set():
                log.info("MQTT disconnected from %s:%s", self.host, self.port)
            else:
                self._report(f"MQTT connection to {self.host}:{self.port} lost ({reason}); reconnecting", level=logging.WARNING)

    def _on_publish(self, client, userdata, mid: int, reason: ReasonCode, properties) -> None:
        key = self._inflight.pop(mid, None)
        if key is None:
            if self._stop_evt.is_set():
                self._final_acked.add(mid)  # the final state's PUBACK, awaited by a clean stop
            return
        self._inflight_keys.discard(key)
        end_to_end = key in self._inflight_e2e
        self._inflight_e2e.discard(key)
        self._dirty = True
        if reason.is_failure:
            # The broker refused this message (e.g. an ACL): keep the row, retry after reconnect.
            self.counters["rejected"] += 1
            self._rejected.add(key)
            self._report(f"MQTT broker refused message {key}: {reason}; "
                         "check the broker's ACL for this device's topics")
            return
        # An end-to-end row stays until central's ack; the PUBACK starts its ack timeout.
        (self._sent if end_to_end else self._acked).append(key)

    def _on_ack(self, topic: str, payload: bytes, retained: bool) -> None:
        """Central's `laps.ack/1`: the segments it names are committed (or quarantined for good)."""
        try:
            msg = AckMessage.from_json(payload)
            if (msg.site, msg.device_id) != (self.topics.site, self.topics.device):
                raise MessageError(f"it names {msg.site}/{msg.device_id}")
            ids = [canonical_segment_id(i) for i in msg.segment_ids]
            refused = [(canonical_segment_id(q.segment_id), q.reason) for q in msg.quarantined]
        except MessageError as err:
            log.warning("MQTT: ignoring a malformed acknowledgement on %s: %s", topic, err)
            return
        for sid, reason in refused:
            # Sending it again cannot help: central refused its content. Say so, once, loudly.
            log.error("central quarantined segment %s for good: %s", sid, reason)
        self.counters["quarantined_by_central"] += len(refused)
        self._confirmed.extend(ids)
        self._confirmed.extend(sid for sid, _ in refused)

    def _on_message(self, client, userdata, msg) -> None:
        with self._lock:
            entry = self._subscriptions.get(msg.topic)
        if entry is None:
            return
        try:
            entry[1](msg.topic, bytes(msg.payload), bool(msg.retain))
        except Exception:  # a subscriber's bug must not take the link thread down
            log.exception("MQTT: handler of %s failed", msg.topic)

    # -- errors ---------------------------------------------------------------------------------
    def _report(self, message: str, level: int = logging.ERROR) -> None:
        """Log an error once while it repeats (one clear line, no log storm); count it."""
        self.last_error = message
        if message != self._last_logged_error:
            log.log(level, "%s", message)
            self._last_logged_error = message
        else:
            log.debug("%s (again)", message)

    def _explain_socket_error(self, err: BaseException) -> str:
        where = f"{self.host}:{self.port}"
        if isinstance(err, ssl.SSLCertVerificationError):
            return (f"MQTT TLS: the certificate of broker {where} is not trusted ({err.verify_message}); "
                    "set mqtt.tls.ca to the CA file that signed it")
        if isinstance(err, ssl.CertificateError):
            return f"MQTT TLS: the broker certificate does not match host {self.host!r} ({err}); connect by the name in the certificate"
        if isinstance(err, ssl.SSLError):
            hint = ("set mqtt.tls.cert and mqtt.tls.key (the broker wants a client certificate)"
                    if "certificate required" in str(err) else "check the broker's TLS listener and mqtt.tls.*")
            return f"MQTT TLS handshake with {where} failed ({err.reason or err}); {hint}"
        if isinstance(err, ConnectionRefusedError):
            return f"MQTT broker {where} refused the TCP connection; is the broker running on that port?"
        if isinstance(err, socket.gaierror):
            return f"MQTT broker host {self.host!r} cannot be resolved ({err.strerror}); check mqtt.host"
        if isinstance(err, (TimeoutError, socket.timeout)):
            return f"MQTT broker {where} did not answer within {self._client.connect_timeout:g} s; check the network"
        return f"MQTT connection to {where} failed ({err}); check mqtt.host and mqtt.port"


def probe_broker(cfg: MqttConfig, client_id: str, credentials: Credentials | None,
                 timeout_s: float = 5.0) -> tuple[bool, str]:
    """Connect once, wait for CONNACK, disconnect (for `laps-edge doctor`).

    Returns (ok, text): text is the broker's answer or the connection error, with its fix.
    """
    topics = Topics("doctor", "doctor")
    # Never the service's own client id (that would take over its session), and no lingering
    # session on the broker afterwards.
    probe_cfg = dataclasses.replace(cfg, session_expiry_s=0, reconnect_min_s=timeout_s * 2,
                                    reconnect_max_s=timeout_s * 2)
    link = MqttLink(probe_cfg, client_id=f"{client_id}-doctor-{random.randrange(1 << 30):x}",
                    topics=topics, outbox=None, will=None, credentials=credentials)
    link.start()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if link.connected:
            break
        if link.counters["connect_attempts"] >= 1 and link.last_error:
            break
        time.sleep(0.05)
    ok = link.connected
    text = "" if ok else (link.last_error or f"no answer from {cfg.host}:{cfg.effective_port} within {timeout_s:g} s")
    link.stop(drain_timeout_s=0.0)
    return ok, text

