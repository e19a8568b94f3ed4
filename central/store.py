"""The central store on SQLite: the embedded default (one host, one file).

SQLite in WAL mode (readers never block the ingest writer; several ingest processes on one
host may share the file, each waiting its turn to write). `synchronous=FULL` by default, so a
committed transaction survives a power cut: the ingest acknowledges a message to the broker
only after the transaction holding it has committed. Several ingest HOSTS cannot share one
SQLite file: they use `central.store_postgres.PostgresStore` ([store] url = "postgresql://...").

The tables, the queries and the schema migrations are `central.store_sql`'s, shared with the
PostgreSQL store; this module supplies the connection. The records and row helpers are
re-exported here, where the rest of central has always imported them from.

A `Store` holds one connection guarded by a lock; threads may share it.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

from central.store_sql import (COUNTERS, MIGRATIONS, QUARANTINE_PAYLOAD_BYTES, SCHEMA_VERSION, DeviceSummary,
                               MediaFile, RunMember, Selection, SqlStore, StoredSegment, StoreSchemaError,
                               StoreUnavailableError, iso_to_ms, ms_to_iso, segment_row)

__all__ = ["Store", "COUNTERS", "MIGRATIONS", "QUARANTINE_PAYLOAD_BYTES", "SCHEMA_VERSION", "DeviceSummary",
           "MediaFile", "RunMember", "Selection", "StoredSegment", "StoreSchemaError", "StoreUnavailableError",
           "iso_to_ms", "ms_to_iso", "segment_row"]


class Store(SqlStore):
    """The central SQLite store. path: file (created with its folder). synchronous: "full"
    (fsync per commit) or "normal" (faster; the last commits may be lost on power loss)."""

    TYPES = {"int": "INTEGER", "real": "REAL", "text": "TEXT", "blob": "BLOB",
             "serial": "INTEGER PRIMARY KEY AUTOINCREMENT", "rowid": ""}

    def __init__(self, path: str | os.PathLike, synchronous: str = "full") -> None:
        if synchronous.lower() not in ("full", "normal"):
            raise ValueError(f"synchronous must be 'full' or 'normal', got {synchronous!r}")
        self.path = Path(path)
        self.location = str(self.path)
        self.scratch_dir = self.path.parent
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False, timeout=30.0)
        mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise OSError(f"store {self.path}: SQLite refused WAL mode (got {mode!r}); put it on a local disk")
        self._db.execute(f"PRAGMA synchronous={synchronous.upper()}")
        self._db.execute("PRAGMA busy_timeout=30000")
        # One transaction under BEGIN IMMEDIATE: several ingest processes may open a new file at once.
        self._migrate()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> "Store":
        return self

    def size_bytes(self) -> int:
        """Bytes of the SQLite file with its -wal and -shm."""
        size = 0
        for suffix in ("", "-wal", "-shm"):
            try:
                size += os.stat(f"{self.path}{suffix}").st_size
            except OSError:
                pass
        return size

    # -- the backend's part of SqlStore ----------------------------------------------------------------
    @contextmanager
    def _transaction(self) -> Iterator["_SqliteTransaction"]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as err:
                raise StoreUnavailableError(f"store {self.path}: {err}") from err
            try:
                yield _SqliteTransaction(self._db)
                self._db.execute("COMMIT")
            except sqlite3.OperationalError as err:
                self._rollback()
                raise StoreUnavailableError(f"store {self.path}: {err}") from err
            except BaseException:
                self._rollback()
                raise

    def _query(self, sql: str, args: Sequence = ()) -> list[tuple]:
        with self._lock:
            try:
                return self._db.execute(sql, tuple(args)).fetchall()
            except sqlite3.OperationalError as err:
                raise StoreUnavailableError(f"store {self.path}: {err}") from err

    def _schema_lock(self, tx) -> None:
        pass  # BEGIN IMMEDIATE already holds SQLite's one write lock

    def _upgrade_legacy(self, tx) -> None:
        """Versions 1-2 lacked quarantine.size (the full size of a quarantined payload)."""
        columns = {row[1] for row in tx.query("PRAGMA table_info(quarantine)")}
        if "size" not in columns:
            tx.execute("ALTER TABLE quarantine ADD COLUMN size INTEGER NOT NULL DEFAULT 0")

    def _rollback(self) -> None:
        try:
            self._db.execute("ROLLBACK")
        except sqlite3.Error:
            pass


class _SqliteTransaction:
    """`central.store_sql.Transaction` on an open SQLite transaction."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def execute(self, sql: str, args: Sequence = ()) -> int:
        return self._db.execute(sql, tuple(args)).rowcount

    def executemany(self, sql: str, rows: Sequence[Sequence]) -> int:
        return self._db.executemany(sql, rows).rowcount

    def query(self, sql: str, args: Sequence = ()) -> list[tuple]:
        return self._db.execute(sql, tuple(args)).fetchall()

    def insert_many(self, table: str, columns: Sequence[str], rows: Sequence[Sequence]) -> int:
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        return self._db.executemany(sql, rows).rowcount
