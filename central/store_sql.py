"""What both central store backends share: the records, the versioned schema, every query, and
the row <-> record conversions. `central.store.Store` (SQLite) and
`central.store_postgres.PostgresStore` (PostgreSQL) derive from `SqlStore` and supply only a
connection: how to run a statement, a transaction, and the dialect's column types.

Tables
    meta                 name -> value; 'schema_version' is the version table the migrations keep
    segments             one row per segment_id (the de-duplication key); codes as bytes of
                         little-endian uint32; times as ISO-8601 text and as Unix milliseconds
                         (indexed, for time-range selections); the device's primitive label
                         (primitive_library, primitive_cluster, primitive_distance; NULL when
                         the device carried no library; schema 4); its motion summary
                         (motion: MOTION_DIM float16 values as bytes, NULL when it sent none;
                         schema 5)
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

Schema versions: a new store gets the baseline tables (version BASELINE_VERSION), then every
entry of MIGRATIONS in order; an existing store gets the entries newer than its version. All of
it runs in one transaction under the backend's schema lock (several ingest processes may open a
store at once), and `meta.schema_version` moves with it. Adding a column later is ONE new entry:

    Migration(5, "segments.roi: the region of interest", ("ALTER TABLE segments ADD COLUMN roi {text} NOT NULL DEFAULT ''",))

(written once with the dialect's type words `{int}`, `{real}`, `{text}`, `{blob}`; both backends run it),
plus the column in SEGMENT_COLUMNS, `segment_row` and `_segment_from_row`. A store written by a
NEWER release (a version above SCHEMA_VERSION) is refused with a one-line error rather than
written by code that does not know its columns.

Every query is written once here with `?` placeholders (the PostgreSQL backend turns them into
`%s`) in SQL both engines accept: ON CONFLICT for de-duplication and upserts, row-value
comparisons for keyset paging.
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Iterator, Protocol, Sequence

import numpy as np

from edge.errors import LapsError
from edge.messages import SegmentMessage, StateMessage
from edge.motion_summary import motion_bytes, motion_from_bytes
from edge.segments import PrimitiveLabel

#: the schema every store starts from (the SQLite store's version 3, the last one before migrations were listed)
BASELINE_VERSION = 3
#: a quarantined payload keeps this many leading bytes (and its full size)
QUARANTINE_PAYLOAD_BYTES = 4096
_REASON_CHARS = 1000
COUNTERS = ("received", "stored", "duplicates", "quarantined")


class StoreUnavailableError(LapsError):
    """The store cannot be reached or cannot commit right now (disk full, I/O error, server
    gone, connection lost): nothing was written; the same call may succeed later."""


class StoreSchemaError(LapsError):
    """The store was written by a newer release (its schema version is above ours)."""


@dataclass(frozen=True)
class Migration:
    """One schema step: `version` (consecutive after BASELINE_VERSION), what it changes (for the
    log), and its statements with the dialect's type words ({int}, {real}, {text}, {blob})."""

    version: int
    description: str
    statements: tuple[str, ...]


#: schema steps after the baseline, oldest first (see the module docstring)
MIGRATIONS: tuple[Migration, ...] = (
    Migration(4, "segments.primitive_*: the device's primitive label (laps.segment/2), NULL when it sent none",
              ("ALTER TABLE segments ADD COLUMN primitive_library {text}",
               "ALTER TABLE segments ADD COLUMN primitive_cluster {int}",
               "ALTER TABLE segments ADD COLUMN primitive_distance {real}")),
    Migration(5, "segments.motion: the device's motion summary (edge.motion_summary), NULL when it sent none",
              ("ALTER TABLE segments ADD COLUMN motion {blob}",)),
)
SCHEMA_VERSION = BASELINE_VERSION + len(MIGRATIONS)

# The baseline, in the dialect's type words: {int} 64-bit integer, {real} double, {text} text
# compared byte-wise (SQLite's BINARY, PostgreSQL's "C": one order on both), {blob} bytes,
# {serial} an auto-numbered integer primary key, {rowid} PostgreSQL's stand-in for SQLite's
# implicit rowid (insertion order of the runs).
BASELINE_TABLES = (
    """CREATE TABLE IF NOT EXISTS segments (
    segment_id    {text} PRIMARY KEY,
    site          {text} NOT NULL,
    device_id     {text} NOT NULL,
    model_version {text} NOT NULL,
    boot_id       {text} NOT NULL,
    seq           {int} NOT NULL,
    start_utc     {text} NOT NULL,
    end_utc       {text} NOT NULL,
    start_ms      {int} NOT NULL,
    end_ms        {int} NOT NULL,
    start_frame   {int} NOT NULL,
    end_frame     {int} NOT NULL,
    fps           {real} NOT NULL,
    n_codes       {int} NOT NULL,
    codes         {blob} NOT NULL,
    energy_mean   {real} NOT NULL,
    energy_max    {real} NOT NULL,
    keyframes     {text} NOT NULL,
    topic         {text} NOT NULL,
    received_ms   {int} NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS segments_time ON segments (start_ms)",
    "CREATE INDEX IF NOT EXISTS segments_station ON segments (site, device_id, start_ms)",
    "CREATE INDEX IF NOT EXISTS segments_model ON segments (model_version)",
    """CREATE TABLE IF NOT EXISTS quarantine (
    id          {serial},
    received_ms {int} NOT NULL,
    topic       {text} NOT NULL,
    reason      {text} NOT NULL,
    payload     {blob} NOT NULL,
    size        {int} NOT NULL DEFAULT 0
)""",
    """CREATE TABLE IF NOT EXISTS batches (
    device_id   {text} NOT NULL,
    sha256      {text} NOT NULL,
    site        {text} NOT NULL,
    received_ms {int} NOT NULL,
    size        {int} NOT NULL,
    n_segments  {int} NOT NULL,
    n_files     {int} NOT NULL,
    PRIMARY KEY (device_id, sha256)
)""",
    """CREATE TABLE IF NOT EXISTS media (
    segment_id   {text} NOT NULL,
    path         {text} NOT NULL,
    kind         {text} NOT NULL,
    frame        {int},
    sha256       {text} NOT NULL,
    size         {int} NOT NULL,
    device_id    {text} NOT NULL,
    batch_sha256 {text} NOT NULL,
    PRIMARY KEY (segment_id, path)
)""",
    """CREATE TABLE IF NOT EXISTS cluster_runs (
    {rowid}run_id        {text} PRIMARY KEY,
    created       {text} NOT NULL,
    model_version {text} NOT NULL,
    method        {text} NOT NULL,
    k             {int} NOT NULL,
    n_segments    {int} NOT NULL,
    params        {text} NOT NULL,
    metrics       {text} NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS cluster_assignments (
    run_id     {text} NOT NULL,
    segment_id {text} NOT NULL,
    cluster    {int} NOT NULL,
    distance   {real} NOT NULL,
    PRIMARY KEY (run_id, segment_id)
)""",
    "CREATE TABLE IF NOT EXISTS counters (name {text} PRIMARY KEY, value {int} NOT NULL)",
    """CREATE TABLE IF NOT EXISTS device_states (
    site          {text} NOT NULL,
    device_id     {text} NOT NULL,
    state         {text} NOT NULL,
    detail        {text} NOT NULL,
    model_version {text} NOT NULL,
    boot_id       {text} NOT NULL,
    time_utc      {text} NOT NULL,
    received_ms   {int} NOT NULL,
    PRIMARY KEY (site, device_id)
)""",
)

SEGMENT_COLUMNS = (
    "segment_id, site, device_id, model_version, boot_id, seq, start_utc, end_utc, start_ms, end_ms, "
    "start_frame, end_frame, fps, n_codes, codes, energy_mean, energy_max, keyframes, topic, received_ms, "
    "primitive_library, primitive_cluster, primitive_distance, motion"
)
_N_SEGMENT_COLUMNS = SEGMENT_COLUMNS.count(",") + 1


# -- records -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StoredSegment:
    """One segment as stored. Times: ISO-8601 UTC text and Unix ms; frames at `fps`, end
    exclusive; codes (S,) int64 FSQ codes; keyframes [{"frame", "file"}] as sent; primitive:
    the device's primitive-library label, None when it sent none; motion: its motion summary
    ((MOTION_DIM,) float32, `edge.motion_summary`), None when it sent none."""

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
    motion: np.ndarray | None = field(default=None, repr=False)

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


# -- the shared implementation ------------------------------------------------------------------------
class Transaction(Protocol):
    """One open transaction of a backend (statements with `?` placeholders)."""

    def execute(self, sql: str, args: Sequence = ()) -> int:
        """Run one statement; the rows it changed."""

    def executemany(self, sql: str, rows: Sequence[Sequence]) -> int:
        """Run one statement per row; the rows changed in all."""

    def query(self, sql: str, args: Sequence = ()) -> list[tuple]:
        """Run one statement; every row it returns."""

    def insert_many(self, table: str, columns: Sequence[str], rows: Sequence[Sequence]) -> int:
        """Append rows to a table (no conflict handling) the backend's fastest way; rows written."""


class SqlStore(ABC):
    """Every store operation, written once over a backend's connection (see the module docstring).

    A backend sets `location` (the file, or the URL without its password: for messages),
    `scratch_dir` (a folder for large temporary files beside the store, None = the system's),
    `TYPES` (the dialect's words for the schema), and implements `_transaction` (a context
    manager that commits at the end of the block and rolls back on an exception), `_query`
    (a read outside any transaction of ours), `_schema_lock` (taken inside the transaction that
    migrates) and `close`. Both raise `StoreUnavailableError` when the store cannot be reached
    or cannot commit; every other error means the statement or its data is at fault.
    """

    TYPES: dict[str, str]
    location: str
    scratch_dir: Path | None

    @abstractmethod
    def _transaction(self) -> AbstractContextManager[Transaction]: ...

    @abstractmethod
    def _query(self, sql: str, args: Sequence = ()) -> list[tuple]: ...

    @abstractmethod
    def _schema_lock(self, tx: Transaction) -> None: ...

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def size_bytes(self) -> int:
        """Bytes the store takes on disk (its files, or its database)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- schema --------------------------------------------------------------------------------------
    def schema_version(self) -> int:
        rows = self._query("SELECT value FROM meta WHERE name = 'schema_version'")
        return int(rows[0][0]) if rows else 0

    def _migrate(self) -> None:
        """Create the schema, or bring an older one up to SCHEMA_VERSION, in one transaction."""
        with self._transaction() as tx:
            self._schema_lock(tx)
            tx.execute(self._ddl("CREATE TABLE IF NOT EXISTS meta (name {text} PRIMARY KEY, value {text} NOT NULL)"))
            rows = tx.query("SELECT value FROM meta WHERE name = 'schema_version'")
            found = int(rows[0][0]) if rows else None
            if found is not None and found > SCHEMA_VERSION:
                raise StoreSchemaError(
                    f"store {self.location} has schema version {found}, newer than this release's {SCHEMA_VERSION}; "
                    "upgrade laps-edge on this host to the release that wrote it")
            if found is None or found < BASELINE_VERSION:
                for statement in BASELINE_TABLES:
                    tx.execute(self._ddl(statement))
                self._upgrade_legacy(tx)
                found = BASELINE_VERSION
            for step in MIGRATIONS:
                if step.version > found:
                    for statement in step.statements:
                        tx.execute(self._ddl(statement))
                    found = step.version
            tx.execute("INSERT INTO meta (name, value) VALUES ('schema_version', ?) ON CONFLICT (name) DO UPDATE"
                       " SET value = excluded.value", (str(found),))
            tx.executemany("INSERT INTO counters (name, value) VALUES (?, 0) ON CONFLICT (name) DO NOTHING",
                           [(name,) for name in COUNTERS])

    def _upgrade_legacy(self, tx: Transaction) -> None:
        """Bring a store older than the baseline up to it (the backend knows its old layouts)."""

    def _ddl(self, statement: str) -> str:
        return statement.format(**self.TYPES)

    # -- ingest --------------------------------------------------------------------------------------
    def ingest(self, segments: Sequence[tuple[SegmentMessage, str]], quarantined: Sequence[tuple[str, str, bytes]],
               now_ms: int | None = None) -> tuple[int, int]:
        """Insert validated segment messages and quarantine rows in ONE transaction.

        segments: (validated laps.segment/1 message, topic). quarantined: (topic, reason,
        payload); the payload is kept up to QUARANTINE_PAYLOAD_BYTES. Returns (stored,
        duplicates): a segment_id already present is kept as it was (at-least-once delivery:
        the first copy wins); any other failure (a NOT NULL or CHECK violation) raises and
        nothing is written. When this returns, it is durable.
        """
        now_ms = int(time.time() * 1000) if now_ms is None else int(now_ms)
        # Sorted by id: two writers inserting overlapping batches lock rows in one order (no deadlock).
        rows = sorted((segment_row(msg, topic, now_ms) for msg, topic in segments), key=lambda r: r[0])
        with self._transaction() as tx:
            # ON CONFLICT names the one conflict that is a duplicate; a blanket "ignore" would also
            # swallow a NOT NULL violation (a NaN stored as NULL) and call it a duplicate.
            stored = tx.executemany(
                f"INSERT INTO segments ({SEGMENT_COLUMNS}) VALUES ({', '.join('?' * _N_SEGMENT_COLUMNS)})"
                " ON CONFLICT (segment_id) DO NOTHING", rows) if rows else 0
            if quarantined:
                tx.executemany(
                    "INSERT INTO quarantine (received_ms, topic, reason, payload, size) VALUES (?, ?, ?, ?, ?)",
                    [(now_ms, _text(t), _text(r), bytes(p[:QUARANTINE_PAYLOAD_BYTES]), len(p)) for t, r, p in quarantined],
                )
            duplicates = len(rows) - stored
            # Counters last: they are the rows every writer updates, so they are held the shortest.
            for name, delta in (("received", len(rows) + len(quarantined)), ("stored", stored),
                                ("duplicates", duplicates), ("quarantined", len(quarantined))):
                if delta:
                    tx.execute("UPDATE counters SET value = value + ? WHERE name = ?", (delta, name))
        return stored, duplicates

    def counters(self) -> dict[str, int]:
        return {n: int(v) for n, v in self._query("SELECT name, value FROM counters")}

    def quarantine(self, limit: int = 100) -> list[tuple[str, str, bytes]]:
        """The newest quarantined messages: (topic, reason, payload prefix)."""
        return [(t, r, p) for t, r, p, _ in self.quarantine_rows(limit)]

    def quarantine_rows(self, limit: int = 100) -> list[tuple[str, str, bytes, int]]:
        """The newest quarantined messages: (topic, reason, payload prefix, full payload bytes)."""
        rows = self._query("SELECT topic, reason, payload, size FROM quarantine ORDER BY id DESC LIMIT ?", (int(limit),))
        return [(t, r, bytes(p), int(n)) for t, r, p, n in rows]

    # -- devices ---------------------------------------------------------------------------------------
    def record_states(self, states: Sequence[StateMessage], now_ms: int | None = None) -> int:
        """Keep the newest of each device's validated `laps.state/1` messages (by their own
        `time`; a retained message delivered again changes nothing). Returns rows changed."""
        now_ms = int(time.time() * 1000) if now_ms is None else int(now_ms)
        rows = sorted((m.site, m.device_id, m.state, _text(m.detail), _text(m.model_version), _text(m.boot_id), m.time,
                       now_ms) for m in states)
        if not rows:
            return 0
        with self._transaction() as tx:
            return tx.executemany(
                "INSERT INTO device_states (site, device_id, state, detail, model_version, boot_id, time_utc,"
                " received_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (site, device_id) DO UPDATE SET"
                " state = excluded.state, detail = excluded.detail, model_version = excluded.model_version,"
                " boot_id = excluded.boot_id, time_utc = excluded.time_utc, received_ms = excluded.received_ms"
                " WHERE excluded.time_utc >= device_states.time_utc", rows)

    def device_summary(self) -> list[DeviceSummary]:
        """Per device (site, device id), what the store knows: its newest state, segments,
        batches and quarantined messages, and when central last heard from it. Sorted by site
        and device. Quarantined messages whose topic names no device are under site "?"."""
        out: dict[tuple[str, str], dict] = {}

        def row(site: str, device: str) -> dict:
            return out.setdefault((site, device), {"site": site, "device_id": device})

        for site, dev, n, last_ms, last_end in self._query(
                "SELECT site, device_id, COUNT(*), MAX(received_ms), MAX(end_ms) FROM segments GROUP BY site, device_id"):
            row(site, dev).update(segments=int(n), last_segment_ms=int(last_ms), last_segment_end_ms=int(last_end))
        for site, dev, n, last_ms, files in self._query(
                "SELECT site, device_id, COUNT(*), MAX(received_ms), SUM(n_files) FROM batches GROUP BY site, device_id"):
            row(site, dev).update(batches=int(n), last_batch_ms=int(last_ms), media_files=int(files or 0))
        for topic, n, last_ms in self._query("SELECT topic, COUNT(*), MAX(received_ms) FROM quarantine GROUP BY topic"):
            parts = topic.split("/")
            site, dev = (parts[2], parts[3]) if len(parts) >= 5 and parts[:2] == ["laps", "v1"] else ("?", "?")
            r = row(site, dev)
            r["quarantined"] = r.get("quarantined", 0) + int(n)
            r["last_quarantined_ms"] = max(r.get("last_quarantined_ms", 0), int(last_ms))
        for site, dev, state, detail, model, boot, t_utc, rec_ms in self._query(
                "SELECT site, device_id, state, detail, model_version, boot_id, time_utc, received_ms FROM device_states"):
            row(site, dev).update(state=state, state_detail=detail, state_time=t_utc, model_version=model,
                                  boot_id=boot, last_state_ms=int(rec_ms))
        return [DeviceSummary.from_row(r) for _, r in sorted(out.items())]

    # -- batches and media ----------------------------------------------------------------------------
    def has_batch(self, device_id: str, sha256: str) -> bool:
        return bool(self._query("SELECT 1 FROM batches WHERE device_id = ? AND sha256 = ?", (device_id, sha256)))

    def add_batch(self, device_id: str, site: str, sha256: str, size: int, files: Sequence[MediaFile],
                  now_ms: int | None = None) -> bool:
        """Record a received batch and its unpacked files in one transaction.
        Returns False when the batch was already recorded (nothing changes): of two hosts
        receiving one batch at once, one records it and the other answers "already"."""
        now_ms = int(time.time() * 1000) if now_ms is None else int(now_ms)
        with self._transaction() as tx:
            created = tx.execute(
                "INSERT INTO batches (device_id, sha256, site, received_ms, size, n_segments, n_files)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (device_id, sha256) DO NOTHING",
                (device_id, sha256, site, now_ms, int(size), len({f.segment_id for f in files}), len(files)),
            )
            if created and files:
                tx.executemany(
                    "INSERT INTO media (segment_id, path, kind, frame, sha256, size, device_id, batch_sha256)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (segment_id, path) DO UPDATE SET kind = excluded.kind,"
                    " frame = excluded.frame, sha256 = excluded.sha256, size = excluded.size,"
                    " device_id = excluded.device_id, batch_sha256 = excluded.batch_sha256",
                    sorted((f.segment_id, f.path, f.kind, f.frame, f.sha256, f.size, device_id, sha256) for f in files),
                )
        return bool(created)

    def segment_devices(self, segment_ids: Iterable[str]) -> dict[str, str]:
        """segment_id -> the device that sent it, for those of `segment_ids` that are stored."""
        out: dict[str, str] = {}
        for chunk in _chunks(list(segment_ids), 500):
            out.update(self._query(
                f"SELECT segment_id, device_id FROM segments WHERE segment_id IN ({', '.join('?' * len(chunk))})", chunk))
        return out

    def media_sha256(self, segment_id: str, path: str) -> str | None:
        """The sha256 of a media file already recorded for (segment_id, path), or None."""
        rows = self._query("SELECT sha256 FROM media WHERE segment_id = ? AND path = ?", (segment_id, path))
        return rows[0][0] if rows else None

    def media(self, segment_ids: Iterable[str]) -> dict[str, list[MediaFile]]:
        """Files linked to each of `segment_ids` (keyframes by frame, then the clip). Once a
        segment is stored, only files uploaded by the device that sent it."""
        ids = list(segment_ids)
        out: dict[str, list[MediaFile]] = {i: [] for i in ids}
        for chunk in _chunks(ids, 500):
            rows = self._query(
                f"SELECT m.segment_id, m.path, m.kind, m.frame, m.sha256, m.size FROM media m LEFT JOIN segments s"
                f" ON s.segment_id = m.segment_id WHERE (s.segment_id IS NULL OR s.device_id = m.device_id)"
                f" AND m.segment_id IN ({', '.join('?' * len(chunk))}) ORDER BY m.segment_id, m.kind DESC, m.frame, m.path",
                chunk,
            )
            for r in rows:
                out[r[0]].append(MediaFile(r[0], r[1], r[2], None if r[3] is None else int(r[3]), r[4], int(r[5])))
        return out

    def link_counts(self) -> dict[str, int]:
        """Media files whose segment is stored ('linked') and those still waiting for it."""
        linked = self._query("SELECT COUNT(*) FROM media m JOIN segments s ON s.segment_id = m.segment_id"
                             " AND s.device_id = m.device_id")[0][0]
        total = self._query("SELECT COUNT(*) FROM media")[0][0]
        return {"linked": int(linked), "waiting_for_segment": int(total - linked)}

    # -- reading segments -------------------------------------------------------------------------------
    def count(self, selection: Selection | None = None) -> int:
        where, args = (selection or Selection()).where()
        return int(self._query(f"SELECT COUNT(*) FROM segments{where}", args)[0][0])

    def model_versions(self, selection: Selection | None = None) -> dict[str, int]:
        """Segments per model version in the selection, most first."""
        where, args = (selection or Selection()).where()
        rows = self._query(f"SELECT model_version, COUNT(*) FROM segments{where} GROUP BY model_version"
                           " ORDER BY 2 DESC, 1", args)
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
            rows = self._query(f"SELECT {SEGMENT_COLUMNS} FROM segments{clause} ORDER BY start_ms, segment_id LIMIT ?",
                               args + extra + [int(chunk)])
            if not rows:
                return
            yield [_segment_from_row(r) for r in rows]
            last = (int(rows[-1][8]), rows[-1][0])

    def segments(self, selection: Selection | None = None) -> list[StoredSegment]:
        return [s for chunk in self.iter_segments(selection) for s in chunk]

    def segment_ids(self) -> list[str]:
        return [r[0] for r in self._query("SELECT segment_id FROM segments ORDER BY start_ms, segment_id")]

    def segment(self, segment_id: str) -> StoredSegment | None:
        """One stored segment, None when the store has none with this id."""
        rows = self._query(f"SELECT {SEGMENT_COLUMNS} FROM segments WHERE segment_id = ?", (segment_id,))
        return _segment_from_row(rows[0]) if rows else None

    def recent_segment_counts(self, since_ms: int) -> dict[tuple[str, str], int]:
        """(site, device_id) -> segments central received at or after `since_ms` (Unix ms, central's
        clock: a device with a wrong clock still shows its true rate)."""
        return {(site, dev): int(n) for site, dev, n in self._query(
            "SELECT site, device_id, COUNT(*) FROM segments WHERE received_ms >= ? GROUP BY site, device_id",
            (int(since_ms),))}

    # -- cluster runs -------------------------------------------------------------------------------------
    def save_cluster_run(self, run_id: str, *, model_version: str, method: str, k: int, params: dict,
                         metrics: dict, assignments: Iterable[tuple[str, int, float]]) -> int:
        """Record a clustering run and its (segment_id, cluster, distance) rows; returns rows written.
        Saving a run_id again replaces the run and all of its assignments."""
        created = datetime.now().astimezone().isoformat(timespec="seconds")
        n = 0
        with self._transaction() as tx:
            tx.execute("DELETE FROM cluster_assignments WHERE run_id = ?", (run_id,))
            for chunk in _chunks(assignments, 10000):
                # Bulk (PostgreSQL: COPY): a run of millions of segments is written in one go.
                n += tx.insert_many("cluster_assignments", ("run_id", "segment_id", "cluster", "distance"),
                                    [(run_id, s, int(c), float(d)) for s, c, d in chunk])
            tx.execute(
                "INSERT INTO cluster_runs (run_id, created, model_version, method, k, n_segments, params, metrics)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id) DO UPDATE SET created = excluded.created,"
                " model_version = excluded.model_version, method = excluded.method, k = excluded.k,"
                " n_segments = excluded.n_segments, params = excluded.params, metrics = excluded.metrics",
                (run_id, created, model_version, method, int(k), n, json.dumps(params), json.dumps(_finite(metrics))),
            )
        return n

    def cluster_runs(self) -> list[dict]:
        """Every run, newest first: run_id, created, model_version, method, k, n_segments, params, metrics."""
        rows = self._query("SELECT run_id, created, model_version, method, k, n_segments, params, metrics"
                           " FROM cluster_runs ORDER BY created DESC, rowid DESC")
        return [
            {"run_id": r[0], "created": r[1], "model_version": r[2], "method": r[3], "k": int(r[4]),
             "n_segments": int(r[5]), "params": json.loads(r[6]), "metrics": json.loads(r[7])}
            for r in rows
        ]

    def assignments(self, run_id: str, segment_ids: Sequence[str]) -> dict[str, tuple[int, float]]:
        """segment_id -> (cluster, distance) for the given run (segments outside it are absent)."""
        out: dict[str, tuple[int, float]] = {}
        for chunk in _chunks(list(segment_ids), 500):
            for sid, c, d in self._query(
                    f"SELECT segment_id, cluster, distance FROM cluster_assignments WHERE run_id = ? AND segment_id IN "
                    f"({', '.join('?' * len(chunk))})", [run_id, *chunk]):
                out[sid] = (int(c), float(d))
        return out

    def run_members(self, run_id: str) -> list[RunMember]:
        """Every segment of a clustering run with its cluster, distance, device and duration,
        ordered by cluster, then distance (the most central first). Segments deleted from the
        store since the run are left out."""
        rows = self._query(
            "SELECT a.segment_id, a.cluster, a.distance, s.site, s.device_id, s.start_utc,"
            " (s.end_frame - s.start_frame) / s.fps FROM cluster_assignments a JOIN segments s"
            " ON s.segment_id = a.segment_id WHERE a.run_id = ? ORDER BY a.cluster, a.distance, a.segment_id",
            (run_id,))
        return [RunMember(r[0], int(r[1]), float(r[2]), r[3], r[4], r[5], float(r[6])) for r in rows]


# -- rows ------------------------------------------------------------------------------------------------
def segment_row(msg: SegmentMessage, topic: str, received_ms: int) -> tuple:
    """The `segments` row of a validated laps.segment message (ValueError when a store cannot
    hold it: a NUL character, which PostgreSQL text refuses, is refused for both backends)."""
    codes = np.asarray(msg.codes, dtype="<u4")
    keyframes = [{"frame": k.frame, "file": k.file} for k in msg.keyframes]
    row = (
        msg.segment_id, msg.site, msg.device_id, msg.model_version, msg.boot_id, int(msg.seq),
        msg.start_utc, msg.end_utc, iso_to_ms(msg.start_utc), iso_to_ms(msg.end_utc),
        int(msg.start_frame), int(msg.end_frame), float(msg.fps), int(codes.size), codes.tobytes(),
        float(msg.energy_mean), float(msg.energy_max),
        json.dumps(keyframes, separators=(",", ":")), topic, int(received_ms),
        *((msg.primitive.library, int(msg.primitive.cluster), float(msg.primitive.distance))
          if msg.primitive is not None else (None, None, None)),
        motion_bytes(msg.motion) if msg.motion is not None else None,
    )
    for name, value in zip(("segment_id", "site", "device_id", "model_version", "boot_id"), row):
        if "\x00" in value:
            raise ValueError(f"{name} holds a NUL character")
    if msg.primitive is not None and "\x00" in msg.primitive.library:
        raise ValueError("primitive.library holds a NUL character")
    return row


def iso_to_ms(text: str) -> int:
    """ISO-8601 UTC ('...Z' or with an offset) -> Unix milliseconds."""
    return int(round(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000))


def ms_to_iso(ms: int) -> str:
    """Unix milliseconds -> ISO-8601 UTC text with a 'Z'."""
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _segment_from_row(r: Sequence) -> StoredSegment:
    return StoredSegment(
        segment_id=r[0], site=r[1], device_id=r[2], model_version=r[3], boot_id=r[4], seq=int(r[5]),
        start_utc=r[6], end_utc=r[7], start_ms=int(r[8]), end_ms=int(r[9]), start_frame=int(r[10]),
        end_frame=int(r[11]), fps=float(r[12]), codes=np.frombuffer(bytes(r[14]), dtype="<u4").astype(np.int64),
        energy_mean=float(r[15]), energy_max=float(r[16]), keyframes=json.loads(r[17]),
        primitive=PrimitiveLabel(r[20], int(r[21]), float(r[22])) if r[20] is not None else None,
        motion=motion_from_bytes(r[23]) if r[23] is not None else None,
    )


def _text(value: str) -> str:
    """A free-text column's value: at most _REASON_CHARS characters, NUL written out (PostgreSQL
    text cannot hold it; a reason quoting a hostile payload might)."""
    return value[:_REASON_CHARS].replace("\x00", "\\x00")


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
