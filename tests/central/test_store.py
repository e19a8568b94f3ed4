"""The central store, ONE suite run against both backends (the `store_config`/`store` fixtures:
a SQLite file and a REAL PostgreSQL database): selections, chunked reading, de-duplication,
quarantine, batches and media links, clustering runs, device states, schema migrations, and the
one-line errors a user meets when the store cannot be opened."""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
from datetime import datetime, timezone

import pytest

import central.store_sql as store_sql
from central.config import StoreConfig
from central.ingest import validate_segment
from central.store import MediaFile, Selection, Store, iso_to_ms
from central.store_protocol import CentralStore, open_store
from central.store_sql import StoreSchemaError, StoreUnavailableError
from central_testkit import free_port, make_segments, segment_payloads
from edge.errors import ConfigError
from edge.messages import StateMessage


def _fill(store: CentralStore) -> list:
    a = make_segments(10, seed=1, origin=datetime(2026, 1, 5, 8, 0, tzinfo=timezone.utc))
    b = make_segments(10, seed=2, origin=datetime(2026, 1, 6, 8, 0, tzinfo=timezone.utc))
    for segs, device in ((a, "dev-1"), (b, "dev-2")):
        store.ingest(_messages(segs, device=device), [])
    return a + b


def _messages(segments, device: str = "dev-1") -> list:
    return [(validate_segment(t, p), t) for t, p in segment_payloads(segments, device=device)]


def test_both_backends_implement_the_store_protocol(store):
    assert isinstance(store, CentralStore)
    assert store.schema_version() == store_sql.SCHEMA_VERSION


def test_a_time_range_and_a_device_select_segments(store):
    _fill(store)
    day2 = iso_to_ms("2026-01-06T00:00:00Z")
    assert store.count(Selection(since_ms=day2)) == 10
    assert store.count(Selection(until_ms=day2)) == 10
    assert store.count(Selection(device_id="dev-1", since_ms=day2)) == 0
    assert store.count(Selection(site="site-a")) == 20
    assert store.model_versions() == {store.segments()[0].model_version: 20}


def test_chunked_reading_returns_every_segment_once_in_time_order(store):
    segs = _fill(store)
    chunks = list(store.iter_segments(chunk=3))
    assert max(len(c) for c in chunks) == 3
    got = [s.segment_id for c in chunks for s in c]
    assert got == [s.segment_id for s in sorted(segs, key=lambda s: (s.start_utc, s.segment_id))]
    assert store.segment_ids() == got


def test_a_second_process_sees_committed_segments(store_config):
    with open_store(store_config) as writer, open_store(store_config) as reader:
        _fill(writer)
        assert reader.count() == 20


def test_a_stored_segment_reads_back_as_it_was_sent(store):
    seg = make_segments(1, codes=[[5, 1919, 0, 2**32 - 1]])[0]
    store.ingest(_messages([seg]), [])
    got = store.segment(seg.segment_id)
    assert got.codes.tolist() == [5, 1919, 0, 2**32 - 1]
    assert (got.start_utc, got.end_frame, got.fps, got.energy_max) == (seg.start_utc, seg.end_frame, 10.0, 2.0)
    assert store.segment("0190aaaa-0000-7000-8000-000000000000") is None


def test_reingesting_a_segment_keeps_the_first_copy(store):
    seg = make_segments(1)[0]
    topic, payload = segment_payloads([seg])[0]
    store.ingest([(validate_segment(topic, payload), topic)], [])
    other = dataclasses.replace(validate_segment(topic, payload), energy_max=99.0)
    assert store.ingest([(other, topic)], []) == (0, 1)
    assert store.segments()[0].energy_max == 2.0
    assert store.counters() == {"received": 2, "stored": 1, "duplicates": 1, "quarantined": 0}


def test_two_writers_storing_overlapping_batches_at_once_store_each_segment_once(store_config):
    segs = make_segments(600, seed=7)
    messages = _messages(segs)
    with open_store(store_config) as a, open_store(store_config) as b:
        results: list[tuple[int, int]] = []
        errors: list[BaseException] = []

        def write(store: CentralStore, part: list) -> None:
            try:
                for i in range(0, len(part), 50):
                    results.append(store.ingest(part[i:i + 50], []))
            except BaseException as err:  # noqa: BLE001 - reported by the assertion below
                errors.append(err)

        # Each writer gets two thirds; the middle third is written by both, in opposite orders.
        threads = [threading.Thread(target=write, args=(a, messages[:400])),
                   threading.Thread(target=write, args=(b, messages[200:][::-1]))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors
        assert sum(s for s, _ in results) == 600 and sum(d for _, d in results) == 200
        assert sorted(a.segment_ids()) == sorted(s.segment_id for s in segs)
        assert a.counters()["stored"] == 600 and a.counters()["duplicates"] == 200


def test_quarantine_keeps_the_reason_the_size_and_the_payload_prefix(store):
    topic = "laps/v1/site-a/dev-1/segments"
    payload = b"\x00" + b"x" * 10000
    store.ingest([], [(topic, "not JSON \x00 at byte 0", payload)])
    [(q_topic, reason, prefix, size)] = store.quarantine_rows()
    assert q_topic == topic and size == len(payload)
    assert prefix == payload[:store_sql.QUARANTINE_PAYLOAD_BYTES]
    assert reason == "not JSON \\x00 at byte 0"  # written out: PostgreSQL text cannot hold NUL
    assert store.counters()["quarantined"] == 1
    assert store.device_summary()[0].quarantined == 1


def test_a_segment_a_store_cannot_hold_is_refused_before_the_store(store):
    seg = make_segments(1)[0]
    topic, payload = segment_payloads([seg])[0]
    payload = payload.replace(b'"boot-1"', b'"boot\\u0000"')
    with pytest.raises(Exception, match="NUL"):
        validate_segment(topic, payload)


def test_a_batch_links_its_files_to_the_senders_segments_and_is_recorded_once(store):
    segs = make_segments(2)
    store.ingest(_messages(segs[:1]), [])
    files = [MediaFile(s.segment_id, f"dev-1/{s.segment_id}/keyframe_{f:08d}.jpg", "keyframe", f, "ab" * 32, 10)
             for s in segs for f in (3, 1)]
    files.append(MediaFile(segs[0].segment_id, f"dev-1/{segs[0].segment_id}/clip.avi", "clip", None, "cd" * 32, 99))
    assert store.add_batch("dev-1", "site-a", "ef" * 32, 1234, files) is True
    assert store.add_batch("dev-1", "site-a", "ef" * 32, 1234, files) is False
    assert store.has_batch("dev-1", "ef" * 32) and not store.has_batch("dev-2", "ef" * 32)
    media = store.media([s.segment_id for s in segs])
    assert [(f.kind, f.frame) for f in media[segs[0].segment_id]] == [("keyframe", 1), ("keyframe", 3), ("clip", None)]
    assert store.link_counts() == {"linked": 3, "waiting_for_segment": 2}
    assert store.media_sha256(segs[0].segment_id, files[-1].path) == "cd" * 32
    assert store.segment_devices([s.segment_id for s in segs]) == {segs[0].segment_id: "dev-1"}
    [summary] = store.device_summary()
    assert (summary.batches, summary.media_files, summary.segments) == (1, 5, 1)


def test_clustering_runs_are_listed_newest_first_with_their_members(store):
    segs = _fill(store)
    ids = [s.segment_id for s in segs]
    for run in ("run-a", "run-b"):
        n = store.save_cluster_run(run, model_version="m", method="laps", k=2, params={"k": 2},
                                   metrics={"silhouette": float("nan")},
                                   assignments=[(sid, i % 2, i / 10) for i, sid in enumerate(ids)])
        assert n == 20
    runs = store.cluster_runs()
    assert [r["run_id"] for r in runs] == ["run-b", "run-a"]
    assert runs[0]["metrics"] == {"silhouette": None} and runs[0]["n_segments"] == 20
    assert store.assignments("run-a", ids[:2]) == {ids[0]: (0, 0.0), ids[1]: (1, 0.1)}
    members = store.run_members("run-a")
    assert [m.cluster for m in members] == [0] * 10 + [1] * 10
    assert members[0].segment_id == ids[0] and members[0].duration_s == pytest.approx(1.2)
    store.save_cluster_run("run-a", model_version="m", method="laps", k=2, params={}, metrics={},
                           assignments=[(ids[0], 1, 0.5)])  # saved again: replaced, assignments too
    assert [(m.segment_id, m.cluster) for m in store.run_members("run-a")] == [(ids[0], 1)]
    assert len(store.cluster_runs()) == 2


def test_the_newest_device_state_is_kept_and_an_older_one_changes_nothing(store):
    def state(s: str, t: str) -> StateMessage:
        return StateMessage(site="site-a", device_id="dev-1", state=s, time=t, model_version="m", boot_id="b",
                            detail="")

    assert store.record_states([state("online", "2026-01-05T08:00:00Z")]) == 1
    assert store.record_states([state("offline", "2026-01-05T09:00:00Z")]) == 1
    assert store.record_states([state("online", "2026-01-05T08:30:00Z")]) == 0
    [summary] = store.device_summary()
    assert summary.state == "offline" and summary.online is False
    assert store.recent_segment_counts(0) == {}


def test_the_store_reports_its_size(store):
    _fill(store)
    assert store.size_bytes() > 0


# -- schema versions ------------------------------------------------------------------------------------
def test_a_migration_step_adds_a_column_to_an_existing_store_on_both_backends(store_config, monkeypatch):
    with open_store(store_config) as store:
        _fill(store)
    step = store_sql.Migration(store_sql.SCHEMA_VERSION + 1, "segments.roi for a test",
                               ("ALTER TABLE segments ADD COLUMN roi {text} NOT NULL DEFAULT ''",))
    monkeypatch.setattr(store_sql, "MIGRATIONS", store_sql.MIGRATIONS + (step,))
    monkeypatch.setattr(store_sql, "SCHEMA_VERSION", step.version)
    with open_store(store_config) as store, open_store(store_config) as again:
        assert store.schema_version() == again.schema_version() == step.version
        assert store._query("SELECT COUNT(*) FROM segments WHERE roi = ''")[0][0] == 20  # rows kept
        assert store.count() == 20


def test_a_store_written_by_a_newer_release_is_refused_in_one_line(store_config):
    with open_store(store_config) as store:
        with store._transaction() as tx:
            tx.execute("UPDATE meta SET value = '99' WHERE name = 'schema_version'")
    with pytest.raises(StoreSchemaError) as err:
        open_store(store_config)
    assert "schema version 99" in str(err.value) and "upgrade" in str(err.value) and "\n" not in str(err.value)


def test_a_version_2_sqlite_store_is_migrated_and_keeps_its_rows(tmp_path):
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema_version', '2');
        CREATE TABLE quarantine (id INTEGER PRIMARY KEY AUTOINCREMENT, received_ms INTEGER NOT NULL,
                                 topic TEXT NOT NULL, reason TEXT NOT NULL, payload BLOB NOT NULL);
        INSERT INTO quarantine (received_ms, topic, reason, payload) VALUES (1, 't', 'old reason', x'00');
        CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
        INSERT INTO counters VALUES ('quarantined', 1);
    """)
    db.close()
    with Store(path) as store:
        assert store.schema_version() == store_sql.SCHEMA_VERSION
        assert store.quarantine_rows() == [("t", "old reason", b"\x00", 0)]
        assert store.counters() == {"received": 0, "stored": 0, "duplicates": 0, "quarantined": 1}
        store.ingest(_messages(make_segments(2)), [])
        assert store.count() == 2


# -- opening a store: one-line errors --------------------------------------------------------------------
@pytest.mark.parametrize("url", ["mysql://db/laps", "central.sqlite", "sqlite://relative.sqlite", "postgresql://"])
def test_a_store_url_of_an_unknown_form_is_one_line_naming_the_forms(url):
    with pytest.raises(ConfigError) as err:
        StoreConfig(url=url)
    assert "store.url" in str(err.value) and "postgresql://" in str(err.value) and "\n" not in str(err.value)


def test_a_sqlite_url_or_an_absolute_path_selects_sqlite(tmp_path):
    for url in (f"sqlite://{tmp_path}/a.sqlite", str(tmp_path / "a.sqlite")):
        cfg = StoreConfig(url=url)
        assert cfg.backend == "sqlite" and cfg.sqlite_path == str(tmp_path / "a.sqlite")
        with open_store(cfg) as store:
            assert isinstance(store, Store) and store.count() == 0


def test_an_unreachable_postgresql_server_is_one_line_naming_the_fix():
    pytest.importorskip("psycopg", reason="psycopg is not installed: pip install -e '.[postgres]'")
    cfg = StoreConfig(url=f"postgresql://laps:secret@127.0.0.1:{free_port()}/laps", connect_timeout_s=2)
    with pytest.raises(StoreUnavailableError) as err:
        open_store(cfg)
    text = str(err.value)
    assert "cannot be reached" in text and "start the server or fix store.url" in text
    assert "secret" not in text and "laps:***@" in text and "\n" not in text


def test_a_missing_database_names_it(postgres_server):
    with pytest.raises(StoreUnavailableError, match='database "nowhere" does not exist'):
        open_store(StoreConfig(url=postgres_server.url("nowhere")))


def test_a_postgresql_url_without_psycopg_says_what_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if it were not installed
    with pytest.raises(ConfigError, match=r"pip install 'laps-edge\[postgres\]'"):
        open_store(StoreConfig(url="postgresql://laps@127.0.0.1:5432/laps"))


def test_the_cli_reports_an_unreachable_store_in_one_line(tmp_path, capsys):
    pytest.importorskip("psycopg", reason="psycopg is not installed: pip install -e '.[postgres]'")
    from central.cli import main

    cfg = tmp_path / "central.toml"
    cfg.write_text(f'[store]\nurl = "postgresql://laps@127.0.0.1:{free_port()}/laps"\nconnect_timeout_s = 2\n')
    assert main(["status", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: PostgreSQL store") and "cannot be reached" in err and "\n" not in err


def test_synchronous_normal_turns_postgresql_synchronous_commit_off(postgres_server):
    url = postgres_server.create_database()
    try:
        for setting, expected in (("full", "on"), ("normal", "off")):
            with open_store(StoreConfig(url=url, synchronous=setting)) as store:
                assert store._query("SHOW synchronous_commit") == [(expected,)]
    finally:
        postgres_server.drop_database(url)


def test_a_store_from_before_primitive_labels_gains_the_columns_and_keeps_its_segments(tmp_path):
    from edge.segments import PrimitiveLabel

    old, labelled = make_segments(2)
    path = tmp_path / "c.sqlite"
    with Store(path) as store:
        store.ingest([(validate_segment(t, p), t) for t, p in segment_payloads([old])], [])
    db = sqlite3.connect(path)  # make it the schema-3 file an older release wrote
    for column in ("primitive_library", "primitive_cluster", "primitive_distance", "motion"):
        db.execute(f"ALTER TABLE segments DROP COLUMN {column}")
    db.execute("UPDATE meta SET value = '3' WHERE name = 'schema_version'")
    db.commit()
    db.close()
    labelled.primitive = PrimitiveLabel("run-1", 2, 0.25)
    with Store(path) as store:
        store.ingest([(validate_segment(t, p), t) for t, p in segment_payloads([labelled], device="dev-2")], [])
        got = {s.segment_id: s.primitive for s in store.segments()}
    assert got == {old.segment_id: None, labelled.segment_id: PrimitiveLabel("run-1", 2, 0.25)}
