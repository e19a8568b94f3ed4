"""The SQLite outbox: durable, de-duplicating, capped with counted evictions."""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import sys

import pytest

from edge.outbox import Outbox, read_stats


@pytest.fixture
def outbox(tmp_path):
    ob = Outbox(tmp_path / "outbox.sqlite")
    yield ob
    ob.close()


def test_file_is_in_wal_mode_with_full_fsync(tmp_path):
    ob = Outbox(tmp_path / "o.sqlite")
    assert ob._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert ob._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    ob.close()


def test_put_then_pending_returns_oldest_first(outbox):
    for i in range(3):
        outbox.put(f"k{i}", "t/segments", f"p{i}".encode())
    rows = outbox.pending(10)
    assert [r.key for r in rows] == ["k0", "k1", "k2"]
    assert rows[0].payload == b"p0" and rows[0].topic == "t/segments"


def test_same_key_is_stored_once(outbox):
    assert outbox.put("seg-1", "t", b"first") is True
    assert outbox.put("seg-1", "t", b"second") is False
    assert outbox.depth == 1 and outbox.pending(5)[0].payload == b"first"


def test_pending_skips_keys_already_in_flight(outbox):
    for i in range(4):
        outbox.put(f"k{i}", "t", b"x")
    assert [r.key for r in outbox.pending(2, exclude={"k0", "k1"})] == ["k2", "k3"]


def test_ack_deletes_only_the_acknowledged_rows(outbox):
    for i in range(3):
        outbox.put(f"k{i}", "t", b"x")
    assert outbox.ack(["k1", "unknown"]) == 1
    assert outbox.keys() == ["k0", "k2"]
    assert outbox.stats().acked_total == 1


def test_unacknowledged_rows_survive_a_reopen(tmp_path):
    ob = Outbox(tmp_path / "o.sqlite")
    ob.put("a", "t", b"1")
    ob.put("b", "t", b"2")
    ob.ack(["a"])
    ob.close()
    again = Outbox(tmp_path / "o.sqlite")
    assert again.keys() == ["b"] and again.stats().bytes == 1
    again.close()


def test_committed_put_survives_sigkill_of_the_writer(tmp_path):
    # A real process puts rows and is killed without closing: every put that returned is on disk.
    path = tmp_path / "o.sqlite"
    code = (
        "import os, signal, sys\n"
        "from edge.outbox import Outbox\n"
        f"ob = Outbox({str(path)!r})\n"
        "for i in range(20):\n"
        "    ob.put(f'k{i}', 't', b'x' * 100)\n"
        "    print(i, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == -9
    printed = [int(x) for x in proc.stdout.split()]
    assert printed == list(range(20))
    ob = Outbox(path)
    assert ob.keys() == [f"k{i}" for i in range(20)]
    ob.close()


def test_byte_cap_evicts_oldest_first_and_counts(tmp_path, caplog):
    ob = Outbox(tmp_path / "o.sqlite", max_bytes=4096)
    with caplog.at_level(logging.WARNING, logger="edge.outbox"):
        for i in range(10):
            ob.put(f"k{i}", "t", b"x" * 1000)
    assert ob.keys() == ["k6", "k7", "k8", "k9"]
    stats = ob.stats()
    assert stats.evicted_total == 6 and stats.evicted_bytes == 6000 and stats.bytes == 4000
    assert "evicted" in caplog.text and "k0" in caplog.text and "max_bytes=4096" in caplog.text
    ob.close()


def test_age_cap_evicts_expired_rows_and_counts(tmp_path, caplog):
    ob = Outbox(tmp_path / "o.sqlite", max_age_s=60)
    ob.put("old", "t", b"x", now=1000.0)
    ob.put("new", "t", b"x", now=1050.0)
    with caplog.at_level(logging.WARNING, logger="edge.outbox"):
        assert ob.evict_expired(now=1070.0) == 1
    assert ob.keys() == ["new"] and ob.stats().evicted_total == 1
    assert "max_age_s=60" in caplog.text
    ob.close()


def test_eviction_counters_survive_restart(tmp_path):
    ob = Outbox(tmp_path / "o.sqlite", max_bytes=4096)
    for i in range(6):
        ob.put(f"k{i}", "t", b"x" * 1000)
    ob.close()
    assert read_stats(tmp_path / "o.sqlite").evicted_total == 2
    again = Outbox(tmp_path / "o.sqlite", max_bytes=4096)
    assert again.stats().evicted_total == 2
    again.close()


def test_lowered_cap_applies_at_open(tmp_path):
    ob = Outbox(tmp_path / "o.sqlite", max_bytes=10_000)
    for i in range(8):
        ob.put(f"k{i}", "t", b"x" * 1000)
    ob.close()
    smaller = Outbox(tmp_path / "o.sqlite", max_bytes=4096)
    assert smaller.depth == 4 and smaller.stats().evicted_total == 4
    smaller.close()


def test_read_stats_does_not_need_write_access(tmp_path):
    ob = Outbox(tmp_path / "o.sqlite")
    ob.put("a", "t", b"12345")
    stats = read_stats(tmp_path / "o.sqlite")
    assert stats.depth == 1 and stats.bytes == 5
    ob.close()
    assert read_stats(tmp_path / "missing.sqlite") is None


def test_a_reader_does_not_block_a_writer(tmp_path):
    ob = Outbox(tmp_path / "o.sqlite")
    ob.put("a", "t", b"1")
    reader = sqlite3.connect(str(tmp_path / "o.sqlite"))
    reader.execute("BEGIN")
    reader.execute("SELECT * FROM outbox").fetchall()
    ob.put("b", "t", b"2")  # WAL: writers proceed while a read transaction is open
    reader.close()
    assert ob.depth == 2
    ob.close()


def test_an_end_to_end_row_stays_after_the_puback_until_central_confirms_it(outbox):
    outbox.put("seg-1", "t/segments", b"p", end_to_end=True)
    outbox.put("batch:1", "t/batches", b"b")
    assert [r.key for r in outbox.due(10, resend_before=0.0)] == ["seg-1", "batch:1"]
    assert outbox.mark_sent(["seg-1", "batch:1"], now=1000.0) == 1  # only end-to-end rows are marked
    outbox.ack(["batch:1"])
    assert outbox.depth == 1 and outbox.unconfirmed() == 1
    assert outbox.due(10, resend_before=999.0) == []  # within the ack timeout: not again
    again = outbox.due(10, resend_before=1001.0)  # the timeout passed without central's ack
    assert [(r.key, r.sent) for r in again] == [("seg-1", 1000.0)]
    assert outbox.confirm(["seg-1", "seg-unknown"]) == 1
    stats = outbox.stats()
    assert (stats.depth, stats.unconfirmed, stats.confirmed_total) == (0, 0, 1)


def test_the_window_holds_new_rows_while_too_many_wait_for_central(outbox):
    for i in range(5):
        outbox.put(f"s{i}", "t/segments", b"p", end_to_end=True)
    outbox.put("ota:1", "t/ota/status", b"o")
    outbox.mark_sent(["s0", "s1"], now=1000.0)
    assert [r.key for r in outbox.due(10, resend_before=0.0, window=3)] == ["s2", "ota:1"]
    assert [r.key for r in outbox.due(10, resend_before=0.0, window=2)] == ["ota:1"]
    # re-sends are never held back by the window: they are what frees it
    assert [r.key for r in outbox.due(10, resend_before=2000.0, window=2)] == ["s0", "s1", "ota:1"]


def test_an_outbox_file_of_the_previous_release_opens_and_keeps_its_rows(tmp_path):
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL UNIQUE, topic TEXT NOT NULL,
                             payload BLOB NOT NULL, size INTEGER NOT NULL, created REAL NOT NULL);
        CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
    """)
    db.execute("INSERT INTO outbox(key, topic, payload, size, created) VALUES ('old', 't', x'00', 1, 1e12)")
    db.commit()
    db.close()
    ob = Outbox(path)
    try:
        [row] = ob.due(5)
        assert (row.key, row.end_to_end, row.sent) == ("old", False, None)  # deleted on PUBACK, as before
        assert ob.ack(["old"]) == 1
    finally:
        ob.close()


def test_the_disk_floor_evicts_rows_waiting_for_central_oldest_first_and_frees_the_window(outbox):
    for i in range(4):
        outbox.put(f"s{i}", "t/segments", b"x" * 100, end_to_end=True)
    outbox.mark_sent(["s0", "s1"], now=1000.0)  # the broker took them; central has not confirmed
    assert outbox.due(10, resend_before=0.0, window=2) == []  # the window is full
    assert outbox.make_room(150, "disk below its floor") == 2  # the oldest go, sent or not
    assert outbox.keys() == ["s2", "s3"] and outbox.unconfirmed() == 0
    # central's late ack of an evicted row, and the PUBACK of one in flight when it went, change nothing
    assert outbox.confirm(["s0"]) == 0 and outbox.mark_sent(["s1"]) == 0
    assert [r.key for r in outbox.due(10, resend_before=0.0, window=2)] == ["s2", "s3"]
    stats = outbox.stats()
    assert (stats.depth, stats.evicted_total, stats.evicted_bytes, stats.confirmed_total) == (2, 2, 200, 0)
