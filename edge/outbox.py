"""The store-and-forward outbox: every message that must reach the broker, on disk first.

SQLite in WAL mode with `synchronous=FULL`, so a committed `put` survives a killed process
or a power cut. Rows are keyed by the message's de-duplication key (the segment UUID; a
batch manifest uses `batch:<sha256>`), so putting the same message twice keeps one. The MQTT
sender (`edge.mqtt_link`) reads rows, publishes them QoS 1 and, when the broker's PUBACK
arrives, either deletes the row (`ack`) or, for an `end_to_end` row (a segment, with
`mqtt.delivery = "central"`), only records when it was sent (`mark_sent`): such a row leaves
the outbox when central says it has committed it (`confirm`, on a `laps.ack/1`), and is sent
again (`due`) when that has not happened within the ack timeout. A broker that accepted a
message and then lost it (a restart before the ingest re-subscribed, a SIGKILL) therefore
costs a re-send, never a segment. Anything not acknowledged stays and is sent again after a
reconnect or a restart.

Caps: total payload bytes (`max_bytes`) and age (`max_age_s`). Beyond them the OLDEST unsent
rows are evicted; every eviction is logged at WARNING and counted in a `meta` table that
survives restarts, and `stats()` reports the counts for `.../metrics`. Nothing leaves silently.

Disk floor (`edge.disk_floor`): when the file system runs low, `make_room(n)` evicts the oldest
rows (counted like the caps) so a new row reuses their pages and the file does not grow, and
`checkpoint()` folds the WAL back to zero bytes. `is_disk_full(err)` tells a full disk from
other SQLite errors.

Source positions: `put(..., position=...)` also records, in the same transaction, how far a
finite source (a video file) has been turned into committed segments, so a restart resumes
exactly after the last committed segment (`position(source)`, `set_position`).

Thread-safety: one connection guarded by a lock; the service's frame loop puts, the sender
thread reads and acknowledges.
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,  -- insertion order: oldest first
    key     TEXT NOT NULL UNIQUE,               -- de-duplication key (segment UUID)
    topic   TEXT NOT NULL,
    payload BLOB NOT NULL,
    size    INTEGER NOT NULL,                   -- bytes counted against max_bytes
    created REAL NOT NULL,                      -- unix seconds, for max_age_s
    end_to_end INTEGER NOT NULL DEFAULT 0,      -- 1: only central's ack removes the row
    sent    REAL                                -- unix seconds of the last PUBACK (end_to_end rows)
);
CREATE TABLE IF NOT EXISTS meta (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""
_COUNTERS = ("evicted_total", "evicted_bytes", "acked_total", "put_total", "confirmed_total")
#: columns added after the first release; an older outbox file gets them on open
_ADDED_COLUMNS = (("end_to_end", "INTEGER NOT NULL DEFAULT 0"), ("sent", "REAL"))
_POSITION_SCHEMA = """
CREATE TABLE IF NOT EXISTS source_position (
    source   TEXT PRIMARY KEY,                  -- edge.resume.source_identity()
    frame    INTEGER NOT NULL,                  -- frames at `fps` already turned into segments
    fps      REAL NOT NULL,
    finished INTEGER NOT NULL DEFAULT 0,        -- 1: the source was processed to its end
    updated  REAL NOT NULL                      -- unix seconds
);
"""
#: SQLite's primary result code of a write that failed for want of space
_SQLITE_FULL = 13


def is_disk_full(err: BaseException) -> bool:
    """True when a SQLite error (or OSError) means the disk or quota is full."""
    if isinstance(err, OSError):
        return err.errno in (errno.ENOSPC, errno.EDQUOT)
    code = getattr(err, "sqlite_errorcode", None)
    if code is not None and code & 0xFF == _SQLITE_FULL:
        return True
    return isinstance(err, sqlite3.Error) and "disk is full" in str(err)


@dataclass(frozen=True)
class SourcePosition:
    """How far a finite source has been turned into committed segments.

    source: its identity (`edge.resume.source_identity`). frame: frames at `fps` (the service's
    rate) done, i.e. the next frame to process. finished: processed to its end."""

    source: str
    frame: int
    fps: float
    finished: bool = False


@dataclass(frozen=True)
class OutboxMessage:
    """One pending row: `payload` goes to `topic` (QoS 1); `created` in unix seconds.
    end_to_end: the row waits for central's ack, not only the broker's PUBACK. sent: unix
    seconds of its last PUBACK (None: never acknowledged by the broker)."""

    key: str
    topic: str
    payload: bytes
    created: float
    end_to_end: bool = False
    sent: float | None = None


@dataclass(frozen=True)
class OutboxStats:
    """depth: rows not yet acknowledged (unsent, or sent and waiting for central); bytes: their
    payload bytes; evicted_*: since the file was created; oldest_age_s: age of the oldest row
    (0 when empty); unconfirmed: rows the broker took that central has not acknowledged yet;
    confirmed_total: rows removed by central's ack."""

    depth: int
    bytes: int
    evicted_total: int
    evicted_bytes: int
    acked_total: int
    put_total: int
    oldest_age_s: float
    unconfirmed: int = 0
    confirmed_total: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


class Outbox:
    """A durable, capped, de-duplicating queue of MQTT messages.

    path: SQLite file (created with its folder). max_bytes: cap on the sum of unsent payload
    bytes. max_age_s: unsent rows older than this are evicted. synchronous: "FULL" (fsync on
    every commit; the default and what the service uses) or "NORMAL"/"OFF" (benchmarks only).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        max_bytes: int = 64 * 1024 * 1024,
        max_age_s: float = 7 * 24 * 3600.0,
        synchronous: str = "FULL",
    ) -> None:
        if synchronous not in ("FULL", "NORMAL", "OFF", "EXTRA"):
            raise ValueError(f"synchronous must be FULL, NORMAL, OFF or EXTRA, got {synchronous!r}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_bytes = int(max_bytes)
        self.max_age_s = float(max_age_s)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False, timeout=10.0)
        mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise OSError(f"outbox {self.path}: SQLite refused WAL mode (got {mode!r}); put it on a local disk")
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.executescript(_SCHEMA)
        self._db.executescript(_POSITION_SCHEMA)
        _add_missing_columns(self._db)
        # Read on every publishing round (see `due`): keep them off a full scan of a long backlog.
        self._db.execute("CREATE INDEX IF NOT EXISTS outbox_unconfirmed ON outbox(sent) WHERE end_to_end = 1")
        self._db.execute("CREATE INDEX IF NOT EXISTS outbox_plain ON outbox(id) WHERE end_to_end = 0")
        for name in _COUNTERS:
            self._db.execute("INSERT OR IGNORE INTO meta(name, value) VALUES (?, 0)", (name,))
        self._bytes = int(self._db.execute("SELECT COALESCE(SUM(size), 0) FROM outbox").fetchone()[0])
        self._depth = int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
        self._closed = False
        # Enforce the caps once at start: a config may have lowered them since the last run.
        self.evict_expired()

    # -- the queue ------------------------------------------------------------------------------
    def put(self, key: str, topic: str, payload: bytes, now: float | None = None, end_to_end: bool = False,
            position: SourcePosition | None = None) -> bool:
        """Store one message durably (fsync before returning). Returns False if `key` was
        already queued (the existing row is kept). May evict the oldest rows to honour the caps.
        end_to_end: the row leaves only on `confirm` (central's ack), not on the broker's PUBACK.
        position: also record this source position in the same transaction (a crash keeps both
        or neither)."""
        now = time.time() if now is None else float(now)
        size = len(payload)
        with self._lock:
            self._begin()
            try:
                cur = self._db.execute(
                    "INSERT OR IGNORE INTO outbox(key, topic, payload, size, created, end_to_end) VALUES (?, ?, ?, ?, ?, ?)",
                    (key, topic, sqlite3.Binary(payload), size, now, int(bool(end_to_end))),
                )
                inserted = cur.rowcount == 1
                if inserted:
                    self._bytes += size
                    self._depth += 1
                    self._bump("put_total", 1)
                if position is not None:
                    self._save_position_locked(position, now)
                evicted = self._evict_locked(now)
                self._db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
        self._log_evictions(evicted)
        return inserted

    def pending(self, limit: int, exclude: Iterable[str] = ()) -> list[OutboxMessage]:
        """Up to `limit` unsent rows, oldest first, skipping keys in `exclude` (already in flight)."""
        skip = set(exclude)
        with self._lock:
            rows = self._db.execute(
                "SELECT key, topic, payload, created FROM outbox ORDER BY id LIMIT ?",
                (int(limit) + len(skip),),
            ).fetchall()
        out = [OutboxMessage(k, t, bytes(p), c) for k, t, p, c in rows if k not in skip]
        return out[: int(limit)]

    def ack(self, keys: Iterable[str]) -> int:
        """Delete rows whose PUBACK arrived (one transaction, one fsync). Returns rows deleted;
        keys that are gone (evicted meanwhile, or acked twice) are ignored."""
        return self._delete(keys, ())

    def confirm(self, keys: Iterable[str]) -> int:
        """Delete rows central has acknowledged (committed or quarantined for good); one
        transaction. Returns rows deleted; unknown keys (already confirmed) are ignored."""
        return self._delete(keys, ("confirmed_total",))

    def mark_sent(self, keys: Iterable[str], now: float | None = None) -> int:
        """Record the broker's PUBACK of end_to_end rows: they stay until `confirm`, and `due`
        offers them again once the ack timeout has passed. Returns rows updated."""
        keys = list(keys)
        if not keys:
            return 0
        now = time.time() if now is None else float(now)
        with self._lock:
            self._begin()
            try:
                before = self._db.total_changes
                self._db.executemany("UPDATE outbox SET sent = ? WHERE key = ? AND end_to_end = 1",
                                     [(now, k) for k in keys])
                done = self._db.total_changes - before
                self._db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
        return done

    def due(self, limit: int, exclude: Iterable[str] = (), resend_before: float = 0.0,
            window: int | None = None) -> list[OutboxMessage]:
        """Up to `limit` rows to publish now, oldest first, skipping keys in `exclude` (in flight):
        every row never acknowledged by the broker, and end_to_end rows whose last PUBACK is older
        than `resend_before` (unix seconds; central never acknowledged them). window: when this many
        end_to_end rows already wait for central, new end_to_end rows wait too (re-sends still go),
        which bounds what an unreachable central makes the device send again and again."""
        skip = set(exclude)
        n = int(limit) + len(skip)
        cols = "SELECT id, key, topic, payload, created, end_to_end, sent FROM outbox"
        with self._lock:
            held = self._unconfirmed_locked()
            room = max(0, window - held) if window is not None else n
            # Three indexed reads, not one scan: a long backlog behind a full window stays cheap.
            rows = self._db.execute(f"{cols} WHERE end_to_end = 1 AND sent < ? ORDER BY sent LIMIT ?",
                                    (float(resend_before), n)).fetchall()
            rows += self._db.execute(f"{cols} WHERE end_to_end = 0 ORDER BY id LIMIT ?", (n,)).fetchall()
            if room > 0:
                rows += self._db.execute(f"{cols} WHERE end_to_end = 1 AND sent IS NULL ORDER BY id LIMIT ?",
                                         (min(n, room + len(skip)),)).fetchall()
        out = []
        for _, k, t, p, c, e2e, sent in sorted(rows):
            if k in skip:
                continue
            if e2e and sent is None:
                if room <= 0:
                    continue
                room -= 1
            out.append(OutboxMessage(k, t, bytes(p), c, bool(e2e), sent))
            if len(out) >= int(limit):
                break
        return out

    def unconfirmed(self) -> int:
        """end_to_end rows the broker has acknowledged and central has not (yet)."""
        with self._lock:
            return self._unconfirmed_locked()

    def evict_expired(self, now: float | None = None) -> int:
        """Apply the caps now (age matters even when nothing is put). Returns rows evicted."""
        now = time.time() if now is None else float(now)
        with self._lock:
            self._begin()
            try:
                evicted = self._evict_locked(now)
                self._db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
        self._log_evictions(evicted)
        return evicted[0]

    def contains(self, key: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM outbox WHERE key = ?", (key,)).fetchone() is not None

    def keys(self) -> list[str]:
        """All unsent keys, oldest first."""
        with self._lock:
            return [k for (k,) in self._db.execute("SELECT key FROM outbox ORDER BY id")]

    @property
    def depth(self) -> int:
        return self._depth

    def stats(self, now: float | None = None) -> OutboxStats:
        now = time.time() if now is None else float(now)
        with self._lock:
            counters = dict(self._db.execute("SELECT name, value FROM meta").fetchall())
            oldest = self._db.execute("SELECT MIN(created) FROM outbox").fetchone()[0]
            unconfirmed = self._unconfirmed_locked()
        return OutboxStats(
            depth=self._depth,
            bytes=self._bytes,
            evicted_total=int(counters.get("evicted_total", 0)),
            evicted_bytes=int(counters.get("evicted_bytes", 0)),
            acked_total=int(counters.get("acked_total", 0)),
            put_total=int(counters.get("put_total", 0)),
            oldest_age_s=max(0.0, now - oldest) if oldest is not None else 0.0,
            unconfirmed=unconfirmed,
            confirmed_total=int(counters.get("confirmed_total", 0)),
        )

    # -- the disk floor and source positions (edge.disk_floor, edge.resume) -----------------------
    def make_room(self, nbytes: int, reason: str) -> int:
        """Evict the oldest rows holding at least `nbytes` payload bytes (counted and logged like
        the caps), so the next `put` reuses their pages instead of growing the file. Returns
        rows evicted."""
        if nbytes <= 0:
            return 0
        with self._lock:
            self._begin()
            try:
                rows, freed, keys = self._evict_oldest_locked(int(nbytes))
                self._bump("evicted_total", rows)
                self._bump("evicted_bytes", freed)
                self._db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
        self._log_evictions((rows, freed, keys, reason))
        return rows

    def checkpoint(self) -> bool:
        """Fold the WAL into the database and truncate it to 0 bytes (frees up to a few MB on a
        full disk). False when SQLite could not (the database itself cannot grow)."""
        with self._lock:
            try:
                busy = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            except sqlite3.Error as err:
                log.debug("outbox %s: checkpoint failed (%s)", self.path, err)
                return False
        return not busy

    def position(self, source: str) -> SourcePosition | None:
        """The recorded position of `source`, or None when it was never recorded."""
        with self._lock:
            row = self._db.execute("SELECT frame, fps, finished FROM source_position WHERE source = ?",
                                   (source,)).fetchone()
        return None if row is None else SourcePosition(source, int(row[0]), float(row[1]), bool(row[2]))

    def set_position(self, position: SourcePosition, now: float | None = None) -> None:
        """Record a source position on its own (a finished file, a clean stop between segments)."""
        now = time.time() if now is None else float(now)
        with self._lock:
            self._begin()
            try:
                self._save_position_locked(position, now)
                self._db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise

    def _save_position_locked(self, position: SourcePosition, now: float) -> None:
        self._db.execute(
            "INSERT INTO source_position(source, frame, fps, finished, updated) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(source) DO UPDATE SET frame = excluded.frame, fps = excluded.fps, "
            "finished = excluded.finished, updated = excluded.updated",
            (position.source, int(position.frame), float(position.fps), int(position.finished), now),
        )

    def close(self) -> None:
        """Checkpoint the WAL into the main file and close. Safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as err:  # a full disk: the WAL stays and is replayed on open
                log.warning("outbox %s: WAL not folded into the database at close (%s); nothing is lost, "
                            "the next start reads it", self.path, err)
            finally:
                self._db.close()

    def __enter__(self) -> "Outbox":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals --------------------------------------------------------------------------------
    def _begin(self) -> None:
        if self._closed:
            raise RuntimeError(f"outbox {self.path} is closed")
        # IMMEDIATE: take the write lock now, so a concurrent reader cannot make us fail mid-way.
        self._db.execute("BEGIN IMMEDIATE")

    def _rollback(self) -> None:
        try:
            self._db.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        # Re-derive the in-memory totals from the file: the transaction did not happen.
        self._bytes = int(self._db.execute("SELECT COALESCE(SUM(size), 0) FROM outbox").fetchone()[0])
        self._depth = int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def _delete(self, keys: Iterable[str], counters: tuple[str, ...]) -> int:
        keys = list(keys)
        if not keys:
            return 0
        done = 0
        with self._lock:
            self._begin()
            try:
                for key in keys:
                    row = self._db.execute("SELECT size FROM outbox WHERE key = ?", (key,)).fetchone()
                    if row is None:
                        continue
                    self._db.execute("DELETE FROM outbox WHERE key = ?", (key,))
                    self._bytes -= int(row[0])
                    self._depth -= 1
                    done += 1
                for name in ("acked_total", *counters):
                    self._bump(name, done)
                self._db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
        return done

    def _unconfirmed_locked(self) -> int:
        return int(self._db.execute(
            "SELECT COUNT(*) FROM outbox WHERE end_to_end = 1 AND sent IS NOT NULL").fetchone()[0])

    def _bump(self, name: str, by: int) -> None:
        if by:
            self._db.execute("UPDATE meta SET value = value + ? WHERE name = ?", (int(by), name))

    def _evict_locked(self, now: float) -> tuple[int, int, list[str], str]:
        """Evict by age, then oldest-first by bytes. Returns (rows, bytes, first keys, reason)."""
        rows = nbytes = 0
        keys: list[str] = []
        reasons = []
        cutoff = now - self.max_age_s
        old = self._db.execute("SELECT key, size FROM outbox WHERE created < ? ORDER BY id", (cutoff,)).fetchall()
        if old:
            self._db.execute("DELETE FROM outbox WHERE created < ?", (cutoff,))
            rows += len(old)
            nbytes += sum(int(s) for _, s in old)
            keys += [k for k, _ in old[:3]]
            reasons.append(f"older than max_age_s={self.max_age_s:g}")
            self._bytes -= sum(int(s) for _, s in old)
            self._depth -= len(old)
        if self._bytes > self.max_bytes:
            n, freed, first = self._evict_oldest_locked(self._bytes - self.max_bytes)
            rows += n
            nbytes += freed
            keys += first
            reasons.append(f"over max_bytes={self.max_bytes}")
        if rows:
            self._bump("evicted_total", rows)
            self._bump("evicted_bytes", nbytes)
        return rows, nbytes, keys, " and ".join(reasons)

    def _evict_oldest_locked(self, nbytes: int) -> tuple[int, int, list[str]]:
        """Delete the oldest rows until at least `nbytes` payload bytes are gone (or none is
        left). Returns (rows, bytes, first keys); the caller counts them."""
        victims: list[tuple[int, str, int]] = []
        freed = 0
        cur = self._db.execute("SELECT id, key, size FROM outbox ORDER BY id")
        for rid, key, size in cur:
            victims.append((rid, key, int(size)))
            freed += int(size)
            if freed >= nbytes:
                break
        cur.close()  # finalise the read before deleting through the same connection
        if not victims:
            return 0, 0, []
        self._db.execute("DELETE FROM outbox WHERE id <= ?", (victims[-1][0],))
        self._bytes -= freed
        self._depth -= len(victims)
        return len(victims), freed, [k for _, k, _ in victims[:3]]

    def _log_evictions(self, evicted: tuple[int, int, list[str], str]) -> None:
        rows, nbytes, keys, reason = evicted
        if rows:
            total = self.stats().evicted_total
            log.warning(
                "outbox %s: evicted %d oldest unsent message(s), %d bytes (%s), first %s; "
                "%d evicted since the outbox was created",
                self.path, rows, nbytes, reason, ", ".join(keys), total,
            )


def _add_missing_columns(db: sqlite3.Connection) -> None:
    """Bring an outbox file written by an older release up to this schema (its rows keep the
    old meaning: end_to_end = 0, deleted on PUBACK)."""
    have = {row[1] for row in db.execute("PRAGMA table_info(outbox)")}
    for name, decl in _ADDED_COLUMNS:
        if name not in have:
            try:
                db.execute(f"ALTER TABLE outbox ADD COLUMN {name} {decl}")
            except sqlite3.OperationalError as err:  # another process added it first
                if "duplicate column" not in str(err):
                    raise


def read_stats(path: str | os.PathLike) -> OutboxStats | None:
    """Stats of an outbox file without writing to it (for `laps-edge doctor`); None if absent."""
    p = Path(path)
    if not p.exists():
        return None
    db = sqlite3.connect(f"file:{p}?mode=ro", uri=True, timeout=5.0)
    try:
        depth, nbytes, oldest = db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0), MIN(created) FROM outbox").fetchone()
        counters = dict(db.execute("SELECT name, value FROM meta").fetchall())
        columns = {row[1] for row in db.execute("PRAGMA table_info(outbox)")}
        unconfirmed = db.execute("SELECT COUNT(*) FROM outbox WHERE end_to_end = 1 AND sent IS NOT NULL"
                                 ).fetchone()[0] if "sent" in columns else 0
    finally:
        db.close()
    return OutboxStats(
        depth=int(depth), bytes=int(nbytes),
        evicted_total=int(counters.get("evicted_total", 0)),
        evicted_bytes=int(counters.get("evicted_bytes", 0)),
        acked_total=int(counters.get("acked_total", 0)),
        put_total=int(counters.get("put_total", 0)),
        oldest_age_s=max(0.0, time.time() - oldest) if oldest is not None else 0.0,
        unconfirmed=int(unconfirmed),
        confirmed_total=int(counters.get("confirmed_total", 0)),
    )
