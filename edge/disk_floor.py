"""The free-space floor of the state directory: a full disk must not stop the device.

Before every durable write the service asks `DiskFloor.before_write(n)`. When the file system
of `paths.state_dir` has less than `paths.min_free_bytes` (+ n) free, it evicts, oldest first:

0. nothing at all first: the outbox's write-ahead log (up to ~4 MB between SQLite's own
   checkpoints) is folded into the database and truncated to zero bytes;
1. upload media (sealed keyframe/clip batches, then incoming segments' keyframes and clips):
   they are the bulk of the state directory and the least valuable part of a segment;
2. then the oldest segments in the outbox, as its own caps do, whether never sent or sent and
   waiting for central's acknowledgement (an evicted row's late ack is ignored; it no longer
   counts against `mqtt.max_unconfirmed`): the database file never shrinks, but deleting the
   oldest rows lets the new row reuse their pages, so the file stops growing.

A write that still fails for want of space (another program filled the disk) is retried once
after evicting all media; if it fails again the segment is dropped, counted and logged as an
error (`dropped_segments`). Every eviction is counted in the outbox / upload counters (which
survive restarts) and here (since this start), logged, and reported on `.../metrics` under
"disk"; the process never stops for a full disk.

Starting on a full disk: media are evicted before the outbox is opened. SQLite needs a little
room to open a WAL database at all (its 32 KB shared-memory index, the first log pages), which a
disk filled to the last byte by someone else does not have; so while there is room the service
keeps a reserve file `<state_dir>/.disk-reserve` (an eighth of the floor, 256 KiB to 8 MiB) and
deletes it when a write, or opening the outbox, fails for want of space. It is created again
once the disk is comfortably above its floor.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edge.outbox import Outbox
    from edge.upload import BatchSpool

log = logging.getLogger(__name__)

#: how long a "disk below the floor" episode stays quiet after it was logged, seconds
_REPEAT_LOG_S = 300.0
#: a write-ahead log at least this large is folded before anything is evicted
_WAL_FOLD_BYTES = 256 * 1024
RESERVE_NAME = ".disk-reserve"


class DiskFloor:
    """Keeps `min_free_bytes` free on the file system of `path` (0: no floor, only the retry).

    spool and outbox are attached once they exist (`attach`); eviction uses whatever is attached.
    Thread-safe: the frame loop (segments, metrics) and the upload worker (batch announcements)
    both write, and one of them at a time decides what to evict.
    """

    def __init__(self, path: str | os.PathLike, min_free_bytes: int) -> None:
        self.path = Path(path)
        self.min_free_bytes = int(min_free_bytes)
        self.spool: BatchSpool | None = None
        self.outbox: Outbox | None = None
        self.counters = {"media_evicted_bytes": 0, "segments_evicted": 0, "dropped_segments": 0,
                         "dropped_media": 0, "write_failures": 0}
        self._lock = threading.RLock()
        self._low_since: float | None = None
        self._last_logged = -_REPEAT_LOG_S
        self.reserve_path = self.path / RESERVE_NAME
        self.reserve_bytes = min(max(self.min_free_bytes // 8, 256 * 1024), 8 * 1024 * 1024)

    def attach(self, spool: "BatchSpool | None" = None, outbox: "Outbox | None" = None) -> None:
        if spool is not None:
            self.spool = spool
        if outbox is not None:
            self.outbox = outbox

    def free_bytes(self) -> int:
        """Bytes available to this (unprivileged) process on the file system of `path`."""
        try:
            st = os.statvfs(self.path)
        except OSError:
            return 1 << 62  # cannot tell: do not evict on a guess
        return int(st.f_bavail) * int(st.f_frsize)

    def before_write(self, nbytes: int) -> None:
        """Make room for a write of `nbytes` if the disk is below the floor (media first).

        Below the floor it frees up to an eighth of the floor more than needed, so evictions
        come in small batches rather than one per write; the episode ends (logged) once a
        quarter of the floor is free above it again."""
        if self.min_free_bytes <= 0:
            return
        with self._lock:
            self._before_write(nbytes)

    def after_full(self, nbytes: int) -> None:
        """A write failed for want of space: give up the reserve, evict all media we can, fold
        the WAL and make room in the outbox."""
        with self._lock:
            self.counters["write_failures"] += 1
            self.release_reserve()
            self._note_low(self.free_bytes())
            self._evict_media_until(1 << 62)
            if self.outbox is not None:
                self.outbox.checkpoint()
            self._make_room(max(nbytes, 1), f"disk {self.path} is full")

    def release_reserve(self) -> bool:
        """Delete the reserve file (a full disk needs its room now). True if there was one."""
        try:
            size = self.reserve_path.stat().st_size
            self.reserve_path.unlink()
        except FileNotFoundError:
            return False
        except OSError as err:
            log.warning("cannot delete the disk reserve %s (%s)", self.reserve_path, err.strerror)
            return False
        log.warning("disk %s is full: released the %d-byte reserve %s so the outbox can keep working",
                    self.path, size, self.reserve_path)
        return True

    def segments_evicted(self, rows: int) -> None:
        self.counters["segments_evicted"] += int(rows)

    def dropped(self, what: str, key: str, err: BaseException) -> None:
        """Count and log (ERROR) something that could not be stored at all."""
        name = "dropped_segments" if what == "segment" else "dropped_media"
        self.counters[name] += 1
        log.error("disk %s is full: %s %s could not be stored (%s) and is dropped; %d segment(s) and %d "
                  "segment media dropped since start; free space on that disk", self.path, what, key, err,
                  self.counters["dropped_segments"], self.counters["dropped_media"])

    def stats(self) -> dict:
        """For `.../metrics`: free bytes, the floor, whether the floor is being held by
        evicting now (`at_floor`), counters since start."""
        return {"free_bytes": self.free_bytes(), "min_free_bytes": self.min_free_bytes,
                "at_floor": self._low_since is not None, **self.counters}

    # -- internals --------------------------------------------------------------------------------
    def _before_write(self, nbytes: int) -> None:
        """`before_write` under the lock."""
        free = self.free_bytes()
        if self._low_since is not None and free >= self.min_free_bytes * 1.25 + nbytes:
            log.info("disk %s back above its floor (%d bytes free, min_free_bytes=%d)",
                     self.path, free, self.min_free_bytes)
            self._low_since = None
        if free >= self.min_free_bytes + nbytes:
            if free >= self.min_free_bytes * 1.25 + 2 * self.reserve_bytes + nbytes:
                self._keep_reserve()
            return
        self._note_low(free)
        if free < self.reserve_bytes // 2:
            self.release_reserve()  # nearly nothing left: SQLite needs room to work at all
        target = self.min_free_bytes + self.min_free_bytes // 8 + int(nbytes)
        if self._fold_wal() >= target:
            return
        free = self._evict_media_until(target)
        if free < target:
            # The database does not shrink: evicting rows lets the new one reuse their pages.
            self._make_room(nbytes, f"disk {self.path} below its floor (min_free_bytes={self.min_free_bytes})")

    def _keep_reserve(self) -> None:
        """Create the reserve file if it is missing (real blocks: written, not a sparse hole)."""
        try:
            if self.reserve_path.stat().st_size >= self.reserve_bytes:
                return
        except FileNotFoundError:
            pass
        except OSError:
            return
        tmp = self.reserve_path.with_name(RESERVE_NAME + ".tmp")
        try:
            with open(tmp, "wb") as fh:
                block = b"\0" * 65536
                for _ in range(0, self.reserve_bytes, len(block)):
                    fh.write(block)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.reserve_path)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            log.debug("disk reserve %s not created (%s)", self.reserve_path, err.strerror)

    def _make_room(self, nbytes: int, reason: str) -> None:
        """Evict the oldest outbox rows for `nbytes`; on a disk so full that even the delete
        cannot be logged, leave it to the write's own retry (and its count if it fails)."""
        if self.outbox is None:
            return
        from edge.outbox import is_disk_full

        try:
            self.segments_evicted(self.outbox.make_room(nbytes, reason))
        except sqlite3.Error as err:
            if not is_disk_full(err):
                raise
            log.debug("no room even to evict from the outbox (%s)", err)

    def _fold_wal(self) -> int:
        """Lossless first: fold the outbox's write-ahead log (up to ~4 MB between SQLite's
        checkpoints) back to zero bytes when it holds more than a little. Returns free bytes."""
        if self.outbox is not None:
            try:
                wal = os.stat(f"{self.outbox.path}-wal").st_size
            except OSError:
                wal = 0
            if wal >= _WAL_FOLD_BYTES:
                self.outbox.checkpoint()
        return self.free_bytes()

    def _evict_media_until(self, target_free: int) -> int:
        """Evict media one item at a time, oldest first, until `target_free` bytes are free
        or none is left; the file system is asked after each (a file's size is not what its
        blocks free). Returns the free bytes at the end."""
        free = self.free_bytes()
        while self.spool is not None and free < target_free:
            freed = self.spool.evict_oldest(
                1, f"disk {self.path} below its floor (min_free_bytes={self.min_free_bytes})")
            if not freed:
                break
            self.counters["media_evicted_bytes"] += freed
            free = self.free_bytes()
        return free

    def _note_low(self, free: int) -> None:
        now = time.monotonic()
        if self._low_since is None:
            self._low_since = now
        if now - self._last_logged >= _REPEAT_LOG_S:
            self._last_logged = now
            log.warning("disk %s below its floor: %d bytes free, min_free_bytes=%d; evicting the oldest upload "
                        "media, then the oldest unsent segments (counted on .../metrics)",
                        self.path, free, self.min_free_bytes)
