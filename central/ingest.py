"""MQTT ingest: the fleet's segment messages into the central store, each exactly once.

An `IngestWorker` is one MQTT v5 client (paho-mqtt 2.x, `CallbackAPIVersion.VERSION2`) in a
shared-subscription group: it subscribes to `$share/<group>/laps/v1/+/+/segments`, so the broker
hands every message to ONE worker of the group and several workers (processes or machines)
split the load. Per message:

1. validate: the topic is `laps/v1/<site>/<device>/segments`, the payload is a valid
   `laps.segment/1` message (`edge.messages.parse_segment_message`, the same code the device
   builds with) and names the same site and device as its topic. A message that fails goes to
   the `quarantine` table with the reason; the worker keeps going.
2. store: valid messages are inserted by `segment_id` (INSERT OR IGNORE: the at-least-once
   duplicates a device or the broker re-sends are dropped and counted), several per SQLite
   transaction (WAL, fsync per commit by default).
3. acknowledge: the client runs with `manual_ack=True`; PUBACK goes out (`client.ack(mid, qos)`)
   only after the transaction holding the message has committed. A worker killed between
   receipt and commit never acknowledged, so the broker re-delivers to the group.

Broker restarts: the session is persistent (`clean_start=False`, a session expiry, a stable
client id), paho reconnects with back-off and the subscription is renewed on every connect.
Packet ids are per connection, so a message received on an earlier connection is never
acknowledged on a later one (the broker re-sends it; de-duplication drops the copy).
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time
from dataclasses import dataclass
from typing import Callable

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from central.config import CentralConfig, MqttConfig
from central.store import Store
from edge.messages import MessageError, parse_segment_message, parse_topic

log = logging.getLogger(__name__)

#: codes are stored as uint32; a larger value cannot be an FSQ code of any sensible codebook
MAX_CODE = 2**32 - 1


@dataclass
class _Received:
    generation: int  # connection generation the message arrived on (packet ids are per connection)
    mid: int
    qos: int
    topic: str
    payload: bytes


def validate_segment(topic: str, payload: bytes) -> dict:
    """The validated `laps.segment/1` message of one MQTT message, or `MessageError` naming
    what is wrong (then the message belongs in quarantine)."""
    site, device, kind = parse_topic(topic)
    if kind != "segments":
        raise MessageError(f"topic {topic!r} is a {kind!r} topic, not segments")
    msg = parse_segment_message(payload)
    if msg["site"] != site or msg["device_id"] != device:
        raise MessageError(
            f"message names site {msg['site']!r} device {msg['device_id']!r} but was published on {topic!r}"
        )
    if any(c > MAX_CODE for c in msg["codes"]):
        raise MessageError(f"codes exceed {MAX_CODE}; not FSQ codes")
    return msg


class IngestWorker:
    """One member of the ingest group: subscribes, validates, stores, acknowledges after commit.

    cfg: the [mqtt] section. store: where to write (may be shared by several workers of one
    process). worker: index used in the default client id. on_commit(stored, duplicates,
    quarantined): called after each committed transaction (tests and benchmarks use it).
    """

    def __init__(self, cfg: MqttConfig, store: Store, worker: int = 0,
                 on_commit: Callable[[int, int, int], None] | None = None) -> None:
        self.cfg = cfg
        self.store = store
        self.client_id = cfg.client_id_for(worker)
        self.on_commit = on_commit
        self._queue: queue.Queue[_Received] = queue.Queue()
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._gen_lock = threading.Lock()
        self._generation = 0
        self._writer: threading.Thread | None = None
        self.stats = {"received": 0, "stored": 0, "duplicates": 0, "quarantined": 0, "acked": 0,
                      "commits": 0, "stale_not_acked": 0, "connects": 0, "store_errors": 0}
        self.last_error = ""

        client = cfg.new_client(self.client_id, manual_ack=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        self._client = client
        self._subscribed = threading.Event()

    # -- life cycle --------------------------------------------------------------------------------
    def start(self) -> None:
        """Connect in the background (retrying while the broker is away) and start writing."""
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = int(self.cfg.session_expiry_s)
        props.ReceiveMaximum = int(self.cfg.receive_maximum)
        self._client.connect_async(self.cfg.host, self.cfg.effective_port, keepalive=self.cfg.keepalive,
                                   clean_start=False, properties=props)
        self._writer = threading.Thread(target=self._write_loop, name=f"ingest-writer-{self.client_id}", daemon=True)
        self._writer.start()
        self._client.loop_start()

    def stop(self, timeout: float = 10.0) -> None:
        """Commit and acknowledge what is queued, then disconnect normally."""
        deadline = time.monotonic() + timeout
        while not self._queue.empty() and time.monotonic() < deadline:
            time.sleep(0.02)
        self._stop.set()
        if self._writer is not None:
            self._writer.join(max(0.1, deadline - time.monotonic()))
        self._client.disconnect()
        self._client.loop_stop()

    def wait_subscribed(self, timeout: float) -> bool:
        """True once connected and the shared subscription was granted."""
        return self._subscribed.wait(timeout)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    # -- paho callbacks (network thread) ----------------------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason, properties) -> None:
        if reason.is_failure:
            self._report(f"broker {self.cfg.host}:{self.cfg.effective_port} refused the ingest ({reason}); "
                         "check mqtt.username/password and the broker ACL for the segment topics")
            return
        with self._gen_lock:
            self._generation += 1
        self._connected.set()
        self.stats["connects"] += 1
        self.last_error = ""
        log.info("ingest %s connected to %s:%d (session present: %s); subscribing %s", self.client_id,
                 self.cfg.host, self.cfg.effective_port, flags.session_present, self.cfg.shared_topic)
        client.subscribe(self.cfg.shared_topic, qos=1)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        bad = [rc for rc in reason_codes if rc.is_failure]
        if bad:
            self._report(f"broker refused the subscription {self.cfg.shared_topic} ({bad[0]}); the broker must "
                         "support MQTT v5 shared subscriptions and allow this topic")
            return
        self._subscribed.set()

    def _on_disconnect(self, client, userdata, flags, reason, properties) -> None:
        # Packet ids of the closed connection mean nothing on the next one: stop acking them now.
        with self._gen_lock:
            self._generation += 1
        self._connected.clear()
        self._subscribed.clear()
        if not self._stop.is_set():
            self._report(f"ingest {self.client_id} lost the broker ({reason}); reconnecting", logging.WARNING)

    def _on_message(self, client, userdata, msg) -> None:
        with self._gen_lock:
            gen = self._generation
        self._queue.put(_Received(gen, msg.mid, msg.qos, msg.topic, bytes(msg.payload)))

    # -- the writer thread ---------------------------------------------------------------------------------
    def _write_loop(self) -> None:
        while not self._stop.is_set() or not self._queue.empty():
            try:
                first = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            batch = [first]
            while len(batch) < self.cfg.batch_max:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._commit_and_ack(batch)

    def _commit_and_ack(self, batch: list[_Received]) -> None:
        good: list[tuple[dict, str]] = []
        bad: list[tuple[str, str, bytes]] = []
        for item in batch:
            try:
                good.append((validate_segment(item.topic, item.payload), item.topic))
            except MessageError as err:
                bad.append((item.topic, str(err), item.payload))
            except Exception as err:  # noqa: BLE001 - a malformed message must never stop the worker
                bad.append((item.topic, f"unexpected error while validating: {type(err).__name__}: {err}", item.payload))
        for topic, reason, _ in bad:
            log.warning("quarantined a message on %s: %s", topic, reason)
        delay = 0.1
        while True:
            try:
                stored, duplicates = self.store.ingest(good, bad)
                break
            except Exception as err:  # noqa: BLE001 - disk full, locked: retry, never ack uncommitted data
                self.stats["store_errors"] += 1
                self._report(f"store {self.store.path} cannot commit ({err}); holding {len(batch)} message(s) "
                             "unacknowledged and retrying")
                if self._stop.wait(delay):
                    return  # stopping: the broker re-delivers what we never acknowledged
                delay = min(delay * 2, 5.0)
        self.stats["received"] += len(batch)
        self.stats["stored"] += stored
        self.stats["duplicates"] += duplicates
        self.stats["quarantined"] += len(bad)
        self.stats["commits"] += 1
        with self._gen_lock:  # held while acking so a reconnect cannot slip in between check and ack
            gen = self._generation
            for item in batch:
                if item.qos == 0:
                    continue
                if item.generation != gen:
                    self.stats["stale_not_acked"] += 1
                    continue
                self._client.ack(item.mid, item.qos)
                self.stats["acked"] += 1
        if self.on_commit is not None:
            self.on_commit(stored, duplicates, len(bad))

    def _report(self, message: str, level: int = logging.ERROR) -> None:
        if message != self.last_error:
            log.log(level, "%s", message)
        self.last_error = message


def run_ingest(config: CentralConfig, workers: int = 1, http: bool | None = None,
               stop_event: threading.Event | None = None, stats_interval_s: float = 60.0) -> int:
    """`laps-central ingest`: `workers` MQTT workers and (if enabled) the batch endpoint, until
    SIGTERM/SIGINT or `stop_event`. Logs the counters every `stats_interval_s` (0: never). Returns 0."""
    from central.http_receiver import BatchServer

    stop = stop_event or threading.Event()
    store = Store(config.store.path, synchronous=config.store.synchronous)
    group = [IngestWorker(config.mqtt, store, worker=i) for i in range(workers)]
    server = None
    if config.http.enabled if http is None else http:
        server = BatchServer(config.http, store, config.media_dir)
        server.start()
        log.info("batch endpoint listening on %s", server.url)
    previous = {}
    if threading.current_thread() is threading.main_thread():
        def handler(signum, frame) -> None:
            log.info("received %s: finishing the current transaction and stopping", signal.Signals(signum).name)
            stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, handler)
    try:
        for w in group:
            w.start()
        log.info("ingest: %d worker(s) in group %r on %s:%d, store %s", workers, config.mqtt.group,
                 config.mqtt.host, config.mqtt.effective_port, config.store.path)
        # 0 (or less): no counter lines; still wake now and then, never spin on a zero wait.
        while not stop.wait(stats_interval_s if stats_interval_s > 0 else 3600.0):
            if stats_interval_s <= 0:
                continue
            counts = store.counters()
            log.info("ingest: received %d, stored %d, duplicates %d, quarantined %d; media %s",
                     counts["received"], counts["stored"], counts["duplicates"], counts["quarantined"],
                     store.link_counts())
    finally:
        for w in group:
            w.stop()
        if server is not None:
            server.stop()
        store.close()
        for sig, old in previous.items():
            signal.signal(sig, old)  # type: ignore[arg-type]
    return 0
