"""MQTT ingest against a real Mosquitto: exactly once, shared load, quarantine, restarts."""

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
from edge.messages import MessageError
from central_testkit import Publisher, make_segments, segment_payloads, wait_until, write_central_config

pytestmark = pytest.mark.broker


def _worker(port: int, store: Store, worker: int = 0, group: str = "laps-central", client_id: str = "") -> IngestWorker:
    cfg = MqttConfig(host="127.0.0.1", port=port, group=group, keepalive=2, reconnect_min_s=0.1,
                     reconnect_max_s=0.5, client_id=client_id)
    w = IngestWorker(cfg, store, worker=worker)
    w.start()
    assert w.wait_subscribed(10.0), "ingest did not subscribe"
    return w


def test_each_segment_is_stored_once_and_duplicates_are_dropped(broker, publisher, tmp_path):
    store = Store(tmp_path / "c.sqlite")
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


def test_stored_segment_keeps_codes_times_and_device(broker, publisher, tmp_path):
    store = Store(tmp_path / "c.sqlite")
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


def test_two_workers_in_one_group_split_the_messages_and_store_each_once(broker, publisher, tmp_path):
    store = Store(tmp_path / "c.sqlite")
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


def test_malformed_messages_go_to_quarantine_and_the_worker_keeps_going(broker, publisher, tmp_path):
    store = Store(tmp_path / "c.sqlite")
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


def test_a_broker_restart_loses_nothing(broker, publisher, tmp_path):
    store = Store(tmp_path / "c.sqlite")
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


def test_messages_published_while_the_ingest_is_away_arrive_when_it_returns(broker, publisher, tmp_path):
    store = Store(tmp_path / "c.sqlite")
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


def _stored(tmp_path) -> int:
    path = tmp_path / "data" / "central.sqlite"
    if not path.exists():
        return 0
    with Store(path) as store:
        return store.count()
