"""The gateway's on-disk spool: records wait here, on disk, until the broker acknowledged them.

One SQLite file in WAL mode with synchronous=FULL: `put()` returns only after its transaction
is on stable storage, so a record whose `put()` returned survives a crash, a SIGKILL or a power
cut. The forwarder reads records in insertion order (`peek`) and deletes them when the broker's
PUBACK arrives (`delete`). Ids grow strictly, across reopens too (AUTOINCREMENT never reuses
an id), so "insertion order" and "id order" are the same thing.

The spool is bounded by `max_bytes` of payload. A put that takes it over the bound drops the
oldest low-priority records (heartbeats, changes) first, possibly the new record itself. Alerts
(high priority) are never dropped: when only alerts are left the spool keeps them all, stays over
its bound and counts the put in `overfull`. See docs/spool.md.

One process at a time: the file is opened in exclusive locking mode, and a second opener gets a
ConfigError instead of a second forwarder sending the same records.
"""

from __future__ import annotations

import enum
import logging
import os
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from prognos.errors import ConfigError, TransientError
from prognos.record import Trigger

log = logging.getLogger(__name__)

APPLICATION_ID = 0x50524753  # "PRGS" in the SQLite header marks the file as a Prognos spool
SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 1.0
DROP_BATCH = 256

SCHEMA = """
CREATE TABLE record (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    priority INTEGER NOT NULL,
    payload BLOB NOT NULL
);
CREATE INDEX record_priority ON record (priority, id);
CREATE TABLE counter (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO counter (name, value) VALUES ('dropped', 0), ('overfull', 0);
"""


class Priority(enum.IntEnum):
    """LOW records may be dropped when the spool is full; HIGH records never are."""

    LOW = 0
    HIGH = 1


def priority_for(trigger: Trigger) -> Priority:
    """Alerts (anomaly records) are high priority; heartbeats and change records are low."""
    return Priority.HIGH if trigger is Trigger.ANOMALY else Priority.LOW


@dataclass(frozen=True)
class SpooledRecord:
    id: int
    priority: Priority
    payload: bytes


class Spool:
    """A bounded, durable FIFO of encoded records; safe to share between threads."""

    def __init__(self, path: str | os.PathLike[str], *, max_bytes: int) -> None:
        if max_bytes <= 0:
            raise ConfigError(f"spool max_bytes must be > 0, got {max_bytes}")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._db = _open(self.path)
        try:
            count, size, dropped, overfull = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0),"
                " (SELECT value FROM counter WHERE name = 'dropped'),"
                " (SELECT value FROM counter WHERE name = 'overfull') FROM record"
            ).fetchone()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise ConfigError(
                f"spool {self.path} is damaged ({exc}); move it aside to start a new one"
            ) from exc
        self._depth: int = count
        self._size_bytes: int = size
        self._dropped: int = dropped
        self._overfull: int = overfull
        self._full = False  # warned that the spool is full; cleared when deletes bring it under
        if count:
            log.info("spool %s resumed with %d records (%d bytes)", self.path, count, size)

    @property
    def depth(self) -> int:
        """Records waiting in the spool."""
        return self._depth

    @property
    def size_bytes(self) -> int:
        """Payload bytes waiting in the spool (the file is larger by SQLite's own overhead)."""
        return self._size_bytes

    @property
    def dropped(self) -> int:
        """Low-priority records dropped to keep the bound, over the life of this spool file.

        Non-zero means the gateway was offline long enough to fill the spool: heartbeats and
        change records from that time are lost; alerts are not.
        """
        return self._dropped

    @property
    def overfull(self) -> int:
        """Puts that left the spool over max_bytes because only alerts were left to drop.

        Non-zero means the spool holds more alerts than max_bytes: it keeps them and grows.
        """
        return self._overfull

    def put(self, payload: bytes, priority: Priority) -> int:
        """Store one record durably and return its spool id; drop low-priority records if over the bound.

        When this returns the record is on disk. The new record itself is dropped (its id is still
        returned, and counted in `dropped`) when it is low priority and the rest of the spool is
        alerts that already fill the bound.
        """
        if not isinstance(payload, bytes):
            raise TypeError(f"payload must be bytes, not {type(payload).__name__}")
        priority = Priority(priority)
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                cursor = self._db.execute(
                    "INSERT INTO record (priority, payload) VALUES (?, ?)", (int(priority), payload)
                )
                record_id = cursor.lastrowid
                assert record_id is not None
                depth = self._depth + 1
                size = self._size_bytes + len(payload)
                dropped, overfull = self._dropped, self._overfull
                if size > self.max_bytes:
                    freed, count = self._drop_oldest_low(size - self.max_bytes)
                    size -= freed
                    depth -= count
                    dropped += count
                    if size > self.max_bytes:
                        overfull += 1
                    self._db.execute(
                        "UPDATE counter SET value = CASE name WHEN 'dropped' THEN ? ELSE ? END",
                        (dropped, overfull),
                    )
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise TransientError(f"spool {self.path}: cannot store a record ({exc})") from exc
            if dropped != self._dropped or overfull != self._overfull:
                self._report_pressure(dropped - self._dropped, size)
            self._depth, self._size_bytes = depth, size
            self._dropped, self._overfull = dropped, overfull
            return record_id

    def peek(self, limit: int, *, after_id: int = 0) -> list[SpooledRecord]:
        """Up to `limit` records with id > after_id, oldest first; nothing is removed."""
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        with self._lock:
            try:
                rows = self._db.execute(
                    "SELECT id, priority, payload FROM record WHERE id > ? ORDER BY id LIMIT ?",
                    (after_id, limit),
                ).fetchall()
            except sqlite3.Error as exc:
                raise TransientError(f"spool {self.path}: cannot read ({exc})") from exc
        return [SpooledRecord(row[0], Priority(row[1]), bytes(row[2])) for row in rows]

    def delete(self, ids: Iterable[int]) -> int:
        """Remove records (the broker has them); ids no longer spooled are ignored. Returns how many went."""
        wanted = sorted(set(ids))
        if not wanted:
            return 0
        with self._lock:
            count = freed = 0
            try:
                self._db.execute("BEGIN IMMEDIATE")
                for start in range(0, len(wanted), DROP_BATCH):
                    chunk = wanted[start : start + DROP_BATCH]
                    marks = ",".join("?" * len(chunk))
                    for (size,) in self._db.execute(
                        f"DELETE FROM record WHERE id IN ({marks}) RETURNING LENGTH(payload)", chunk
                    ).fetchall():
                        count += 1
                        freed += size
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise TransientError(f"spool {self.path}: cannot delete records ({exc})") from exc
            self._depth -= count
            self._size_bytes -= freed
            if self._size_bytes <= self.max_bytes:
                self._full = False
            return count

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _report_pressure(self, dropped: int, size: int) -> None:
        """One warning when the spool fills up; DEBUG for each further drop until it drains."""
        level = logging.DEBUG if self._full else logging.WARNING
        self._full = True
        if size > self.max_bytes:
            log.log(
                level,
                "spool %s holds %d bytes of alerts, over its %d-byte bound; keeping them all",
                self.path,
                size,
                self.max_bytes,
            )
        if dropped:
            log.log(
                level,
                "spool %s is full (%d bytes): dropped the %d oldest low-priority records",
                self.path,
                self.max_bytes,
                dropped,
            )

    def _drop_oldest_low(self, excess_bytes: int) -> tuple[int, int]:
        """Delete the oldest low-priority records until `excess_bytes` are freed or none are left."""
        freed = count = 0
        while freed < excess_bytes:
            rows = self._db.execute(
                "SELECT id, LENGTH(payload) FROM record WHERE priority = ? ORDER BY id LIMIT ?",
                (int(Priority.LOW), DROP_BATCH),
            ).fetchall()
            if not rows:
                break
            victims = []
            for record_id, size in rows:
                victims.append(record_id)
                freed += size
                if freed >= excess_bytes:
                    break
            count += len(victims)
            marks = ",".join("?" * len(victims))
            self._db.execute(f"DELETE FROM record WHERE id IN ({marks})", victims)
        return freed, count

    def _rollback(self) -> None:
        if self._db.in_transaction:
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error as exc:
                log.error("spool %s: rollback failed: %s", self.path, exc)


def _open(path: Path) -> sqlite3.Connection:
    """Open or create the spool file; every way this can fail is a ConfigError with one clear line."""
    if path.is_dir():
        raise ConfigError(f"spool path {path} is a directory; give a file name such as {path / 'spool.db'}")
    if not path.parent.is_dir():
        problem = "is not a directory" if path.parent.exists() else "does not exist"
        raise ConfigError(f"spool directory {path.parent} {problem}; create it or choose another path")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise ConfigError(f"spool directory {path.parent} is not writable by this user")
    try:
        db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise ConfigError(f"cannot open spool {path}: {exc}") from exc
    try:
        db.execute("PRAGMA locking_mode = EXCLUSIVE")
        mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise ConfigError(f"spool {path}: the file system does not support SQLite WAL mode (got {mode})")
        db.execute("PRAGMA synchronous = FULL")
        db.execute("BEGIN IMMEDIATE")  # takes the exclusive lock now, before anything is read
        _check_or_create_schema(db, path)
        db.execute("COMMIT")
        problems = [row[0] for row in db.execute("PRAGMA quick_check").fetchall()]
        if problems != ["ok"]:
            raise ConfigError(f"spool {path} is damaged ({problems[0]}); move it aside to start a new one")
    except sqlite3.OperationalError as exc:
        db.close()
        if "locked" in str(exc):
            raise ConfigError(f"spool {path} is in use by another process") from exc
        raise ConfigError(f"cannot open spool {path}: {exc}") from exc
    except sqlite3.DatabaseError as exc:
        db.close()
        raise ConfigError(f"spool {path} is not a readable spool database ({exc}); move it aside") from exc
    except ConfigError:
        db.close()
        raise
    return db


def _check_or_create_schema(db: sqlite3.Connection, path: Path) -> None:
    application_id = db.execute("PRAGMA application_id").fetchone()[0]
    version = db.execute("PRAGMA user_version").fetchone()[0]
    tables = db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0]
    if application_id == 0 and version == 0 and tables == 0:
        # One statement at a time: executescript() would commit the transaction we are in.
        for statement in SCHEMA.split(";"):
            if statement.strip():
                db.execute(statement)
        db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        return
    if application_id != APPLICATION_ID:
        raise ConfigError(f"{path} is an SQLite database but not a Prognos spool; choose another path")
    if version != SCHEMA_VERSION:
        raise ConfigError(
            f"spool {path} has format version {version}; this agent reads version {SCHEMA_VERSION}"
        )
