"""Store and forward: records go to the spool first, then to the broker, in order.

`submit()` writes a record to the spool (durable when it returns) and wakes the forwarder
thread. The thread publishes spooled records oldest first with QoS 1, up to `max_inflight` at a
time, and deletes each from the spool when its PUBACK arrives. When the connection drops, a
publish fails or a PUBACK is overdue, it forgets what was in flight and starts again from the
oldest record still spooled, after a full-jitter backoff. Delivery is at least once: a record
whose PUBACK was lost is published again, and the cloud's deterministic point keys absorb the
duplicate. A record the broker refuses (not authorised, say) stays spooled and is sent again
after a backoff, counted in `refused`.

With `receipt_timeout_s`, a PUBACK is not the end: the record stays spooled until the cloud's
storage receipt names its seq (prognos/receipt.py), so a broker that dies before it saved the
record costs nothing. A record whose receipt is overdue is published again, and the wait doubles
each time up to RECEIPT_BACKOFF_LIMIT times the timeout. See docs/spool.md.
"""

from __future__ import annotations

import collections
import enum
import heapq
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from prognos.backoff import Backoff
from prognos.edge.spool import Priority, Spool, SpoolFull
from prognos.errors import TransientError
from prognos.record import record_seq

log = logging.getLogger(__name__)


class AckOutcome(enum.Enum):
    ACCEPTED = "accepted"  # the broker has the record: delete it from the spool
    RETRY = "retry"  # the broker could not take it now: publish it again later
    # The broker refused it (not authorised, topic invalid, ...): keep it spooled, back off, send
    # it again and count it in `refused`; an ACL being fixed must not have cost the records.
    REJECTED = "rejected"


class LinkListener(Protocol):
    """What a link tells the forwarder; called from the link's network thread, so it only marks."""

    def link_changed(self) -> None: ...

    def acknowledged(self, session: int, mid: int, outcome: AckOutcome, reason: str) -> None: ...

    def stored(self, seqs: Sequence[int]) -> None: ...


class RecordLink(Protocol):
    """What the forwarder needs of a connection (prognos.edge.uplink.MqttUplink is the real one)."""

    @property
    def session(self) -> int | None: ...

    @property
    def reconnects(self) -> int: ...

    def set_listener(self, listener: LinkListener | None) -> None: ...

    def send_record(self, payload: bytes) -> tuple[int, int]: ...

    def drop_connection(self, reason: str) -> None: ...


ACK_TIMEOUT_S = 30.0  # a PUBACK overdue this long: the connection is dropped and the spool sent again
ACKED_RETRY_S = 1.0  # how often to try again to delete acknowledged records the spool kept
RECEIPT_BACKOFF_LIMIT = 16  # an overdue receipt's wait doubles at each resend, up to this factor
OVERDUE_LOG_S = 60.0  # at most one log line this often about overdue receipts
PEEK_BATCH = 256  # records read at a time while skipping those in flight or awaiting a receipt


class FlushTimeout(TransientError, TimeoutError):
    """Records were still spooled when flush() gave up."""


@dataclass(frozen=True)
class _Ack:
    session: int
    mid: int
    outcome: AckOutcome
    reason: str


@dataclass
class _InFlight:
    spool_id: int
    sent_at_s: float
    seq: int | None  # the seq its receipt will name; None: the PUBACK settles it


@dataclass
class _Awaiting:
    seq: int
    deadline_s: float


class Forwarder:
    """Drains a spool into a link in order, in its own thread, until `close()`."""

    def __init__(
        self,
        *,
        spool: Spool,
        link: RecordLink,
        name: str = "forwarder",
        max_inflight: int = 20,
        ack_timeout_s: float = ACK_TIMEOUT_S,
        retry_backoff: Backoff | None = None,
        receipt_timeout_s: float | None = None,
        max_awaiting: int = 10_000,
    ) -> None:
        """`receipt_timeout_s`: keep each record after its PUBACK until a storage receipt names
        it, and publish it again when none came within this time (None: the PUBACK settles it).
        `max_awaiting`: send nothing new while this many records wait for their receipt."""
        if max_inflight < 1:
            raise ValueError(f"max_inflight must be >= 1, got {max_inflight}")
        if receipt_timeout_s is not None and receipt_timeout_s <= 0:
            raise ValueError(f"receipt_timeout_s must be > 0, got {receipt_timeout_s}")
        self._spool = spool
        self._link = link
        self._max_inflight = max_inflight
        self._ack_timeout_s = ack_timeout_s
        self._backoff = retry_backoff or Backoff(base_s=0.5, cap_s=60.0)
        self._receipt_timeout_s = receipt_timeout_s
        self._max_awaiting = max_awaiting
        self._acks: collections.deque[_Ack] = collections.deque()
        self._receipts: collections.deque[Sequence[int]] = collections.deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._drained = threading.Condition()
        # Owned by the forwarder thread alone:
        self._session: int | None = None
        self._inflight: dict[int, _InFlight] = {}
        self._last_sent_id = 0
        self._retry_at_s = 0.0
        self._acked: set[int] = set()  # spool ids the broker has, not yet deleted (the spool failed)
        self._delete_failed = False
        # Records the broker has that wait for their storage receipt: by spool id, by seq, and
        # their deadlines in a heap (entries whose record got its receipt are skipped when popped).
        self._awaiting: dict[int, _Awaiting] = {}
        self._awaiting_ids: dict[int, int] = {}  # seq -> spool id
        self._deadlines: list[tuple[float, int]] = []
        self._overdue: dict[int, int] = {}  # spool id -> times its receipt was overdue
        self._stored_early: set[int] = set()  # seqs a receipt named before their PUBACK came
        self._overdue_logged = (-OVERDUE_LOG_S, 0)  # when the last line went out, the count then
        self.published = 0
        self.refused = 0
        self.retries = 0
        self.receipted = 0
        self.receipts_overdue = 0
        link.set_listener(self)
        self._thread = threading.Thread(target=self._run, name=f"prognos-{name}", daemon=True)
        self._thread.start()

    # The agent's side.

    def submit(self, record_payload: bytes, priority: Priority) -> int | None:
        """Spool one encoded record (durably, before anything is sent) and wake the forwarder.

        Returns the spool id, or None when the file system is full and the spool had nothing it
        could drop to make room: the record is lost, counted in `spool_unstored`, and the agent
        goes on (the spool logs it). Other spool failures raise TransientError.
        """
        try:
            spool_id: int | None = self._spool.put(record_payload, priority)
        except SpoolFull:
            spool_id = None
        self._wake.set()
        return spool_id

    def flush(self, timeout_s: float) -> None:
        """Wait until the spool is empty; FlushTimeout says how many records are left."""
        with self._drained:
            if not self._drained.wait_for(lambda: self._spool.depth == 0, timeout_s):
                raise FlushTimeout(f"{self._spool.depth} records still spooled after {timeout_s:.1f} s")

    @property
    def in_flight(self) -> int:
        """Records published on the current connection and still waiting for their PUBACK."""
        return len(self._inflight)

    @property
    def awaiting_receipt(self) -> int:
        """Records the broker acknowledged that wait for the cloud's storage receipt."""
        return len(self._awaiting)

    @property
    def spool_depth(self) -> int:
        return self._spool.depth

    @property
    def spool_dropped(self) -> int:
        return self._spool.dropped

    @property
    def reconnects(self) -> int:
        return self._link.reconnects

    def counters(self) -> dict[str, int]:
        """The counters for the status message; docs/spool.md says what a non-zero value means."""
        return {
            "published": self.published,
            "refused": self.refused,
            "retries": self.retries,
            "receipted": self.receipted,
            "receipts_overdue": self.receipts_overdue,
            "reconnects": self.reconnects,
            "spool_depth": self.spool_depth,
            "spool_dropped": self.spool_dropped,
            "spool_overfull": self._spool.overfull,
            "spool_unstored": self._spool.unstored,
        }

    def close(self) -> None:
        """Stop forwarding; whatever is still spooled stays on disk for the next start."""
        self._stop.set()
        self._wake.set()
        self._thread.join()
        self._link.set_listener(None)

    # The link's side (network thread): only enqueue and wake.

    def link_changed(self) -> None:
        self._wake.set()

    def acknowledged(self, session: int, mid: int, outcome: AckOutcome, reason: str) -> None:
        self._acks.append(_Ack(session, mid, outcome, reason))
        self._wake.set()

    def stored(self, seqs: Sequence[int]) -> None:
        if self._receipt_timeout_s is not None:
            self._receipts.append(seqs)
            self._wake.set()

    # The forwarder thread.

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                timeout_s = self._step()
            except TransientError as exc:  # the spool could not be read or written
                log.error("forwarder: %s", exc)
                self._fail(str(exc))
                timeout_s = self._retry_at_s - time.monotonic()
            self._wake.wait(None if timeout_s is None else max(0.0, timeout_s))

    def _step(self) -> float | None:
        """Do what can be done now; return how long to sleep unless woken (None: until woken)."""
        self._take_receipts()
        self._take_acks()
        session = self._link.session
        if session != self._session:
            self._restart_window(session)
        now = time.monotonic()
        if session is None:
            return None  # link_changed() wakes us when the broker accepts a connection
        if now < self._retry_at_s:
            return self._retry_at_s - now
        if self._inflight and now >= self._ack_deadline_s():
            self._link.drop_connection(f"no PUBACK within {self._ack_timeout_s:.1f} s")
            self._fail("PUBACK overdue")
            return self._retry_at_s - now
        self._expire_receipts(now)
        if not self._send_more(session):
            return 0.0  # the connection changed under us: start over on the new one
        if self._retry_at_s > time.monotonic():
            return self._retry_at_s - time.monotonic()
        wake_at = [self._ack_deadline_s()] if self._inflight else []
        if self._deadlines:
            wake_at.append(self._deadlines[0][0])
        if self._acked:
            wake_at.append(time.monotonic() + ACKED_RETRY_S)  # try the delete again
        return min(wake_at) - time.monotonic() if wake_at else None

    def _send_more(self, session: int) -> bool:
        """Publish the oldest spooled records not yet in flight, as many as the window has room
        for; False when the connection changed under us."""
        room = self._max_inflight - len(self._inflight)
        busy = {entry.spool_id for entry in self._inflight.values()}
        while room > 0 and self._may_await():
            records = self._spool.peek(max(room, PEEK_BATCH), after_id=self._last_sent_id)
            if not records:
                break
            for record in records:
                if record.id in self._acked or record.id in self._awaiting or record.id in busy:
                    self._last_sent_id = record.id  # out already, or only its delete is pending
                    continue
                seq = self._receipt_seq(record.payload)
                try:
                    sent_on, mid = self._link.send_record(record.payload)
                except TransientError as exc:
                    self._fail(str(exc))
                    return True
                if sent_on != session:
                    return False
                self._inflight[mid] = _InFlight(record.id, time.monotonic(), seq)
                self._last_sent_id = record.id
                room -= 1
                if room == 0 or not self._may_await():
                    break
        return True

    def _may_await(self) -> bool:
        """Room for one more record waiting for its receipt (counting those waiting for a PUBACK)."""
        if self._receipt_timeout_s is None:
            return True
        return len(self._awaiting) + len(self._inflight) < self._max_awaiting

    def _receipt_seq(self, payload: bytes) -> int | None:
        """The seq a receipt will name for this record, or None when its PUBACK settles it:
        receipts are off, the payload has no seq, or a record with the same seq is already out
        (a receipt could not tell the two apart)."""
        if self._receipt_timeout_s is None:
            return None
        seq = record_seq(payload)
        if seq is None:
            return None
        if seq in self._awaiting_ids or any(entry.seq == seq for entry in self._inflight.values()):
            log.warning("forwarder: seq %d is out twice; the second is settled by its PUBACK", seq)
            return None
        return seq

    def _ack_deadline_s(self) -> float:
        return min(entry.sent_at_s for entry in self._inflight.values()) + self._ack_timeout_s

    def _take_acks(self) -> None:
        retry_reason = ""
        while self._acks:
            ack = self._acks.popleft()
            if ack.session != self._session:
                continue  # from a connection already given up: that record goes out again
            entry = self._inflight.pop(ack.mid, None)
            if entry is None:
                continue  # not ours (the status message) or already given up
            if ack.outcome is AckOutcome.ACCEPTED:
                self.published += 1
                self._backoff.reset()
                if entry.seq is None:
                    self._acked.add(entry.spool_id)
                elif entry.seq in self._stored_early:
                    self._stored_early.remove(entry.seq)
                    self._acked.add(entry.spool_id)
                else:
                    self._await_receipt(entry.spool_id, entry.seq)
            elif ack.outcome is AckOutcome.REJECTED:
                self.refused += 1
                retry_reason = f"broker refused record {entry.spool_id} ({ack.reason}); it stays spooled"
                log.warning("forwarder: %s", retry_reason)
            else:
                retry_reason = f"broker asked to retry record {entry.spool_id} ({ack.reason})"
        if self._acked:
            self._delete_acked()
        if retry_reason:
            self._link.drop_connection(retry_reason)
            self._fail(retry_reason)

    # Storage receipts.

    def _await_receipt(self, spool_id: int, seq: int) -> None:
        assert self._receipt_timeout_s is not None
        factor = min(RECEIPT_BACKOFF_LIMIT, 2 ** self._overdue.get(spool_id, 0))
        deadline_s = time.monotonic() + self._receipt_timeout_s * factor
        self._awaiting[spool_id] = _Awaiting(seq, deadline_s)
        self._awaiting_ids[seq] = spool_id
        heapq.heappush(self._deadlines, (deadline_s, spool_id))

    def _take_receipts(self) -> None:
        """Records a receipt names are stored: delete them. A receipt may overtake the PUBACK of
        its record; then the PUBACK deletes it."""
        while self._receipts:
            in_flight = {entry.seq for entry in self._inflight.values()}
            for seq in self._receipts.popleft():
                spool_id = self._awaiting_ids.pop(seq, None)
                if spool_id is not None:
                    del self._awaiting[spool_id]
                    self._overdue.pop(spool_id, None)
                    self._acked.add(spool_id)
                    self.receipted += 1
                elif seq in in_flight:
                    self._stored_early.add(seq)
                    self.receipted += 1

    def _expire_receipts(self, now: float) -> None:
        """Records whose receipt is overdue go out again: the broker may have lost them."""
        expired: list[int] = []
        while self._deadlines and self._deadlines[0][0] <= now:
            deadline_s, spool_id = heapq.heappop(self._deadlines)
            entry = self._awaiting.get(spool_id)
            if entry is None or entry.deadline_s != deadline_s:
                continue  # it got its receipt, or waits again with a later deadline
            del self._awaiting[spool_id]
            del self._awaiting_ids[entry.seq]
            self._overdue[spool_id] = self._overdue.get(spool_id, 0) + 1
            expired.append(spool_id)
        if not expired:
            return
        self.receipts_overdue += len(expired)
        self._last_sent_id = min(self._last_sent_id, min(expired) - 1)
        logged_at, logged_count = self._overdue_logged
        if now - logged_at >= OVERDUE_LOG_S:
            log.info(
                "forwarder: %d records got no storage receipt in time since the last report; sending again",
                self.receipts_overdue - logged_count,
            )
            self._overdue_logged = (now, self.receipts_overdue)

    def _delete_acked(self) -> None:
        """Delete what the broker has. If the spool cannot (a full disk), the records stay marked
        as acknowledged: they are not sent again, and the delete is tried again later."""
        try:
            self._spool.delete(self._acked)
        except TransientError as exc:
            level = logging.DEBUG if self._delete_failed else logging.WARNING
            log.log(level, "forwarder: %d acknowledged records not deleted yet: %s", len(self._acked), exc)
            self._delete_failed = True
            return
        if self._delete_failed:
            log.info("forwarder: the acknowledged records are deleted")
            self._delete_failed = False
        self._acked.clear()
        with self._drained:
            self._drained.notify_all()

    def _restart_window(self, session: int | None) -> None:
        """A new connection (or none): nothing is in flight on it; start from the oldest record."""
        if self._inflight:
            log.info(
                "forwarder: %d records in flight when the connection changed; sending again",
                len(self._inflight),
            )
        self._session = session
        self._inflight.clear()
        self._stored_early.clear()
        self._last_sent_id = 0
        # Forget the resend counts of records no longer awaiting (the spool may have dropped them).
        self._overdue = {spool_id: n for spool_id, n in self._overdue.items() if spool_id in self._awaiting}

    def _fail(self, reason: str) -> None:
        """Forget what is in flight and retry from the oldest spooled record after a backoff."""
        delay_s = self._backoff.next_delay_s()
        self.retries += 1
        log.info("forwarder: %s; retrying in %.1f s", reason, delay_s)
        self._inflight.clear()
        self._stored_early.clear()
        self._last_sent_id = 0
        self._retry_at_s = time.monotonic() + delay_s
