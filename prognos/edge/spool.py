"""The gateway's on-disk spool: records wait here, on disk, until the broker acknowledged them
(or, with storage receipts, until the cloud said it stored them).

One SQLite file in WAL mode with synchronous=FULL: `put()` returns only after its transaction
is on stable storage, so a record whose `put()` returned survives a crash, a SIGKILL or a power
cut. The forwarder reads records in insertion order (`peek`) and deletes them when the broker's
PUBACK or the receipt arrives (`delete`). Ids grow strictly, across reopens too (AUTOINCREMENT
never reuses an id), so "insertion order" and "id order" are the same thing. The record
sequence numbers the gateway gives out are claimed here too (`claim_seqs`), so that they do not
repeat across restarts either.

The spool is bounded by `max_bytes` of payload. A put that takes it over the bound drops the
oldest low-priority records (heartbeats, changes) first, possibly the new record itself. Alerts
(high priority) are never dropped: when only alerts are left the spool keeps them all, stays over
its bound and counts the put in `overfull`. See docs/spool.md.

A full file system lowers the bound: the spool keeps what it has, drops the oldest low-priority
records to make room for new ones, and counts in `unstored` the records it could not keep at all
(dropping every low-priority record left would not have made room). A reserve file beside the
spool, given back on the first SQLITE_FULL, is the room SQLite needs to get out of that state;
the spool takes it again and the bound returns once the file system has space. See
docs/spool.md, "Full disk".

One process at a time: the file is opened in exclusive locking mode, and a second opener gets a
ConfigError instead of a second forwarder sending the same records.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from prognos.errors import ConfigError, TransientError
from prognos.record import INT64_MAX, Trigger

log = logging.getLogger(__name__)
_T = TypeVar("_T")

APPLICATION_ID = 0x50524753  # "PRGS" in the SQLite header marks the file as a Prognos spool
SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 1.0
DROP_BATCH = 256
RESERVE_BYTES = 256 << 10  # given back to the file system when it is full, so SQLite can go on
FULL_MARGIN_BYTES = 16 << 10  # each further SQLITE_FULL lowers the bound this far below the content
RESERVE_SUFFIX = ".reserve"

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


class SpoolFull(TransientError):
    """The file system is full and nothing the spool may drop would make room: the record is not stored."""


@dataclass(frozen=True)
class SpooledRecord:
    id: int
    priority: Priority
    payload: bytes


class Spool:
    """A bounded, durable FIFO of encoded records; safe to share between threads."""

    def __init__(
        self, path: str | os.PathLike[str], *, max_bytes: int, reserve_bytes: int = RESERVE_BYTES
    ) -> None:
        """`reserve_bytes`: the size of the reserve file kept beside the spool for a full disk
        (0: none; then a full file system can stop the spool from storing or deleting anything)."""
        if max_bytes <= 0:
            raise ConfigError(f"spool max_bytes must be > 0, got {max_bytes}")
        if reserve_bytes < 0:
            raise ConfigError(f"spool reserve_bytes must be >= 0, got {reserve_bytes}")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.reserve_bytes = reserve_bytes
        self._reserve_path = self.path.with_name(self.path.name + RESERVE_SUFFIX)
        self._lock = threading.Lock()
        self._db = _open(self.path)
        try:
            page_size = self._db.execute("PRAGMA page_size").fetchone()[0]
            self._wal_max_bytes: int = page_size * self._db.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
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
        self._unstored = 0
        self._disk_bound: int | None = None  # the lowered bound while the file system is full
        if count:
            log.info("spool %s resumed with %d records (%d bytes)", self.path, count, size)
        if not self._take_reserve():
            log.warning(
                "spool %s: no room for its %d-byte reserve; a full disk may stop it", self.path, reserve_bytes
            )

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

    @property
    def unstored(self) -> int:
        """Records not stored since this spool was opened: the file system was full, and dropping
        every low-priority record left would not have made room.

        Non-zero means alerts were lost to a full disk; find what filled it.
        """
        return self._unstored

    @property
    def disk_full(self) -> bool:
        """Whether the spool runs on a full file system (its bound lowered) right now."""
        return self._disk_bound is not None

    def put(self, payload: bytes, priority: Priority) -> int:
        """Store one record durably and return its spool id; drop low-priority records if over the bound.

        When this returns the record is on disk. The new record itself is dropped (its id is still
        returned, and counted in `dropped`) when it is low priority and the rest of the spool is
        alerts that already fill the bound. On a full file system the bound is lowered to what
        the spool holds; SpoolFull (counted in `unstored`) when even that leaves no room.
        """
        if not isinstance(payload, bytes):
            raise TypeError(f"payload must be bytes, not {type(payload).__name__}")
        priority = Priority(priority)
        with self._lock:
            if self._disk_bound is not None:
                self._leave_full_disk()
            try:
                return self._store(payload, priority)
            finally:
                self._checkpoint()

    def _store(self, payload: bytes, priority: Priority) -> int:
        """Insert. On SQLITE_FULL: lower the bound and give back the reserve, try again; then
        try again dropping ever more of the oldest low-priority records first, until none is left."""
        make_room = 0
        rescued = False
        while True:
            try:
                return self._insert(payload, priority, make_room)
            except sqlite3.Error as exc:
                self._rollback()
                if not _disk_full(exc):
                    raise TransientError(f"spool {self.path}: cannot store a record ({exc})") from exc
                if make_room and make_room >= self._low_bytes():
                    self._unstored += 1
                    log.log(
                        logging.ERROR if self._unstored == 1 else logging.DEBUG,
                        "spool %s: the file system is full and dropping every heartbeat left would not "
                        "make room; a %s-priority record is not stored (%d so far)",
                        self.path,
                        priority.name.lower(),
                        self._unstored,
                    )
                    raise SpoolFull(
                        f"spool {self.path}: the file system is full and dropping every heartbeat "
                        "left would not make room; record not stored"
                    ) from exc
            self._enter_full_disk()
            if rescued:
                make_room = 2 * make_room or FULL_MARGIN_BYTES
            rescued = True

    def _insert(self, payload: bytes, priority: Priority, make_room: int = 0) -> int:
        """One put's transaction: drop `make_room` bytes of the oldest low-priority records (on a
        full disk), insert, then drop the oldest low-priority records that are over the bound."""
        bound = self._bound()
        depth, size = self._depth, self._size_bytes
        dropped, overfull = self._dropped, self._overfull
        self._db.execute("BEGIN IMMEDIATE")
        if make_room:
            freed, count = self._drop_oldest_low(make_room)
            size, depth, dropped = size - freed, depth - count, dropped + count
        cursor = self._db.execute(
            "INSERT INTO record (priority, payload) VALUES (?, ?)", (int(priority), payload)
        )
        record_id = cursor.lastrowid
        assert record_id is not None
        depth += 1
        size += len(payload)
        if size > bound:
            freed, count = self._drop_oldest_low(size - bound)
            size, depth, dropped = size - freed, depth - count, dropped + count
            if size > bound:
                overfull += 1
        if (dropped, overfull) != (self._dropped, self._overfull):
            self._db.execute(
                "UPDATE counter SET value = CASE name WHEN 'dropped' THEN ? ELSE ? END",
                (dropped, overfull),
            )
        self._db.execute("COMMIT")
        if (dropped, overfull) != (self._dropped, self._overfull):
            self._report_pressure(dropped - self._dropped, size, bound)
        self._depth, self._size_bytes = depth, size
        self._dropped, self._overfull = dropped, overfull
        return record_id

    def _low_bytes(self) -> int:
        row = self._db.execute(
            "SELECT COALESCE(SUM(LENGTH(payload)), 0) FROM record WHERE priority = ?", (int(Priority.LOW),)
        ).fetchone()
        return int(row[0])

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
            try:
                count, freed = self._write_making_room(lambda: self._delete(wanted), "delete records")
            finally:
                self._checkpoint()
            self._depth -= count
            self._size_bytes -= freed
            if self._size_bytes <= self._bound():
                self._full = False
            return count

    def _write_making_room(self, write: Callable[[], _T], what: str) -> _T:
        """A write that frees or takes little room; on SQLITE_FULL give back the reserve and try
        once more."""
        try:
            return write()
        except sqlite3.Error as exc:
            self._rollback()
            if not _disk_full(exc):
                raise TransientError(f"spool {self.path}: cannot {what} ({exc})") from exc
        self._enter_full_disk()
        try:
            return write()
        except sqlite3.Error as exc:
            self._rollback()
            raise TransientError(f"spool {self.path}: cannot {what} ({exc})") from exc

    def _delete(self, wanted: list[int]) -> tuple[int, int]:
        count = freed = 0
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
        return count, freed

    def claim_seqs(self, count: int) -> int:
        """Reserve `count` record sequence numbers, durably, and return the first.

        Every claim on this spool file, in this process or a later one, starts after the last
        number of the one before: a restarted agent never reuses the seq of a record that may
        still be spooled, which is what storage receipts name records by.
        """
        if count < 1:
            raise ValueError(f"count must be >= 1, got {count}")
        with self._lock:
            try:
                return self._write_making_room(lambda: self._claim(count), "claim sequence numbers")
            finally:
                self._checkpoint()

    def _claim(self, count: int) -> int:
        self._db.execute("BEGIN IMMEDIATE")
        row = self._db.execute("SELECT value FROM counter WHERE name = 'seq'").fetchone()
        first = (row[0] if row else 0) + 1
        if first + count - 1 > INT64_MAX:
            self._db.execute("ROLLBACK")
            raise ConfigError(f"spool {self.path} has used up its sequence numbers; move it aside")
        self._db.execute(
            "INSERT OR REPLACE INTO counter (name, value) VALUES ('seq', ?)", (first + count - 1,)
        )
        self._db.execute("COMMIT")
        return first

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _report_pressure(self, dropped: int, size: int, bound: int) -> None:
        """One warning when the spool fills up; DEBUG for each further drop until it drains."""
        level = logging.DEBUG if self._full else logging.WARNING
        self._full = True
        if size > bound:
            log.log(
                level,
                "spool %s holds %d bytes of alerts, over its %d-byte bound; keeping them all",
                self.path,
                size,
                bound,
            )
        if dropped:
            log.log(
                level,
                "spool %s is full (%d bytes): dropped the %d oldest low-priority records",
                self.path,
                bound,
                dropped,
            )

    # A full file system.

    def _bound(self) -> int:
        return self.max_bytes if self._disk_bound is None else min(self.max_bytes, self._disk_bound)

    def _enter_full_disk(self) -> None:
        """SQLITE_FULL. The bound becomes what the spool holds (16 KiB less at each further
        SQLITE_FULL), so that the records dropped make the room new ones take and the file stops
        growing; the reserve goes back to the file system, so that SQLite has room to checkpoint
        its WAL into the main file and truncate it; from now on every write is checkpointed."""
        if self._disk_bound is None:
            self._disk_bound = self._size_bytes
            log.warning(
                "spool %s: the file system is full; keeping the %d records spooled and at most %d bytes "
                "(the oldest heartbeats go first) until it has room again",
                self.path,
                self._depth,
                self._disk_bound,
            )
        else:
            self._disk_bound = max(0, min(self._disk_bound, self._size_bytes - FULL_MARGIN_BYTES))
        if self._reserve_path.exists():
            self._reserve_path.unlink()
            log.info("spool %s: gave back its %d-byte reserve", self.path, self.reserve_bytes)
        self._checkpoint()

    def _leave_full_disk(self) -> None:
        """The bound comes back once the file system has room for the reserve, for the WAL to
        grow back to its checkpoint size, and for one reserve more."""
        try:
            stat = os.statvfs(self.path.parent)
        except OSError:
            return
        try:
            wal_bytes = os.path.getsize(f"{self.path}-wal")
        except OSError:
            wal_bytes = 0
        needed = 2 * self.reserve_bytes + max(0, self._wal_max_bytes - wal_bytes)
        if stat.f_bavail * stat.f_frsize < needed or not self._take_reserve():
            return
        self._disk_bound = None
        log.info("spool %s: the file system has room again; the bound is %d bytes", self.path, self.max_bytes)

    def _take_reserve(self) -> bool:
        """Make sure the reserve file holds its blocks; False if the file system has no room for it."""
        if self.reserve_bytes == 0:
            return True
        try:
            fd = os.open(self._reserve_path, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                os.posix_fallocate(fd, 0, self.reserve_bytes)
            finally:
                os.close(fd)
        except OSError:
            with contextlib.suppress(OSError):
                self._reserve_path.unlink()
            return False
        return True

    def _checkpoint(self) -> None:
        """On a full disk, copy the WAL into the main file and truncate it: the WAL's space goes
        back to the file system after each write instead of accumulating until it is exhausted."""
        if self._disk_bound is None or self._db.in_transaction:
            return
        try:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.Error as exc:
            log.debug("spool %s: checkpoint failed: %s", self.path, exc)

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


def _disk_full(exc: sqlite3.Error) -> bool:
    """SQLite's answer when the file system (or max_page_count) leaves no room for a write."""
    return getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_FULL


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
