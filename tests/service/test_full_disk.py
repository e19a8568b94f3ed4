"""A full disk does not stop the device: on a small tmpfs the test mounts itself (skipped with the
reason where mounting is not permitted), the real service process (outbox, upload spool, MQTT
link to a real Mosquitto) keeps running below its free-space floor, evicts the oldest media
first and then the oldest unsent segments, counts and reports it (log and `.../metrics`), and
starts again on a disk that is completely full. One test reaches the same code without a mount
(a floor set above the real free space), so it runs everywhere."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.tmpfs import fill, free_bytes, mounted_tmpfs

from .helpers import free_port, wait_until, write_config

KIB, MIB = 1024, 1024 * 1024


def publish(cfg: Path, n: int, keyframes: int, timeout: float = 240,
            interval_s: float = 0.005) -> subprocess.CompletedProcess:
    """The service without a pipeline (`python -m tests.service.publisher`), `n` segments, then a clean stop."""
    return subprocess.run([sys.executable, "-m", "tests.service.publisher", "--config", str(cfg), "--synthetic-segments",
                           str(n), "--interval-s", str(interval_s), "--keyframes", str(keyframes)],
                          capture_output=True, text=True, timeout=timeout)


def committed(proc: subprocess.CompletedProcess) -> list[str]:
    return [line.split()[1] for line in proc.stdout.splitlines() if line.startswith("committed ")]


def media_kept(spool: Path) -> set[str]:
    """Segment ids whose media are still in the upload spool (incoming or in a sealed batch)."""
    kept = {p.name for p in (spool / "incoming").iterdir() if not p.name.startswith(".")}
    for batch in (spool / "batches").glob("*.tar"):
        with tarfile.open(batch) as tar:
            kept |= {s["segment_id"] for s in json.load(tar.extractfile("manifest.json"))["segments"]}
    return kept


def queued_in_order(state: Path) -> list[str]:
    db = sqlite3.connect(str(state / "outbox.sqlite"))
    try:
        return [k for (k,) in db.execute("SELECT key FROM outbox ORDER BY id")]
    finally:
        db.close()


def outbox_counter(state: Path, name: str) -> int:
    db = sqlite3.connect(str(state / "outbox.sqlite"))
    try:
        return int(db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()[0])
    finally:
        db.close()


def test_a_floor_above_the_real_free_space_evicts_counts_and_reports_without_a_mount(tmp_path):
    # Runs where mounting is not permitted: the disk can never reach this floor, so every write
    # takes the eviction path (all media, then the oldest unsent segments) and must survive it.
    floor = min(free_bytes(tmp_path) + 1024 * MIB, 2**44)
    cfg = write_config(tmp_path / "edge.toml", port=1, state_dir=tmp_path / "state",
                       mqtt_extra="enabled = false", metrics_interval=0.1, extra=f"""
[upload]
endpoint = "http://127.0.0.1:{free_port()}"
interval_s = 3600.0
""")
    cfg.write_text(cfg.read_text().replace('state_dir = "', f'min_free_bytes = {floor}\nstate_dir = "', 1))
    proc = publish(cfg, 40, keyframes=4, timeout=120, interval_s=0.02)  # metrics go out meanwhile
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    ids = committed(proc)
    assert len(ids) == 40  # every segment was stored: room is made, nothing is dropped
    state = tmp_path / "state"
    counters = json.loads((state / "upload" / "counters.json").read_text())
    assert counters["evicted_segments"] == 40 and media_kept(state / "upload") == set()  # media first
    assert queued_in_order(state) == ids[-1:]  # then the oldest segments, each new row reusing their room
    assert outbox_counter(state, "evicted_total") == 39
    assert "below its floor" in proc.stderr and "oldest unsent message" in proc.stderr
    assert "(at its floor: evicting)" in proc.stderr  # the periodic metrics line reports it
    assert "could not be stored" not in proc.stderr


@pytest.mark.broker
@pytest.mark.slow
def test_below_the_floor_the_oldest_media_go_first_and_every_segment_is_still_delivered(
        broker, subscriber_factory, tmp_path):
    sub = subscriber_factory(broker.port)
    with mounted_tmpfs(tmp_path / "disk", 6 * MIB) as disk:
        fill(disk, leave_bytes=2 * MIB)  # someone else's files: 2 MiB left for us
        cfg = write_config(tmp_path / "edge.toml", port=broker.port, state_dir=disk / "state", extra=f"""
[upload]
endpoint = "http://127.0.0.1:{free_port()}"
interval_s = 3600.0
""")
        cfg.write_text(cfg.read_text().replace('state_dir = "', f'min_free_bytes = {MIB}\nstate_dir = "', 1))
        proc = publish(cfg, 400, keyframes=8)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "Traceback" not in proc.stderr
        assert len(committed(proc)) == 400
        assert free_bytes(disk) >= MIB - 64 * KIB  # the floor held (one segment's media of slack)
        counters = json.loads((disk / "state" / "upload" / "counters.json").read_text())
        kept = media_kept(disk / "state" / "upload")
    assert counters["evicted_segments"] > 100
    assert "below its floor" in proc.stderr and "evicted segment" in proc.stderr
    ids = committed(proc)
    assert kept <= set(ids) and ids[-1] in kept and ids[0] not in kept  # the oldest media went first
    # Segments are small and were delivered: the floor took media only, no segment was lost.
    assert wait_until(lambda: sub.segment_ids() >= set(ids), 20)
    disk_reports = [m["disk"] for m in sub.payloads("metrics")]
    # The evictions are reported (a counter); whether a periodic sample happens to fall in the
    # instant the disk sits at its floor depends on timing (the no-mount test checks that flag).
    assert any(d["media_evicted_bytes"] > 0 and d["min_free_bytes"] == MIB for d in disk_reports), disk_reports[-3:]
    assert all(d["dropped_segments"] == 0 for d in disk_reports)


@pytest.mark.slow
def test_without_media_the_oldest_segments_go_and_the_service_starts_on_a_full_disk(tmp_path):
    with mounted_tmpfs(tmp_path / "disk", 4 * MIB) as disk:
        fill(disk, leave_bytes=1536 * KIB)
        cfg = write_config(tmp_path / "edge.toml", port=1, state_dir=disk / "state",
                           mqtt_extra="enabled = false")  # no broker: every segment stays in the outbox
        cfg.write_text(cfg.read_text().replace('state_dir = "', f'min_free_bytes = {512 * KIB}\nstate_dir = "', 1))
        first = publish(cfg, 3000, keyframes=0)
        assert first.returncode == 0, first.stderr[-3000:]
        assert "Traceback" not in first.stderr and "below its floor" in first.stderr
        ids = committed(first)
        kept = queued_in_order(disk / "state")
        assert 200 < len(kept) < 3000 and kept == ids[-len(kept):]  # oldest evicted, newest kept, in order
        assert "evicted" in first.stderr and "oldest unsent message" in first.stderr

        # Now nothing is left at all: the service must still start, and say what it cannot store.
        fill(disk, leave_bytes=0)
        assert free_bytes(disk) == 0
        second = publish(cfg, 20, keyframes=0, timeout=120)
        assert second.returncode == 0, second.stderr[-3000:]
        assert "Traceback" not in second.stderr
        stored = queued_in_order(disk / "state")
        # The reserve the first run kept is what lets SQLite open and write at all; the oldest
        # rows make room for the new ones, so every new segment is stored.
        assert "released the" in second.stderr and "reserve" in second.stderr
        assert committed(second) == stored[-20:]
        assert "could not be stored" not in second.stderr
