"""Several ingest hosts on ONE PostgreSQL store: `laps-central ingest` processes with data
directories of their own, one MQTT shared-subscription group (a REAL Mosquitto), one database
(a REAL PostgreSQL). Each segment is stored exactly once even when a host is killed mid-stream,
and a batch lands on whichever host the device reaches, the rows consistent across hosts."""

from __future__ import annotations

import threading

import pytest

from central.config import HttpConfig, MqttConfig, StoreConfig
from central.http_receiver import BatchServer
from central.ingest import IngestWorker
from central.store_protocol import open_store
from central_testkit import IngestProcess, make_segments, segment_payloads, wait_until, write_central_config
from edge.upload import BatchSpool, BatchUploader

pytestmark = [pytest.mark.broker, pytest.mark.postgres, pytest.mark.slow]

N_SEGMENTS = 10_000
DEVICES = ("dev-1", "dev-2", "dev-3", "dev-4", "dev-5")


@pytest.fixture
def shared_database(postgres_server):
    url = postgres_server.create_database()
    yield url
    postgres_server.drop_database(url)


def _host(tmp_path, name: str, broker_port: int, url: str) -> IngestProcess:
    """One ingest host: its own data directory, config and client id; the shared group and database."""
    cfg = write_central_config(tmp_path / f"{name}.toml", port=broker_port, data_dir=tmp_path / name,
                               store_url=url, client_id=name)
    return IngestProcess(cfg, tmp_path / f"{name}.log")


def test_three_hosts_store_each_of_10000_segments_once_with_one_killed_mid_stream(
        broker, publisher, shared_database, tmp_path):
    segs = make_segments(N_SEGMENTS, seed=11, steps=8)
    items = [item for i, device in enumerate(DEVICES)
             for item in segment_payloads(segs[i::len(DEVICES)], device=device)]
    hosts = [_host(tmp_path, f"host-{c}", broker.port, shared_database) for c in "abc"]
    observer = open_store(StoreConfig(url=shared_database, pool_size=1))  # the test's own view of the database
    try:
        assert wait_until(lambda: broker.log_text().count("$share/laps-central") >= 3, 60.0), \
            "not every host subscribed: " + " | ".join(h.log_text()[-300:] for h in hosts)
        done = threading.Event()

        def publish() -> None:
            publisher.publish_all(items, timeout=120.0)
            done.set()

        streaming = threading.Thread(target=publish, daemon=True)
        streaming.start()
        assert wait_until(lambda: observer.count() >= N_SEGMENTS // 5, 60.0, interval=0.05)
        hosts[1].kill()  # SIGKILL: whatever it received and had not committed was never acknowledged
        killed_at = observer.count()
        assert not done.is_set() and killed_at < N_SEGMENTS, "the stream ended before the kill"
        streaming.join(120.0)
        assert done.is_set(), "the publisher did not finish"
        # The killed host comes back (as systemd restarts it) and resumes its broker session: the
        # messages the broker held for it, and those it never acknowledged, arrive again.
        hosts[1].start()
        assert wait_until(lambda: observer.count() >= N_SEGMENTS, 90.0, interval=0.2), \
            f"stored {observer.count()} of {N_SEGMENTS}"
        ids = observer.segment_ids()
        counters = observer.counters()
        assert len(ids) == len(set(ids)) == N_SEGMENTS
        assert set(ids) == {s.segment_id for s in segs}
        assert counters["stored"] == N_SEGMENTS and counters["quarantined"] == 0
    finally:
        observer.close()
        codes = [h.stop() for h in hosts]
    assert codes == [0, 0, 0], [h.log_text()[-500:] for h in hosts]


def test_a_batch_lands_on_any_host_and_the_rows_agree_on_every_host(shared_database, tmp_path):
    media = tmp_path / "shared-media"  # [paths] media_dir: one folder every host mounts
    stores = [open_store(StoreConfig(url=shared_database, pool_size=2)) for _ in range(2)]
    servers = [BatchServer(HttpConfig(host="127.0.0.1", port=0), s, media) for s in stores]
    for server in servers:
        server.start()
    try:
        segs = make_segments(4, keyframes=2)
        spool = BatchSpool(tmp_path / "spool", device_id="dev-1", site="site-a")
        for s in segs[:2]:
            spool.add_segment(s.segment_id, {f: b"jpeg-%d" % f for f in s.keyframes}, None)
        first = spool.seal()
        for s in segs[2:]:
            spool.add_segment(s.segment_id, {f: b"jpeg-%d" % f for f in s.keyframes}, None)
        second = spool.seal()
        assert BatchUploader(servers[0].url, "dev-1").put(first) == 201
        assert BatchUploader(servers[1].url, "dev-1").put(second) == 201
        assert BatchUploader(servers[1].url, "dev-1").put(first) == 200  # recorded by the other host
        for store in stores:
            linked = store.media([s.segment_id for s in segs])
            assert all(len(linked[s.segment_id]) == 2 for s in segs)
            assert store.device_summary()[0].batches == 2
            assert all((media / f.path).is_file() for files in linked.values() for f in files)
    finally:
        for server in servers:
            server.stop()
        for store in stores:
            store.close()


def test_a_database_server_that_goes_away_holds_messages_unacknowledged_until_it_returns(
        broker, publisher, postgres_server, tmp_path):
    from tests.postgres_server import PostgresServer

    server = PostgresServer(postgres_server.bindir).start()  # a server of its own: this test stops it
    try:
        url = server.create_database()
        store = open_store(StoreConfig(url=url, pool_size=2, connect_timeout_s=2))
        cfg = MqttConfig(host="127.0.0.1", port=broker.port, keepalive=2, reconnect_min_s=0.1, reconnect_max_s=0.5)
        w = IngestWorker(cfg, store)
        w.start()
        assert w.wait_subscribed(10.0)
        try:
            segs = make_segments(60, seed=21)
            publisher.publish_all(segment_payloads(segs[:30]))
            assert wait_until(lambda: store.count() == 30, 15.0)
            server.stop(remove=False)
            publisher.publish_all(segment_payloads(segs[30:]))
            assert wait_until(lambda: w.stats["store_errors"] > 0, 30.0)
            assert "cannot commit" in w.last_error and "holding" in w.last_error
            assert w.stats["stored"] == 30 and w.stats["quarantined"] == 0  # nothing quarantined for the outage
            server.start()
            assert wait_until(lambda: w.stats["stored"] == 60, 60.0), w.last_error
            assert sorted(store.segment_ids()) == sorted(s.segment_id for s in segs)
        finally:
            w.stop()
            store.close()
    finally:
        server.stop()
