"""The central store: selections, chunked reading, cluster runs."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

from central.ingest import validate_segment
from central.store import Selection, Store, iso_to_ms
from central_testkit import make_segments, segment_payloads


def _fill(store: Store) -> list:
    a = make_segments(10, seed=1, origin=datetime(2026, 1, 5, 8, 0, tzinfo=timezone.utc))
    b = make_segments(10, seed=2, origin=datetime(2026, 1, 6, 8, 0, tzinfo=timezone.utc))
    for segs, device in ((a, "dev-1"), (b, "dev-2")):
        store.ingest([(validate_segment(t, p), t) for t, p in segment_payloads(segs, device=device)], [])
    return a + b


def test_a_time_range_and_a_device_select_segments(tmp_path):
    with Store(tmp_path / "c.sqlite") as store:
        _fill(store)
        day2 = iso_to_ms("2026-01-06T00:00:00Z")
        assert store.count(Selection(since_ms=day2)) == 10
        assert store.count(Selection(until_ms=day2)) == 10
        assert store.count(Selection(device_id="dev-1", since_ms=day2)) == 0
        assert store.count(Selection(site="site-a")) == 20


def test_chunked_reading_returns_every_segment_once_in_time_order(tmp_path):
    with Store(tmp_path / "c.sqlite") as store:
        segs = _fill(store)
        chunks = list(store.iter_segments(chunk=3))
        assert max(len(c) for c in chunks) == 3
        got = [s.segment_id for c in chunks for s in c]
        assert got == [s.segment_id for s in sorted(segs, key=lambda s: (s.start_utc, s.segment_id))]


def test_a_second_process_sees_committed_segments(tmp_path):
    with Store(tmp_path / "c.sqlite") as writer, Store(tmp_path / "c.sqlite") as reader:
        _fill(writer)
        assert reader.count() == 20


def test_reingesting_a_segment_keeps_the_first_copy(tmp_path):
    with Store(tmp_path / "c.sqlite") as store:
        seg = make_segments(1)[0]
        topic, payload = segment_payloads([seg])[0]
        store.ingest([(validate_segment(topic, payload), topic)], [])
        other = dataclasses.replace(validate_segment(topic, payload), energy_max=99.0)
        assert store.ingest([(other, topic)], []) == (0, 1)
        assert store.segments()[0].energy_max == 2.0


def test_a_store_from_before_primitive_labels_gains_the_columns_and_keeps_its_segments(tmp_path):
    import sqlite3

    from edge.segments import PrimitiveLabel

    old, labelled = make_segments(2)
    path = tmp_path / "c.sqlite"
    with Store(path) as store:
        store.ingest([(validate_segment(t, p), t) for t, p in segment_payloads([old])], [])
    db = sqlite3.connect(path)  # make it the schema-3 file an older release wrote
    for column in ("primitive_library", "primitive_cluster", "primitive_distance"):
        db.execute(f"ALTER TABLE segments DROP COLUMN {column}")
    db.execute("UPDATE meta SET value = '3' WHERE name = 'schema_version'")
    db.commit()
    db.close()
    labelled.primitive = PrimitiveLabel("run-1", 2, 0.25)
    with Store(path) as store:
        store.ingest([(validate_segment(t, p), t) for t, p in segment_payloads([labelled], device="dev-2")], [])
        got = {s.segment_id: s.primitive for s in store.segments()}
    assert got == {old.segment_id: None, labelled.segment_id: PrimitiveLabel("run-1", 2, 0.25)}
