"""MQTT ingest against a real Mosquitto: exactly once, shared load, quarantine, restarts; the store-level
tests run on both backends (`store_config`: SQLite and a real PostgreSQL)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from central.config import MqttConfig
from central.ingest import IngestWorker, validate_segment
from central.store import Store
from central.store_protocol import CentralStore, open_store
from edge.messages import MessageError
from central_testkit import Publisher, make_segments, segment_payloads, wait_until, write_central_config

pytestmark = pytest.mark.broker


def _worker(port: int, store: CentralStore, worker: int = 0, group: str = "laps-central", client_id: str = "") -> IngestWorker:
    cfg = MqttConfig(host="127.0.0.1", port=port, group=group, keepalive=2, reconnect_min_s=0.1,
                     reconnect_max_s=0.5, client_id=client_id)
    w = IngestWorker(cfg, store, worker=worker)
    w.start()
    assert w.wait_subscribed(10.0), "ingest did not subscribe"
    return w


def test_each_segment_is_stored_once_and_duplicates_are_dropped(broker, publisher, tmp_path, store_config):
    store = open_store(store_config)
    w = _worker(broker.port, store)
    try:
        items = segment_payloads(make_segments(30))
        publisher.publish_all(items + items[:10])  # the first ten sent twice, as at-least-once allows
        assert wait_until(lambda: store.counters()["received"] >= 40, 10.0)
        assert store.count() == 30
        assert sorted(store.segment_ids()) == sorted(json.loads(p)["segment_id"] for _, p in items)
        assert store.counters()["duplicates"] == 10
    finally:
        w.stop()
        store.close()


def test_stored_segment_keeps_codes_times_and_device(broker, publisher, tmp_path, store_config):
    store = open_store(store_config)
    w = _worker(broker.port, store)
    try:
        seg = make_segments(1, codes=[[5, 1919, 0, 77]])[0]
        publisher.publish_all(segment_payloads([seg], site="plant-b", device="ws-9"))
        assert wait_until(lambda: store.count() == 1, 10.0)
        got = store.segments()[0]
        assert got.codes.tolist() == [5, 1919, 0, 77]
        assert (got.site, got.device_id, got.segment_id) == ("plant-b", "ws-9", seg.segment_id)
        assert got.start_utc == seg.start_utc and got.end_frame == seg.end_frame
    finally:
        w.stop()
        store.close()


def test_two_workers_in_one_group_split_the_messages_and_store_each_once(broker, publisher, tmp_path, store_config):
    store = open_store(store_config)
    a, b = _worker(broker.port, store, worker=0), _worker(broker.port, store, worker=1)
    try:
        items = segment_payloads(make_segments(200))
        publisher.publish_all(items)
        assert wait_until(lambda: store.counters()["received"] >= 200, 15.0)
        assert store.count() == 200
        assert a.stats["received"] > 0 and b.stats["received"] > 0
        assert a.stats["received"] + b.stats["received"] == 200
    finally:
        a.stop()
        b.stop()
        store.close()


def test_malformed_messages_go_to_quarantine_and_the_worker_keeps_going(broker, publisher, tmp_path, store_config):
    store = open_store(store_config)
    w = _worker(broker.port, store)
    try:
        good = segment_payloads(make_segments(2))
        topic = good[0][0]
        wrong_device = segment_payloads(make_segments(1, seed=5), device="someone-else")[0][1]
        bad = [(topic, b"{not json"), (topic, json.dumps({"schema": "laps.segment/9"}).encode()),
               (topic, wrong_device)]
        publisher.publish_all([good[0], *bad, good[1]])
        assert wait_until(lambda: store.counters()["received"] >= 5, 10.0)
        assert store.count() == 2
        reasons = [r for _, r, _ in store.quarantine()]
        assert len(reasons) == 3
        assert any("not JSON" in r for r in reasons)
        assert any("laps.segment/9" in r for r in reasons)
        assert any("someone-else" in r for r in reasons)
        assert store.counters()["quarantined"] == 3
    finally:
        w.stop()
        store.close()


def test_validation_names_the_field_that_is_wrong():
    seg = make_segments(1)[0]
    topic, payload = segment_payloads([seg])[0]
    msg = json.loads(payload)
    msg["codes"] = [1, -2]
    with pytest.raises(MessageError, match="codes"):
        validate_segment(topic, json.dumps(msg).encode())
    with pytest.raises(MessageError, match="kind"):
        validate_segment(topic.replace("/segments", "/nonsense"), payload)


def test_a_broker_restart_loses_nothing(broker, publisher, tmp_path, store_config):
    store = open_store(store_config)
    w = _worker(broker.port, store)
    try:
        segs = make_segments(60)
        publisher.publish_all(segment_payloads(segs[:30]))
        broker.restart()
        assert wait_until(lambda: w.connected, 15.0)
        pub2 = Publisher(broker.port)
        try:
            pub2.publish_all(segment_payloads(segs[30:]))
        finally:
            pub2.close()
        assert wait_until(lambda: store.count() == 60, 15.0)
        assert w.stats["connects"] >= 2
    finally:
        w.stop()
        store.close()


def test_messages_published_while_the_ingest_is_away_arrive_when_it_returns(broker, publisher, tmp_path, store_config):
    store = open_store(store_config)
    w = _worker(broker.port, store, client_id="ingest-persistent")
    w.stop()  # persistent session: the broker keeps the subscription and queues for it
    try:
        publisher.publish_all(segment_payloads(make_segments(25)))
        w2 = _worker(broker.port, store, client_id="ingest-persistent")
        try:
            assert wait_until(lambda: store.count() == 25, 10.0)
        finally:
            w2.stop()
    finally:
        store.close()


def test_a_killed_ingest_process_loses_nothing_it_had_not_committed(broker, publisher, tmp_path):
    cfg = write_central_config(tmp_path / "central.toml", port=broker.port, data_dir=tmp_path / "data",
                               extra="enabled = false")
    cmd = [sys.executable, "-m", "central.cli", "ingest", "--config", str(cfg), "--stats-interval", "0.5"]
    log = open(tmp_path / "ingest.log", "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=log)
    items = segment_payloads(make_segments(400))
    try:
        assert wait_until(lambda: "$share/laps-central" in broker.log_text(), 20.0), "ingest never subscribed"
        # The first half streams in while the process runs; it is killed once something is committed,
        # possibly with messages received but not yet committed. The second half is published while it
        # is dead, so the kill is mid-stream however fast the machine commits the first half.
        infos = [publisher.client.publish(t, p, qos=1) for t, p in items[:200]]
        assert wait_until(lambda: _stored(tmp_path) > 0, 10.0)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        infos += [publisher.client.publish(t, p, qos=1) for t, p in items[200:]]
        for info in infos:
            info.wait_for_publish(10)
        killed_at = _stored(tmp_path)
        proc = subprocess.Popen(cmd, stdout=log, stderr=log)
        assert wait_until(lambda: _stored(tmp_path) == 400, 30.0), f"stored {_stored(tmp_path)} of 400"
        assert killed_at <= 200  # nothing published after the kill was stored by the dead process
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(15)
        log.close()
    assert proc.returncode == 0


def _refuse_model_version(store: CentralStore, version: str) -> None:
    """Make the store refuse rows of `version` at commit, as a schema constraint or a full column would."""
    with store._transaction() as tx:
        if isinstance(store, Store):
            tx.execute(f"CREATE TRIGGER poison BEFORE INSERT ON segments WHEN NEW.model_version = '{version}' "
                       "BEGIN SELECT RAISE(ABORT, 'poisoned row'); END")
        else:
            tx.execute(f"CREATE FUNCTION poison() RETURNS trigger AS $$ BEGIN IF NEW.model_version = '{version}' THEN "
                       "RAISE EXCEPTION 'poisoned row'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql")
            tx.execute("CREATE TRIGGER poison BEFORE INSERT ON segments FOR EACH ROW EXECUTE FUNCTION poison()")


def _stored(tmp_path) -> int:
    path = tmp_path / "data" / "central.sqlite"
    if not path.exists():
        return 0
    with Store(path) as store:
        return store.count()


# -- poison messages, canonical ids, acknowledgements to the device ---------------------------------
def _variant(segment, change, site="site-a", device="dev-1") -> tuple[str, bytes]:
    """(topic, payload) of `segment` with `change(msg) -> msg | bytes` applied to its message."""
    topic, payload = segment_payloads([segment], site=site, device=device)[0]
    out = change(json.loads(payload))
    return topic, out if isinstance(out, bytes) else json.dumps(out).encode()


def _set(path: str, value):
    def change(msg: dict) -> dict:
        *outer, last = path.split(".")
        target = msg
        for key in outer:
            target = target[key]
        target[last] = value
        return msg
    return change


def test_the_malformed_message_matrix_is_quarantined_with_reasons_and_valid_ones_still_stored(
        broker, publisher, subscriber_factory, tmp_path, store_config):
    from central.store import QUARANTINE_PAYLOAD_BYTES
    from edge.messages import MAX_CODES, MAX_SEGMENT_PAYLOAD_BYTES

    acks = subscriber_factory(broker.port, topic="laps/v1/+/+/acks")
    store = open_store(store_config)
    w = _worker(broker.port, store)
    segs = make_segments(14, seed=3)
    huge = "x" * (MAX_SEGMENT_PAYLOAD_BYTES + 100)
    cases = [  # (what is wrong, its message, a piece of the quarantine reason)
        ("impossible date", _variant(segs[0], _set("start.utc", "2026-13-45T99:99:99Z")), "is not a valid time"),
        ("NaN energy", _variant(segs[1], lambda m: json.dumps(m).replace('"mean": 1.0', '"mean": NaN').encode()),
         "NaN"),
        ("infinite fps", _variant(segs[2], lambda m: json.dumps(m).replace('"fps": 10.0', '"fps": Infinity').encode()),
         "Infinity"),
        ("oversize payload", _variant(segs[3], _set("pad", huge)), "exceeds the cap"),
        ("oversize model_version", _variant(segs[4], _set("model_version", "m" * 5000)), "model_version has 5000"),
        ("too many codes", _variant(segs[5], _set("codes", [1] * (MAX_CODES + 1))), f"at most {MAX_CODES}"),
        ("code beyond uint32", _variant(segs[6], _set("codes", [2**32])), "codes must be"),
        ("seq beyond int64", _variant(segs[7], _set("seq", 2**64)), "field seq"),
        ("not JSON", (segment_payloads([segs[8]])[0][0], b"{not json"), "not JSON"),
        ("wrong schema", _variant(segs[9], _set("schema", "laps.segment/9")), "laps.segment/9"),
        ("device other than its topic", _variant(segs[10], _set("device_id", "someone-else")), "someone-else"),
    ]
    valid = segment_payloads(segs[11:])
    try:
        publisher.publish_all([c[1] for c in cases] + valid)
        assert wait_until(lambda: store.counters()["received"] >= len(cases) + len(valid), 15.0)
        assert sorted(store.segment_ids()) == sorted(s.segment_id for s in segs[11:])
        rows = store.quarantine_rows(limit=50)
        assert len(rows) == len(cases) == store.counters()["quarantined"]
        for (what, (topic, payload), reason), (q_topic, q_reason, q_prefix, q_size) in zip(cases, reversed(rows)):
            assert reason in q_reason, (what, q_reason)
            assert len(q_reason) < 400, what
            assert q_size == len(payload) and q_prefix == payload[:QUARANTINE_PAYLOAD_BYTES], what
        # the device hears about every quarantined segment whose id can be read, and every stored one
        told = set()
        assert wait_until(lambda: len(told.update(
            q["segment_id"] for m in acks.payloads("acks") for q in m["quarantined"]) or told) >= 10, 10.0)
        stored_acked = {i for m in acks.payloads("acks") for i in m["segment_ids"]}
        assert stored_acked == {s.segment_id for s in segs[11:]}
        assert w.stats["device_acks"] >= 1
    finally:
        w.stop()
        store.close()


def test_a_message_that_fails_at_commit_is_quarantined_acknowledged_and_never_redelivered(
        broker, publisher, subscriber_factory, tmp_path, store_config):
    acks = subscriber_factory(broker.port, topic="laps/v1/+/+/acks")
    store = open_store(store_config)
    _refuse_model_version(store, "poison")
    w = _worker(broker.port, store, client_id="ingest-poison")
    segs = make_segments(4, seed=9)
    poison = _variant(segs[1], _set("model_version", "poison"))
    items = segment_payloads(segs)
    try:
        publisher.publish_all([items[0], poison, items[2]])
        assert wait_until(lambda: store.counters()["received"] >= 3, 10.0)
        assert sorted(store.segment_ids()) == sorted([segs[0].segment_id, segs[2].segment_id])
        [(_, reason, _)] = store.quarantine()
        assert "refused it at commit" in reason and "poisoned row" in reason
        assert w.stats["poison"] == 1
        assert wait_until(lambda: any(q["segment_id"] == segs[1].segment_id
                                      for m in acks.payloads("acks") for q in m["quarantined"]), 5.0)
    finally:
        w.stop()
    received = store.counters()["received"]
    w2 = _worker(broker.port, store, client_id="ingest-poison")  # same session: nothing left unacknowledged
    try:
        publisher.publish_all([items[3]])
        assert wait_until(lambda: store.count() == 3, 10.0)
        assert store.counters()["received"] == received + 1
    finally:
        w2.stop()
        store.close()


def test_one_segment_spelled_three_ways_is_stored_once(broker, publisher, tmp_path, store_config):
    store = open_store(store_config)
    w = _worker(broker.port, store)
    seg = make_segments(1)[0]
    try:
        publisher.publish_all([segment_payloads([seg])[0], _variant(seg, _set("segment_id", seg.segment_id.upper())),
                               _variant(seg, _set("segment_id", "{" + seg.segment_id + "}"))])
        assert wait_until(lambda: store.counters()["received"] >= 3, 10.0)
        assert store.segment_ids() == [seg.segment_id]
        assert store.counters()["duplicates"] == 2 and store.counters()["quarantined"] == 0
    finally:
        w.stop()
        store.close()


def test_with_a_registry_only_registered_devices_on_their_own_site_are_stored(broker, publisher, tmp_path, store_config):
    from central.devices import DeviceRegistry, RegistryView

    registry = DeviceRegistry(tmp_path / "devices")
    registry.add("dev-1", site="site-a", hasher="builtin")
    store = open_store(store_config)
    cfg = MqttConfig(host="127.0.0.1", port=broker.port, keepalive=2, reconnect_min_s=0.1, reconnect_max_s=0.5)
    w = IngestWorker(cfg, store, registry=RegistryView(registry.registry_path))
    w.start()
    assert w.wait_subscribed(10.0)
    segs = make_segments(3, seed=4)
    try:
        publisher.publish_all(segment_payloads(segs[:1]) + segment_payloads(segs[1:2], site="site-b")
                              + segment_payloads(segs[2:], device="dev-9"))
        assert wait_until(lambda: store.counters()["received"] >= 3, 10.0)
        assert store.segment_ids() == [segs[0].segment_id]
        reasons = sorted(r for _, r, _ in store.quarantine())
        assert "registered at site 'site-a', not 'site-b'" in reasons[0]
        assert "'dev-9' is not registered" in reasons[1]
    finally:
        w.stop()
        store.close()
