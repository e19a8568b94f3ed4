"""The central store: segments, quarantined messages, batches and their media, cluster runs.

SQLite in WAL mode (readers never block the ingest writer; several ingest processes on one
host may share the file, each waiting its turn to write). `synchronous=FULL` by default, so a
committed transaction survives a power cut: the ingest acknowledges a message to the broker
only after the transaction holding it has committed.

Tables
    segments             one row per segment_id (the de-duplication key); codes as a BLOB of
                         little-endian uint32; times as ISO-8601 text and as Unix milliseconds
                         (indexed, for time-range selections); the device's primitive label
                         (primitive_library, primitive_cluster, primitive_distance; NULL when
                         the device carried no library, added by `_migrate` in schema 4)
    quarantine           messages refused for good (validation, or a commit that failed for that
                         message alone), with the reason, the payload's size and its first
                         QUARANTINE_PAYLOAD_BYTES bytes (a 5 MB poison message keeps 4 KiB)
    batches              batch archives received by the HTTP endpoint (device, sha256)
    media                keyframes and clips unpacked from batches, one row per file, keyed by
                         segment_id: the link between a segment and its pictures (either may
                         arrive first; the link is a join on segment_id AND device_id, so media
                         uploaded by another device never links to a segment)
    cluster_runs         one row per `laps-central cluster` run (parameters, metrics)
    cluster_assignments  (run_id, segment_id) -> cluster id and distance to its centre
    counters             ingest counters that survive restarts (received, stored, ...)
    device_states        the newest laps.state/1 of each device (online, source_lost, offline
                         = its last will, stopped), for `laps-central status`

A `Store` holds one connection guarded by a lock; threads may share it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from edge.messages import SegmentMessage, StateMessage
from edge.segments import PrimitiveLabel

SCHEMA_VERSION = 4
#: a quarantined payload keeps this many leading bytes (and its full size)
QUARANTINE_PAYLOAD_BYTES = 4096
_REASON_CHARS = 1000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS segments (
    segment_id    TEXT PRIMARY KEY,
    site          TEXT NOT NULL,
    device_id     TEXT NOT NULL,
    model_version TEXT NOT NULL,
    boot_id       TEXT NOT NULL,
    seq           INTEGER NOT NULL,
    start_utc     TEXT NOT NULL,
    end_utc       TEXT NOT NULL,
    start_ms      INTEGER NOT NULL,
    end_ms        INTEGER NOT NULL,
    start_frame   INTEGER NOT NULL,
    end_frame     INTEGER NOT NULL,
    fps           REAL NOT NULL,
    n_codes       INTEGER NOT NULL,
    codes         BLOB NOT NULL,
    energy_mean   REAL NOT NULL,
    energy_max    REAL NOT NULL,
    keyframes     TEXT NOT NULL,
    topic         TEXT NOT NULL,
    received_ms   INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS segments_time ON segments (start_ms);
CREATE INDEX IF NOT EXISTS segments_station ON segments (site, device_id, start_ms);
CREATE INDEX IF NOT EXISTS segments_model ON segments (model_version);
CREATE TABLE IF NOT EXISTS quarantine (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    received_ms INTEGER NOT NULL,
    topic       TEXT NOT NULL,
    reason      TEXT NOT NULL,
    payload     BLOB NOT NULL,
    size        INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS batches (
    device_id   TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    site        TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    size        INTEGER NOT NULL,
    n_segments  INTEGER NOT NULL,
    n_files     INTEGER NOT NULL,
    PRIMARY KEY (device_id, sha256)
);
CREATE TABLE IF NOT EXISTS media (
    segment_id   TEXT NOT NULL,
    path         TEXT NOT NULL,
    kind         TEXT NOT NULL,
    frame        INTEGER,
    sha256       TEXT NOT NULL,
    size         INTEGER NOT NULL,
    device_id    TEXT NOT NULL,
    batch_sha256 TEXT NOT NULL,
    PRIMARY KEY (segment_id, path)
);
CREATE TABLE IF NOT EXISTS cluster_runs (
    run_id        TEXT PRIMARY KEY,
    created       TEXT NOT NULL,
    model_version TEXT NOT NULL,
    method        TEXT NOT NULL,
    k             INTEGER NOT NULL,
    n_segments    INTEGER NOT NULL,
    params        TEXT NOT NULL,
    metrics       TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cluster_assignments (
    run_id     TEXT NOT NULL,
    segment_id TEXT NOT NULL,
    cluster    INTEGER NOT NULL,
    distance   REAL NOT NULL,
    PRIMARY KEY (run_id, segment_id)
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS device_states (
    site          TEXT NOT NULL,
    device_id     TEXT NOT NULL,
    state         TEXT NOT NULL,
    detail        TEXT NOT NULL,
    model_version TEXT NOT NULL,
    boot_id       TEXT NOT NULL,
    time_utc      TEXT NOT NULL,
    received_ms   INTEGER NOT NULL,
    PRIMARY KEY (site, device_id)
);
"""

COUNTERS = ("received", "stored", "duplicates", "quarantined")
_SEGMENT_COLUMNS = (
    "segment_id, site, device_id, model_version, boot_id, seq, start_utc, end_utc, start_ms, end_ms, "
    "start_frame, end_frame, fps, n_codes, codes, energy_mean, energy_max, keyframes, topic, received_ms, "
    "primitive_library, primitive_cluster, primitive_distance"
)
#: the device's primitive label (laps.segment/2), nullable; added to older stores by `_migrate`
_PRIMITIVE_COLUMNS = (("primitive_library", "TEXT"), ("primitive_cluster", "INTEGER"), ("primitive_distance", "REAL"))


@dataclass(frozen=True)
class StoredSegment:
    """One segment as stored. Times: ISO-8601 UTC text and Unix ms; frames at `fps`, end
    exclusive; codes (S,) int64 FSQ codes; keyframes [{"frame", "file"}] as sent; primitive:
    the device's primitive-library label, None when it sent none."""

    segment_id: str
    site: str
    device_id: str
    model_version: str
    boot_id: str
    seq: int
    start_utc: str
    end_utc: str
    start_ms: int
    end_ms: int
    start_frame: int
    end_frame: int
    fps: float
    codes: np.ndarray = field(repr=False)
    energy_mean: float
    energy_max: float
    keyframes: list[dict]
    primitive: PrimitiveLabel | None = None

    @property
    def duration_s(self) -> float:
        return (self.end_frame - self.start_frame) / self.fps


@dataclass(frozen=True)
class DeviceSummary:
    """What the store knows of one device. state: its newest laps.state/1 ("online",
    "source_lost", "offline" = its last will, "stopped"; "" when none arrived), with detail and
    the device's own time of it. last_seen_ms: the newest message of any kind central received
    from it (Unix ms, 0 = never). Counts: segments stored, batches received (and their files),
    messages quarantined."""

    site: str
    device_id: str
    state: str = ""
    state_detail: str = ""
    state_time: str = ""
    model_version: str = ""
    segments: int = 0
    batches: int = 0
    media_files: int = 0
    quarantined: int = 0
    last_seen_ms: int = 0
    last_segment_end_ms: int = 0

    @property
    def online(self) -> bool | None:
        """True while its newest state says it runs, False once it stopped or its will said
        offline, None when no state arrived."""
        if not self.state:
            return None
        return self.state in ("online", "source_lost")

    @classmethod
    def from_row(cls, r: dict) -> "DeviceSummary":
        seen = max(r.get(k, 0) for k in ("last_segment_ms", "last_batch_ms", "last_quarantined_ms", "last_state_ms"))
        fields = {k: r[k] for k in ("site", "device_id", "state", "state_detail", "state_time", "model_version",
                                    "segments", "batches", "media_files", "quarantined", "last_segment_end_ms")
                  if k in r}
        return cls(last_seen_ms=int(seen), **fields)


@dataclass(frozen=True)
class MediaFile:
    """A keyframe or clip of a segment; `path` relative to the media folder."""

    segment_id: str
    path: str
    kind: str
    frame: int | None
    sha256: str
    size: int


@dataclass(frozen=True)
class RunMember:
    """One segment of a clustering run: its cluster, distance to the cluster centre (in the
    run's normalised embedding space; smaller = more typical), where it came from, its start
    (ISO-8601 UTC) and duration in seconds."""

    segment_id: str
    cluster: int
    distance: float
    site: str
    device_id: str
    start_utc: str
    duration_s: float


@dataclass(frozen=True)
class Selection:
    """Which segments a clustering or export looks at. Times in Unix ms (inclusive start,
    exclusive end); None = unbounded. Empty strings = any site/device/model."""

    since_ms: int | None = None
    until_ms: int | None = None
    site: str = ""
    device_id: str = ""
    model_version: str = ""

    def where(self) -> tuple[str, list]:
        clauses, args = [], []
        if self.since_ms is not None:
            clauses.append("start_ms >= ?")
            args.append(int(self.since_ms))
        if self.until_ms is not None:
            clauses.append("start_ms < ?")
            args.append(int(self.until_ms))
        for column, value in (("site", self.site), ("device_id", self.device_id), ("model_version", self.model_version)):
            if value:
                clauses.append(f"{column} = ?")
                args.append(value)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", args

    def describe(self) -> str:
        parts = []
        if self.site:
            parts.append(f"site {self.site}")
        if self.device_id:
            parts.append(f"device {self.device_id}")
        if self.model_version:
            parts.append(f"model {self.model_version}")
        if self.since_ms is not None:
            parts.append(f"from {ms_to_iso(self.since_ms)}")
        if self.until_ms is not None:
            parts.append(f"until {ms_to_iso(self.until_ms)}")
        return ", ".join(parts) or "all segments"


class Store:
    """The central SQLite store. path: file (created with its folder). synchronous: "full"
    (fsync per commit) or "normal" (faster; the last commits may be lost on power loss)."""

    def __init__(self, path: str | os.PathLike, synchronous: str = "full") -> None:
        if synchronous.lower() not in ("full", "normal"):
            raise ValueError(f"synchronous must be 'full' or 'normal', got {synchronous!r}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False, timeout=30.0)
        mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise OSError(f"store {self.path}: SQLite refused WAL mode (got {mode!r}); put it on a local disk")
        self._db.execute(f"PRAGMA synchronous={synchronous.upper()}")
        self._db.execute("PRAGMA busy_timeout=30000")
        with self._lock:
            # CREATE ... IF NOT EXISTS: several ingest processes may open a new file at once.
            self._db.executescript(_SCHEMA)
            self._db.execute("INSERT OR IGNORE INTO meta(name, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            for name in COUNTERS:
                self._db.execute("INSERT OR IGNORE INTO counters(name, value) VALUES (?, 0)", (name,))
            self._migrate()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- ingest ------------------------------------------------------------------------------------
    def ingest(self, segments: Sequence[tuple[SegmentMessage, str]], quarantined: Sequence[tuple[str, str, bytes]],
               now_ms: int | None = None) -> tuple[int, int]:
        """Insert validated segment messages and quarantine rows in ONE transaction.

        segments: (validated segment message, topic). quarantined: (topic, reason,
        payload); the payload is kept up to QUARANTINE_PAYLOAD_BYTES. Returns (stored,
        duplicates): a segment_id already present is kept as it was (at-least-once delivery:
        the first copy wins); any other failure (a NOT NULL or CHECK violation) raises and
        nothing is written. When this returns, it is durable.
        """
        now_ms = int(time.time() * 1000) if now_ms is None else int(now_ms)
        rows = [segment_row(msg, topic, now_ms) for msg, topic in segments]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                before = self._db.total_changes
                # ON CONFLICT names the one conflict that is a duplicate; OR IGNORE would also
                # swallow a NOT NULL violation (a NaN stored as NULL) and call it a duplicate.
                self._db.executemany(
                    f"INSERT INTO segments ({_SEGMENT_COLUMNS}) VALUES ({', '.join('?' * 23)})"
                    " ON CONFLICT(segment_id) DO NOTHING", rows
                )
                stored = self._db.total_changes - before
                if quarantined:
                    self._db.executemany(
                        "INSERT INTO quarantine (received_ms, topic, reason, payload, size) VALUES (?, ?, ?, ?, ?)",
                        [(now_ms, t[:_REASON_CHARS], r[:_REASON_CHARS], bytes(p[:QUARANTINE_PAYLOAD_BYTES]), len(p))
                         for t, r, p in quarantined],
                    )
                duplicates = len(rows) - stored
                for name, delta in (("received", len(rows) + len(quarantined)), ("stored", stored),
                                    ("duplicates", duplicates), ("quarantined", len(quarantined))):
                    if delta:
                        self._db.execute("UPDATE counters SET value = value + ? WHERE name = ?", (delta, name))
                self._db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
        return stored, duplicates

    def counters(self) -> dict[str, int]:
        with self._lock:
            return {n: int(v) for n, v in self._db.execute("SELECT name, value FROM counters")}

    def quarantine(self, limit: int = 100) -> list[tuple[str, str, bytes]]:
        """The newest quarantined messages: (topic, reason, payload prefix)."""
        return [(t, r, p) for t, r, p, _ in self.quarantine_rows(limit)]

    def quarantine_rows(self, limit: int = 100) -> list[tuple[str, str, bytes, int]]:
        """The newest quarantined messages: (topic, reason, payload prefix, full payload bytes)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT topic, reason, payload, size FROM quarantine ORDER BY id DESC LIMIT ?", (int(limit),)
            ).fetchall()
        return [(t, r, bytes(p), int(n)) for t, r, p, n in rows]

    # -- devices ---------------------------------------------------------------------------------------
    def record_states(self, states: Sequence[StateMessage], now_ms: int | None = None) -> int:
        """Keep the newest of each device's validated `laps.state/1` messages (by their own
        `time`; a retained message delivered again changes nothing). Returns rows changed."""
        now_ms = int(time.time() * 1000) if now_ms is None else int(now_ms)
        rows = [(m.site, m.device_id, m.state, m.detail[:_REASON_CHARS], m.model_version[:_REASON_CHARS],
                 m.boot_id[:_REASON_CHARS], m.time, now_ms)
                for m in states]
        with self._lock:
            before = self._db.total_changes
            self._db.executemany(
                "INSERT INTO device_states (site, device_id, state, detail, model_version, boot_id, time_utc,"
                " received_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(site, device_id) DO UPDATE SET"
                " state = excluded.state, detail = excluded.detail, model_version = excluded.model_version,"
                " boot_id = excluded.boot_id, time_utc = excluded.time_utc, received_ms = excluded.received_ms"
                " WHERE excluded.time_utc >= device_states.time_utc", rows)
            return self._db.total_changes - before

    def device_summary(self) -> list[DeviceSummary]:
        """Per device (site, device id), what the store knows: its newest state, segments,
        batches and quarantined messages, and when central last heard from it. Sorted by site
        and device. Quarantined messages whose topic names no device are under site "?"."""
        out: dict[tuple[str, str], dict] = {}

        def row(site: str, device: str) -> dict:
            return out.setdefault((site, device), {"site": site, "device_id": device})

        with self._lock:
            for site, dev, n, last_ms, last_end in self._db.execute(
                    "SELECT site, device_id, COUNT(*), MAX(received_ms), MAX(end_ms) FROM segments"
                    " GROUP BY site, device_id"):
                row(site, dev).update(segments=int(n), last_segment_ms=int(last_ms), last_segment_end_ms=int(last_end))
            for site, dev, n, last_ms, files in self._db.execute(
                    "SELECT site, device_id, COUNT(*), MAX(received_ms), SUM(n_files) FROM batches"
                    " GROUP BY site, device_id"):
                row(site, dev).update(batches=int(n), last_batch_ms=int(last_ms), media_files=int(files or 0))
            for topic, n, last_ms in self._db.execute(
                    "SELECT topic, COUNT(*), MAX(received_ms) FROM quarantine GROUP BY topic"):
                parts = topic.split("/")
                site, dev = (parts[2], parts[3]) if len(parts) >= 5 and parts[:2] == ["laps", "v1"] else ("?", "?")
                r = row(site, dev)
                r["quarantined"] = r.get("quarantined", 0) + int(n)
                r["last_quarantined_ms"] = max(r.get("last_quarantined_ms", 0), int(last_ms))
            for site, dev, state, detail, model, boot, t_utc, rec_ms in self._db.execute(
                    "SELECT site, device_id, state, detail, model_version, boot_id, time_utc, received_ms"
                    " FROM device_states"):
                row(site, dev).update(state=state, state_detail=detail, state_time=t_utc, model_version=model,
                                      boot_id=boot, last_state_ms=int(rec_ms))
        return [DeviceSummary.from_row(r) for _, r in sorted(out.items())]

    # -- batches and media ----------------------------------------------------------------------------
    def has_batch(self, device_id: str, sha256: str) -> bool:
        with self._lock:
            row = self._db.execute("SELECT 1 FROM batches WHERE device_id = ? AND sha256 = ?", (device_id, sha256)).fetchone()
        return row is not None

    def add_batch(self, device_id: str, site: str, sha256: str, size: int, files: Sequence[MediaFile],
                  now_ms: int | None = None) -> bool:
        """Record a received batch and its unpacked files in one transaction.
        Returns False when the batch was already recorded (nothing changes)."""
        now_ms = int(time.time() * 1000) if now_ms is None else int(now_ms)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                cur = self._db.execute(
                    "INSERT OR IGNORE INTO batches (device_id, sha256, site, received_ms, size, n_segments, n_files)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (device_id, sha256, site, now_ms, int(size), len({f.segment_id for f in files}), len(files)),
                )
                if cur.rowcount == 0:
                    self._db.execute("ROLLBACK")
                    return False
                self._db.executemany(
                    "INSERT OR REPLACE INTO media (segment_id, path, kind, frame, sha256, size, device_id, batch_sha256)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [(f.segment_id, f.path, f.kind, f.frame, f.sha256, f.size, device_id, sha256) for f in files],
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
        return True

    def segment_devices(self, segment_ids: Iterable[str]) -> dict[str, str]:
        """segment_id -> the device that sent it, for those of `segment_ids` that are stored."""
        out: dict[str, str] = {}
        with self._lock:
            for chunk in _chunks(list(segment_ids), 500):
                out.update(self._db.execute(
                    f"SELECT segment_id, device_id FROM segments WHERE segment_id IN ({', '.join('?' * len(chunk))})",
                    chunk).fetchall())
        return out

    def media_sha256(self, segment_id: str, path: str) -> str | None:
        """The sha256 of a media file already recorded for (segment_id, path), or None."""
        with self._lock:
            row = self._db.execute("SELECT sha256 FROM media WHERE segment_id = ? AND path = ?",
                                   (segment_id, path)).fetchone()
        return row[0] if row else None

    def media(self, segment_ids: Iterable[str]) -> dict[str, list[MediaFile]]:
        """Files linked to each of `segment_ids` (keyframes by frame, then the clip). Once a
        segment is stored, only files uploaded by the device that sent it."""
        ids = list(segment_ids)
        out: dict[str, list[MediaFile]] = {i: [] for i in ids}
        with self._lock:
            for chunk in _chunks(ids, 500):
                rows = self._db.execute(
                    f"SELECT m.segment_id, m.path, m.kind, m.frame, m.sha256, m.size FROM media m LEFT JOIN segments s"
                    f" ON s.segment_id = m.segment_id WHERE (s.segment_id IS NULL OR s.device_id = m.device_id)"
                    f" AND m.segment_id IN ({', '.join('?' * len(chunk))}) ORDER BY m.segment_id, m.kind DESC, m.frame, m.path",
                    chunk,
                ).fetchall()
                for r in rows:
                    out[r[0]].append(MediaFile(*r))
        return out

    def link_counts(self) -> dict[str, int]:
        """Media files whose segment is stored ('linked') and those still waiting for it."""
        with self._lock:
            linked = self._db.execute(
                "SELECT COUNT(*) FROM media m JOIN segments s ON s.segment_id = m.segment_id"
                " AND s.device_id = m.device_id").fetchone()[0]
            total = self._db.execute("SELECT COUNT(*) FROM media").fetchone()[0]
        return {"linked": int(linked), "waiting_for_segment": int(total - linked)}

    # -- reading segments -------------------------------------------------------------------------------
    def count(self, selection: Selection | None = None) -> int:
        where, args = (selection or Selection()).where()
        with self._lock:
            return int(self._db.execute(f"SELECT COUNT(*) FROM segments{where}", args).fetchone()[0])

    def model_versions(self, selection: Selection | None = None) -> dict[str, int]:
        """Segments per model version in the selection, most first."""
        where, args = (selection or Selection()).where()
        with self._lock:
            rows = self._db.execute(
                f"SELECT model_version, COUNT(*) FROM segments{where} GROUP BY model_version ORDER BY 2 DESC, 1", args
            ).fetchall()
        return {v: int(n) for v, n in rows}

    def iter_segments(self, selection: Selection | None = None, chunk: int = 5000) -> Iterator[list[StoredSegment]]:
        """The selected segments in (start_ms, segment_id) order, `chunk` at a time (bounded
        memory: a keyset cursor, not OFFSET)."""
        where, args = (selection or Selection()).where()
        last: tuple[int, str] | None = None
        while True:
            clause = where
            extra: list = []
            if last is not None:
                clause = (where + " AND " if where else " WHERE ") + "(start_ms, segment_id) > (?, ?)"
                extra = [last[0], last[1]]
            with self._lock:
                rows = self._db.execute(
                    f"SELECT {_SEGMENT_COLUMNS} FROM segments{clause} ORDER BY start_ms, segment_id LIMIT ?",
                    args + extra + [int(chunk)],
                ).fetchall()
            if not rows:
                return
            yield [_segment_from_row(r) for r in rows]
            last = (rows[-1][8], rows[-1][0])

    def segments(self, selection: Selection | None = None) -> list[StoredSegment]:
        return [s for chunk in self.iter_segments(selection) for s in chunk]

    def segment_ids(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT segment_id FROM segments ORDER BY start_ms, segment_id")]

    # -- cluster runs -------------------------------------------------------------------------------------
    def save_cluster_run(self, run_id: str, *, model_version: str, method: str, k: int, params: dict,
                         metrics: dict, assignments: Iterable[tuple[str, int, float]]) -> int:
        """Record a clustering run and its (segment_id, cluster, distance) rows; returns rows written."""
        created = datetime.now().astimezone().isoformat(timespec="seconds")
        n = 0
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for chunk in _chunks(assignments, 10000):
                    self._db.executemany(
                        "INSERT OR REPLACE INTO cluster_assignments (run_id, segment_id, cluster, distance) VALUES (?, ?, ?, ?)",
                        [(run_id, s, int(c), float(d)) for s, c, d in chunk],
                    )
                    n += len(chunk)
                self._db.execute(
                    "INSERT OR REPLACE INTO cluster_runs (run_id, created, model_version, method, k, n_segments, params, metrics)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (run_id, created, model_version, method, int(k), n, json.dumps(params), json.dumps(_finite(metrics))),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
        return n

    def cluster_runs(self) -> list[dict]:
        """Every run, newest first: run_id, created, model_version, method, k, n_segments, params, metrics."""
        with self._lock:
            rows = self._db.execute(
                "SELECT run_id, created, model_version, method, k, n_segments, params, metrics FROM cluster_runs"
                " ORDER BY created DESC, rowid DESC"
            ).fetchall()
        return [
            {"run_id": r[0], "created": r[1], "model_version": r[2], "method": r[3], "k": r[4], "n_segments": r[5],
             "params": json.loads(r[6]), "metrics": json.loads(r[7])}
            for r in rows
        ]

    def assignments(self, run_id: str, segment_ids: Sequence[str]) -> dict[str, tuple[int, float]]:
        """segment_id -> (cluster, distance) for the given run (segments outside it are absent)."""
        out: dict[str, tuple[int, float]] = {}
        with self._lock:
            for chunk in _chunks(list(segment_ids), 500):
                for sid, c, d in self._db.execute(
                    f"SELECT segment_id, cluster, distance FROM cluster_assignments WHERE run_id = ? AND segment_id IN "
                    f"({', '.join('?' * len(chunk))})", [run_id, *chunk],
                ):
                    out[sid] = (int(c), float(d))
        return out

    def run_members(self, run_id: str) -> list["RunMember"]:
        """Every segment of a clustering run with its cluster, distance, device and duration,
        ordered by cluster, then distance (the most central first). Segments deleted from the
        store since the run are left out."""
        with self._lock:
            rows = self._db.execute(
                "SELECT a.segment_id, a.cluster, a.distance, s.site, s.device_id, s.start_utc,"
                " (s.end_frame - s.start_frame) / s.fps FROM cluster_assignments a JOIN segments s"
                " ON s.segment_id = a.segment_id WHERE a.run_id = ? ORDER BY a.cluster, a.distance, a.segment_id",
                (run_id,)).fetchall()
        return [RunMember(r[0], int(r[1]), float(r[2]), r[3], r[4], r[5], float(r[6])) for r in rows]

    def segment(self, segment_id: str) -> StoredSegment | None:
        """One stored segment, None when the store has none with this id."""
        with self._lock:
            row = self._db.execute(f"SELECT {_SEGMENT_COLUMNS} FROM segments WHERE segment_id = ?",
                                   (segment_id,)).fetchone()
        return _segment_from_row(row) if row is not None else None

    def recent_segment_counts(self, since_ms: int) -> dict[tuple[str, str], int]:
        """(site, device_id) -> segments central received at or after `since_ms` (Unix ms, central's
        clock: a device with a wrong clock still shows its true rate)."""
        with self._lock:
            return {(site, dev): int(n) for site, dev, n in self._db.execute(
                "SELECT site, device_id, COUNT(*) FROM segments WHERE received_ms >= ? GROUP BY site, device_id",
                (int(since_ms),))}

    # -- internals --------------------------------------------------------------------------------------
    def _migrate(self) -> None:
        """Bring a store written by an older release up to SCHEMA_VERSION (additive changes only)."""
        segment_columns = {row[1] for row in self._db.execute("PRAGMA table_info(segments)")}
        for name, kind in _PRIMITIVE_COLUMNS:  # schema 4: the device's primitive label
            if name not in segment_columns:
                try:
                    self._db.execute(f"ALTER TABLE segments ADD COLUMN {name} {kind}")
                except sqlite3.OperationalError as err:  # another process migrated it first
                    if "duplicate column" not in str(err):
                        raise
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(quarantine)")}
        if "size" not in columns:
            try:
                self._db.execute("ALTER TABLE quarantine ADD COLUMN size INTEGER NOT NULL DEFAULT 0")
            except sqlite3.OperationalError as err:  # another process migrated it first
                if "duplicate column" not in str(err):
                    raise
        self._db.execute("UPDATE meta SET value = ? WHERE name = 'schema_version' AND CAST(value AS INTEGER) < ?",
                         (str(SCHEMA_VERSION), SCHEMA_VERSION))

    def _rollback(self) -> None:
        try:
            self._db.execute("ROLLBACK")
        except sqlite3.Error:
            pass


def segment_row(msg: SegmentMessage, topic: str, received_ms: int) -> tuple:
    """The `segments` row of a validated segment message (laps.segment/1 or /2)."""
    codes = np.asarray(msg.codes, dtype="<u4")
    keyframes = [{"frame": k.frame, "file": k.file} for k in msg.keyframes]
    return (
        msg.segment_id, msg.site, msg.device_id, msg.model_version, msg.boot_id, int(msg.seq),
        msg.start_utc, msg.end_utc, iso_to_ms(msg.start_utc), iso_to_ms(msg.end_utc),
        int(msg.start_frame), int(msg.end_frame), float(msg.fps), int(codes.size), codes.tobytes(),
        float(msg.energy_mean), float(msg.energy_max),
        json.dumps(keyframes, separators=(",", ":")), topic, int(received_ms),
        *((msg.primitive.library, int(msg.primitive.cluster), float(msg.primitive.distance))
          if msg.primitive is not None else (None, None, None)),
    )


def iso_to_ms(text: str) -> int:
    """ISO-8601 UTC ('...Z' or with an offset) -> Unix milliseconds."""
    return int(round(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000))


def ms_to_iso(ms: int) -> str:
    from datetime import timezone

    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _segment_from_row(r: tuple) -> StoredSegment:
    return StoredSegment(
        segment_id=r[0], site=r[1], device_id=r[2], model_version=r[3], boot_id=r[4], seq=int(r[5]),
        start_utc=r[6], end_utc=r[7], start_ms=int(r[8]), end_ms=int(r[9]), start_frame=int(r[10]),
        end_frame=int(r[11]), fps=float(r[12]), codes=np.frombuffer(r[14], dtype="<u4").astype(np.int64),
        energy_mean=float(r[15]), energy_max=float(r[16]), keyframes=json.loads(r[17]),
        primitive=PrimitiveLabel(r[20], int(r[21]), float(r[22])) if r[20] is not None else None,
    )


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    chunk: list = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _finite(obj):
    """JSON cannot hold NaN/inf portably: write them as null."""
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj
