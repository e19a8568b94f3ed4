"""MQTT ingest: the fleet's segment messages into the central store, each exactly once.

An `IngestWorker` is one MQTT v5 client (paho-mqtt 2.x, `CallbackAPIVersion.VERSION2`) in a
shared-subscription group: it subscribes to `$share/<group>/laps/v1/+/+/segments`, so the broker
hands every message to ONE worker of the group and several workers (processes or machines)
split the load. Per message:

1. validate: the topic is `laps/v1/<site>/<device>/segments`, the device is registered for
   that site (once `central.devices` lists any device), the payload is a valid
   `laps.segment/2` (or /1) message within the caps (`edge.messages.SegmentMessage.from_json`,
   the same code the device builds with; the device's primitive label, when it sends one, is
   stored with the segment) and names the same site and device as its topic, and the
   store's row can be built from it (times, integer ranges). The segment id is made canonical
   (lower-case, no braces) before anything else uses it. A message that fails goes to the
   `quarantine` table with the reason; the worker keeps going.
2. store: valid messages are inserted by `segment_id` (the at-least-once duplicates a device or
   the broker re-sends are dropped and counted), several per store transaction (SQLite WAL or
   PostgreSQL, durable per commit by default). If a transaction fails, its messages are
   committed one by one: one that still fails while the others commit is poison and is
   quarantined with the store's reason; only when nothing can be committed (disk full, I/O
   error, database server gone: `StoreUnavailableError`) is the batch held unacknowledged and
   retried with back-off.
3. acknowledge: the client runs with `manual_ack=True`; PUBACK goes out (`client.ack(mid, qos)`)
   only after the transaction holding the message has committed. A worker killed between
   receipt and commit never acknowledged, so the broker re-delivers to the group.
4. tell the device: a `laps.ack/1` (QoS 1) on `laps/v1/<site>/<device>/acks` names the segments
   now committed (stored or duplicate) and those quarantined for good, so the device deletes
   them from its outbox. The device re-sends what is not acknowledged after its ack timeout,
   which is what recovers a message Mosquitto accepted and then dropped: it does not restore
   `$share/...` subscriptions after a restart, so until the ingest has re-subscribed, messages
   for the group go nowhere.

Device states: worker 0 of each process also subscribes (not shared) to every device's retained
`laps.state/1` (`laps/v1/+/+/state`: online, source_lost, stopped, or offline from the last
will) and keeps the newest per device in the store, for `laps-central status`.

Broker restarts: the session is persistent (`clean_start=False`, a session expiry, a stable
client id), paho reconnects with back-off and the subscription is renewed on every connect.
Packet ids are per connection, so a message received on an earlier connection is never
acknowledged on a later one (the broker re-sends it; de-duplication drops the copy).
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import re
import signal
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from central.config import CentralConfig, MqttConfig
from central.devices import REGISTRY_FILE, RegistrySnapshot, RegistryView
from central.store import segment_row
from central.store_protocol import CentralStore, open_store
from central.store_sql import StoreUnavailableError
from edge.broker import new_client
from edge.messages import (MAX_ACK_IDS, AckMessage, MessageError, QuarantinedSegment, SegmentMessage, StateMessage,
                           Topics, canonical_segment_id, parse_topic)

log = logging.getLogger(__name__)

#: where a segment id sits in a payload that may not parse (for acknowledging a quarantined one)
_RAW_ID = re.compile(rb'"segment_id"\s*:\s*"([^"\\]{1,128})"')


@dataclass
class _Received:
    generation: int  # connection generation the message arrived on (packet ids are per connection)
    mid: int
    qos: int
    topic: str
    payload: bytes


def validate_segment(topic: str, payload: bytes, registry: RegistrySnapshot | None = None) -> SegmentMessage:
    """The validated segment message (`laps.segment/2` or /1) of one MQTT message, its segment
    id canonical, or `MessageError` naming what is wrong (then the message belongs in quarantine).
    registry: when it lists devices, the topic's device must be registered for the topic's site."""
    site, device, kind = parse_topic(topic)
    if kind != "segments":
        raise MessageError(f"topic {topic!r} is a {kind!r} topic, not segments")
    refusal = registry.check_origin(site, device) if registry is not None else ""
    if refusal:
        raise MessageError(refusal)
    msg = SegmentMessage.from_json(payload)
    if msg.site != site or msg.device_id != device:
        raise MessageError(
            f"message names site {msg.site!r} device {msg.device_id!r} but was published on {topic!r}"
        )
    msg = dataclasses.replace(msg, segment_id=canonical_segment_id(msg.segment_id))
    try:
        segment_row(msg, topic, 0)  # everything the store derives, derived now: not at commit
    except (ValueError, OverflowError, TypeError) as err:
        raise MessageError(f"the store cannot hold this message ({type(err).__name__}: {err})") from None
    return msg


class _StoreDown(Exception):
    """Nothing can be committed right now (disk full, I/O error): hold and retry."""


class IngestWorker:
    """One member of the ingest group: subscribes, validates, stores, acknowledges after commit.

    cfg: the [mqtt] section. store: where to write (may be shared by several workers of one
    process). worker: index used in the default client id. on_commit(stored, duplicates,
    quarantined): called after each committed transaction (tests and benchmarks use it).
    registry: the device registry central enforces (None: any device on its own topic).
    track_state: also subscribe (not shared) to every device's retained `laps.state/1` and keep
    the newest per device in the store (`laps-central status`); one worker per process does.
    """

    def __init__(self, cfg: MqttConfig, store: CentralStore, worker: int = 0,
                 on_commit: Callable[[int, int, int], None] | None = None,
                 registry: RegistryView | None = None, track_state: bool = False) -> None:
        self.cfg = cfg
        self.store = store
        self.registry = registry
        self.track_state = track_state
        self._state_mid = -1
        self.client_id = cfg.client_id_for(worker)
        self.on_commit = on_commit
        self._queue: queue.Queue[_Received] = queue.Queue()
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._gen_lock = threading.Lock()
        self._generation = 0
        self._writer: threading.Thread | None = None
        self.stats = {"received": 0, "stored": 0, "duplicates": 0, "quarantined": 0, "acked": 0,
                      "commits": 0, "stale_not_acked": 0, "connects": 0, "store_errors": 0,
                      "poison": 0, "device_acks": 0, "states": 0}
        self.last_error = ""
        # Lag (Prometheus): seconds from a segment's end (device clock) to its commit here.
        self.lag_count = 0
        self.lag_sum_s = 0.0
        self.lag_last_max_s: float | None = None  # the largest in the last commit with segments

        client = new_client(cfg, self.client_id, manual_ack=True)
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
        if self.track_state:
            self._state_mid = client.subscribe(state_topic(self.cfg.topic), qos=1)[1]

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        bad = [rc for rc in reason_codes if rc.is_failure]
        if mid == self._state_mid:
            if bad:  # status loses online/offline; the segments still flow
                self._report(f"broker refused the state subscription {state_topic(self.cfg.topic)} ({bad[0]}); "
                             "`laps-central status` cannot tell online from offline until the ACL allows it",
                             logging.WARNING)
            return
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
        states = [item for item in batch if item.topic.endswith("/state")]
        if states:
            self._record_states(states)
            batch = [item for item in batch if not item.topic.endswith("/state")]
            if not batch:
                return
        registry = self.registry.current() if self.registry is not None else None
        good: list[tuple[SegmentMessage, _Received]] = []
        bad: list[tuple[str, _Received]] = []
        for item in batch:
            try:
                good.append((validate_segment(item.topic, item.payload, registry), item))
            except MessageError as err:
                bad.append((str(err), item))
            except Exception as err:  # noqa: BLE001 - a malformed message must never stop the worker
                bad.append((f"unexpected error while validating: {type(err).__name__}: {err}", item))
        for reason, item in bad:
            log.warning("quarantined a message on %s: %s", item.topic[:200], reason)
        delay = 0.1
        while True:
            try:
                stored, duplicates, bad = self._commit(good, bad)
                break
            except _StoreDown as err:  # disk full, I/O error: retry, never ack uncommitted data
                self.stats["store_errors"] += 1
                self._report(f"store {self.store.location} cannot commit ({err}); holding {len(batch)} message(s) "
                             "unacknowledged and retrying")
                if self._stop.wait(delay):
                    return  # stopping: the broker re-delivers what we never acknowledged
                delay = min(delay * 2, 5.0)
        self.stats["received"] += len(batch)
        self.stats["stored"] += stored
        self.stats["duplicates"] += duplicates
        self.stats["quarantined"] += len(bad)
        self.stats["commits"] += 1
        self._record_lag(good)
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
        self._tell_devices(good, bad)
        if self.on_commit is not None:
            self.on_commit(stored, duplicates, len(bad))

    def _record_lag(self, good: list[tuple[SegmentMessage, "_Received"]]) -> None:
        """Lag of the segments just committed (a clock skew between device and central shows
        up here too: a negative lag counts as 0)."""
        if not good:
            return
        now = time.time()
        lags = []
        for msg, _ in good:
            try:
                end = datetime.fromisoformat(msg.end_utc.replace("Z", "+00:00")).timestamp()
            except (KeyError, TypeError, ValueError):
                continue
            lags.append(max(now - end, 0.0))
        if lags:
            self.lag_count += len(lags)
            self.lag_sum_s += sum(lags)
            self.lag_last_max_s = max(lags)

    def queued(self) -> int:
        """Messages received and not yet committed."""
        return self._queue.qsize()

    def _commit(self, good: list[tuple[SegmentMessage, _Received]], bad: list[tuple[str, _Received]]
                ) -> tuple[int, int, list[tuple[str, _Received]]]:
        """Commit `good` and quarantine `bad` in one transaction; if that fails, isolate the
        messages that fail on their own and quarantine them with the store's reason.
        Returns (stored, duplicates, every quarantined (reason, item)); raises _StoreDown."""
        try:
            stored, duplicates = self.store.ingest([(m, i.topic) for m, i in good],
                                                   [(i.topic, r, i.payload) for r, i in bad])
            return stored, duplicates, bad
        except StoreUnavailableError as err:  # the store, not a message: retrying one by one would only wait longer
            raise _StoreDown(err) from None
        except Exception as err:  # noqa: BLE001 - find out whether one message or the store is at fault
            if not good:
                raise _StoreDown(err) from None
        stored = duplicates = 0
        failed: list[tuple[Exception, _Received]] = []
        for msg, item in good:
            try:
                s, d = self.store.ingest([(msg, item.topic)], [])
                stored, duplicates = stored + s, duplicates + d
            except StoreUnavailableError as err:
                # The store went away meanwhile: hold the whole batch (what committed already is a
                # duplicate on the retry), never quarantine a message for the store's failure.
                raise _StoreDown(err) from None
            except Exception as err:  # noqa: BLE001
                failed.append((err, item))
        poison = [(f"the store refused it at commit ({type(e).__name__}: {e})", item) for e, item in failed]
        for reason, item in poison:
            log.error("poison message on %s quarantined: %s", item.topic[:200], reason)
        self.stats["poison"] += len(poison)
        everything_bad = bad + poison
        if everything_bad:
            try:
                self.store.ingest([], [(i.topic, r, i.payload) for r, i in everything_bad])
            except Exception as err:  # noqa: BLE001
                raise _StoreDown(err) from None
        return stored, duplicates, everything_bad

    def _record_states(self, items: list[_Received]) -> None:
        """Keep the devices' newest states; a malformed one is logged and dropped (states are
        retained: the device's next one replaces it), never quarantined with the segments."""
        registry = self.registry.current() if self.registry is not None else None
        good = []
        for item in items:
            try:
                site, device, _ = parse_topic(item.topic)
                if registry is not None and registry.check_origin(site, device):
                    raise MessageError(registry.check_origin(site, device))
                msg = StateMessage.from_json(item.payload)
                if msg.site != site or msg.device_id != device:
                    raise MessageError(f"state names {msg.site}/{msg.device_id} but came on {item.topic}")
                good.append(msg)
            except (MessageError, ValueError, TypeError, KeyError) as err:
                log.warning("ignored a state message on %s: %s", item.topic[:200], err)
        try:
            self.stats["states"] += self.store.record_states(good)
        except Exception as err:  # noqa: BLE001 - a status table must never stop the segments
            log.warning("could not record %d device state(s): %s", len(good), err)
        with self._gen_lock:
            gen = self._generation
            for item in items:
                if item.qos and item.generation == gen:
                    self._client.ack(item.mid, item.qos)

    def _tell_devices(self, good: list[tuple[SegmentMessage, _Received]], bad: list[tuple[str, _Received]]) -> None:
        """Publish a `laps.ack/1` per device: what is now committed, what is quarantined for good."""
        refused = {id(item) for _, item in bad}
        committed: dict[tuple[str, str], list[str]] = defaultdict(list)
        quarantined: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
        for msg, item in good:
            if id(item) not in refused:
                committed[(msg.site, msg.device_id)].append(msg.segment_id)
        for reason, item in bad:
            origin = _segment_origin(item)
            if origin is not None:
                quarantined[origin[:2]].append((origin[2], reason))
        for site, device in set(committed) | set(quarantined):
            ids, refusals = committed.get((site, device), []), quarantined.get((site, device), [])
            for start in range(0, max(len(ids), len(refusals)), MAX_ACK_IDS // 2):
                msg = AckMessage(site=site, device_id=device, segment_ids=ids[start:start + MAX_ACK_IDS // 2],
                                 quarantined=[QuarantinedSegment(sid, reason)
                                              for sid, reason in refusals[start:start + MAX_ACK_IDS // 2]])
                self._client.publish(Topics(site, device).acks, msg.to_json(), qos=1)
                self.stats["device_acks"] += 1

    def _report(self, message: str, level: int = logging.ERROR) -> None:
        if message != self.last_error:
            log.log(level, "%s", message)
        self.last_error = message


def _segment_origin(item: _Received) -> tuple[str, str, str] | None:
    """(site, device, canonical segment id) of a message that may be malformed, when its topic is
    a segment topic and a segment id can be found in it; else None (nobody to tell)."""
    try:
        site, device, kind = parse_topic(item.topic)
        found = _RAW_ID.search(item.payload[:4096])
        if kind != "segments" or found is None:
            return None
        return site, device, canonical_segment_id(found.group(1).decode("ascii"))
    except (MessageError, UnicodeDecodeError):
        return None


def state_topic(segment_topic: str) -> str:
    """The state-topic filter beside a segment-topic filter: laps/v1/+/+/segments -> .../state."""
    return segment_topic[: -len("segments")] + "state"


def stats_line(counters: dict[str, int], links: dict[str, int]) -> str:
    """The ingest's periodic log line, for a person: what arrived and what became of it.

    counters: `CentralStore.counters()` (totals since the store was created); links: `CentralStore.link_counts()`."""
    return (f"ingest totals: {counters['stored']:,} segments stored of {counters['received']:,} messages received "
            f"({counters['duplicates']:,} duplicates dropped, {counters['quarantined']:,} quarantined); "
            f"{links['linked']:,} keyframe/clip files linked to their segments, "
            f"{links['waiting_for_segment']:,} waiting for their segment")


def run_ingest(config: CentralConfig, workers: int = 1, http: bool | None = None,
               stop_event: threading.Event | None = None, stats_interval_s: float = 60.0) -> int:
    """`laps-central ingest`: `workers` MQTT workers and (if enabled) the batch endpoint, until
    SIGTERM/SIGINT or `stop_event`. Logs the counters every `stats_interval_s` (0: never). Returns 0."""
    from central.http_receiver import BatchServer

    from central.registry import register_shipped_model

    stop = stop_event or threading.Event()
    # The devices run the shipped model until a bundle replaces it: make its codes readable.
    shipped = register_shipped_model(config.paths.models_dir)
    if shipped:
        log.info("model registry %s holds the shipped model %s", config.paths.models_dir, shipped)
    store = open_store(config.store)
    registry = RegistryView(config.devices_dir / REGISTRY_FILE)
    if registry.current().enforced:
        log.info("device registry %s: only its %d registered device(s) are accepted",
                 registry.path, len(registry.current().sites))
    group = [IngestWorker(config.mqtt, store, worker=i, registry=registry, track_state=i == 0)
             for i in range(workers)]
    server = None
    if config.http.enabled if http is None else http:
        server = BatchServer(config.http, store, config.media_dir, registry=registry)
        server.start()
        log.info("batch endpoint listening on %s", server.url)
    previous = {}
    if threading.current_thread() is threading.main_thread():
        def handler(signum, frame) -> None:
            log.info("received %s: finishing the current transaction and stopping", signal.Signals(signum).name)
            stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, handler)
    metrics = None
    try:
        from central.prometheus import serve_ingest_metrics

        metrics = serve_ingest_metrics(config.metrics.prometheus_host, config.metrics.prometheus_port, group, store,
                                       origin=config.origin)
        if metrics is not None:
            log.info("Prometheus metrics on %s", metrics.url)
        for w in group:
            w.start()
        log.info("ingest: %d worker(s) in group %r on %s:%d, store %s", workers, config.mqtt.group,
                 config.mqtt.host, config.mqtt.effective_port, config.store.location)
        # 0 (or less): no counter lines; still wake now and then, never spin on a zero wait.
        while not stop.wait(stats_interval_s if stats_interval_s > 0 else 3600.0):
            if stats_interval_s <= 0:
                continue
            log.info("%s", stats_line(store.counters(), store.link_counts()))
    finally:
        if metrics is not None:
            metrics.close()
        for w in group:
            w.stop()
        if server is not None:
            server.stop()
        store.close()
        for sig, old in previous.items():
            signal.signal(sig, old)  # type: ignore[arg-type]
    return 0
