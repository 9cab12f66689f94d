"""The forwarder against an in-memory link that acknowledges each send with a scripted outcome:
refusals, retries, a flush that gives up, and storage receipts (settled, overtaking the PUBACK,
overdue, a seq out twice, the cap on records awaiting theirs). The same forwarder against a real
Mosquitto is tests/integration/test_forwarder.py."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from prognos.edge.forwarder import AckOutcome, Forwarder, LinkListener
from prognos.edge.spool import Priority, Spool
from prognos.errors import TransientError
from prognos.record import decode_record
from tests.support.forwarder_records import fast_backoff, record, submit_all
from tests.support.helpers import wait_for


class ScriptedLink:
    """An in-memory link: acknowledges each send at once with the next scripted outcome, or,
    with `hold_acks`, when `release()` is called."""

    def __init__(self, script: dict[bytes, list[AckOutcome]], *, hold_acks: bool = False) -> None:
        self.session: int | None = 1
        self.reconnects = 0
        self.sent: list[bytes] = []
        self.drops: list[str] = []
        self._script = script
        self._hold_acks = hold_acks
        self._held: list[tuple[int, int, AckOutcome]] = []
        self._listener: LinkListener | None = None

    def set_listener(self, listener: LinkListener | None) -> None:
        self._listener = listener

    def send_record(self, payload: bytes) -> tuple[int, int]:
        assert self.session is not None and self._listener is not None
        self.sent.append(payload)
        outcomes = self._script.get(payload, [])
        outcome = outcomes.pop(0) if outcomes else AckOutcome.ACCEPTED
        self._held.append((self.session, len(self.sent), outcome))
        if not self._hold_acks:
            self.release()
        return self.session, len(self.sent)

    def release(self) -> None:
        assert self._listener is not None
        held, self._held = self._held, []
        for session, mid, outcome in held:
            self._listener.acknowledged(session, mid, outcome, outcome.value)

    def sent_seqs(self) -> list[int]:
        return [decode_record(payload).seq for payload in list(self.sent)]

    def drop_connection(self, reason: str) -> None:
        self.drops.append(reason)


def test_a_refused_record_stays_spooled_and_goes_again_a_retried_one_too(tmp_path: Path) -> None:
    link = ScriptedLink({b"b": [AckOutcome.REJECTED], b"c": [AckOutcome.RETRY]})
    with Spool(tmp_path / "spool.db", max_bytes=1000) as spool:
        forwarder = Forwarder(spool=spool, link=link, max_inflight=1, retry_backoff=fast_backoff())
        try:
            for payload in (b"a", b"b", b"c", b"d"):
                forwarder.submit(payload, Priority.LOW)
            forwarder.flush(10)
        finally:
            forwarder.close()
        assert link.sent == [b"a", b"b", b"b", b"c", b"c", b"d"]
        assert (forwarder.published, forwarder.refused, forwarder.retries) == (4, 1, 2)
        assert len(link.drops) == 2 and "refused" in link.drops[0] and "retry" in link.drops[1]
        assert spool.depth == 0
        assert forwarder.counters()["refused"] == 1


def test_records_refused_for_a_long_time_are_all_kept_and_counted(tmp_path: Path) -> None:
    """An ACL that refuses the vehicle's topic: nothing is deleted, the forwarder backs off,
    and once the broker accepts again every record goes out in order."""
    refusals = 6
    link = ScriptedLink({b"a": [AckOutcome.REJECTED] * refusals})
    with Spool(tmp_path / "spool.db", max_bytes=1000) as spool:
        forwarder = Forwarder(spool=spool, link=link, max_inflight=1, retry_backoff=fast_backoff())
        try:
            for payload in (b"a", b"b", b"c"):
                forwarder.submit(payload, Priority.HIGH)
            forwarder.flush(10)
        finally:
            forwarder.close()
        assert link.sent == [b"a"] * (refusals + 1) + [b"b", b"c"]
        assert (forwarder.refused, forwarder.retries, forwarder.published) == (refusals, refusals, 3)
        assert spool.depth == 0


def test_flush_says_how_much_is_left_when_it_gives_up(tmp_path: Path) -> None:
    link = ScriptedLink({})
    link.session = None  # never connected
    with Spool(tmp_path / "spool.db", max_bytes=1000) as spool:
        forwarder = Forwarder(spool=spool, link=link)
        try:
            forwarder.submit(b"x", Priority.HIGH)
            forwarder.submit(b"y", Priority.LOW)
            with pytest.raises(TransientError, match="2 records still spooled"):
                forwarder.flush(0.2)
        finally:
            forwarder.close()
        assert link.sent == []


# ---------------------------------------------------------------- storage receipts


def receipt_forwarder(
    spool: Spool, link: ScriptedLink, *, receipt_timeout_s: float = 30.0, max_awaiting: int = 10_000
) -> Forwarder:
    return Forwarder(
        spool=spool,
        link=link,
        retry_backoff=fast_backoff(),
        receipt_timeout_s=receipt_timeout_s,
        max_awaiting=max_awaiting,
    )


def test_with_receipts_a_record_leaves_the_spool_on_its_receipt_not_its_puback(tmp_path: Path) -> None:
    link = ScriptedLink({})
    with Spool(tmp_path / "spool.db", max_bytes=10**6) as spool:
        forwarder = receipt_forwarder(spool, link)
        try:
            submit_all(forwarder, [record(seq, seq) for seq in (1, 2, 3)])
            wait_for(lambda: forwarder.awaiting_receipt == 3, what="three PUBACKs")
            assert spool.depth == 3 and forwarder.published == 3
            forwarder.stored([3, 1, 99])  # 99: not one of ours (an old receipt)
            wait_for(lambda: spool.depth == 1, what="two records deleted")
            assert [decode_record(r.payload).seq for r in spool.peek(10)] == [2]
            forwarder.stored([2])
            forwarder.flush(5)
        finally:
            forwarder.close()
        assert link.sent_seqs() == [1, 2, 3], "nothing is sent twice while receipts come in time"
        counters = forwarder.counters()
        assert (counters["receipted"], counters["receipts_overdue"], counters["published"]) == (3, 0, 3)


def test_a_receipt_that_overtakes_the_puback_still_settles_the_record(tmp_path: Path) -> None:
    link = ScriptedLink({}, hold_acks=True)
    with Spool(tmp_path / "spool.db", max_bytes=10**6) as spool:
        forwarder = receipt_forwarder(spool, link)
        try:
            submit_all(forwarder, [record(1, 0)])
            wait_for(lambda: link.sent, what="the record sent")
            forwarder.stored([1])
            wait_for(lambda: forwarder.receipted == 1, what="the receipt taken")
            assert forwarder.in_flight == 1 and spool.depth == 1
            link.release()
            forwarder.flush(5)
        finally:
            forwarder.close()
        assert link.sent_seqs() == [1] and forwarder.awaiting_receipt == 0


def test_a_record_whose_receipt_is_overdue_goes_out_again_each_time_later(tmp_path: Path) -> None:
    """The broker acknowledged it and then lost it (or ingest never stored it): after
    receipt_timeout_s it is published again, then after twice that, and so on."""
    timeout_s = 0.3
    link = ScriptedLink({})
    with Spool(tmp_path / "spool.db", max_bytes=10**6) as spool:
        forwarder = receipt_forwarder(spool, link, receipt_timeout_s=timeout_s)
        try:
            began = time.monotonic()
            submit_all(forwarder, [record(1, 0), record(2, 1)])
            wait_for(lambda: forwarder.awaiting_receipt == 2, what="two PUBACKs")
            forwarder.stored([2])
            wait_for(lambda: link.sent_seqs().count(1) >= 3, timeout_s=10, what="two resends")
            elapsed_s = time.monotonic() - began
            forwarder.stored([1])
            forwarder.flush(5)
        finally:
            forwarder.close()
        # 0.3 s, then 0.6 s: at least 0.9 s; with a fixed wait it would be 0.6 s.
        assert elapsed_s >= 3 * timeout_s - 0.05, f"the second resend came after {elapsed_s:.2f} s"
        assert link.sent_seqs().count(2) == 1, "a record with its receipt is not sent again"
        assert forwarder.receipts_overdue >= 2 and forwarder.receipted == 2 and spool.depth == 0


def test_a_seq_that_is_out_twice_is_settled_by_its_puback(tmp_path: Path) -> None:
    """A receipt names records by seq; two spooled records with one seq cannot both wait for
    it, so the second is deleted on its PUBACK, as without receipts."""
    link = ScriptedLink({})
    with Spool(tmp_path / "spool.db", max_bytes=10**6) as spool:
        forwarder = receipt_forwarder(spool, link)
        try:
            submit_all(forwarder, [record(7, 0), record(7, 1)])
            wait_for(lambda: forwarder.published == 2, what="two PUBACKs")
            wait_for(lambda: spool.depth == 1, what="the second deleted")
            assert forwarder.awaiting_receipt == 1
            forwarder.stored([7])
            forwarder.flush(5)
        finally:
            forwarder.close()


def test_no_new_record_goes_out_while_max_awaiting_wait_for_their_receipt(tmp_path: Path) -> None:
    link = ScriptedLink({})
    with Spool(tmp_path / "spool.db", max_bytes=10**6) as spool:
        forwarder = receipt_forwarder(spool, link, max_awaiting=2)
        try:
            submit_all(forwarder, [record(seq, seq) for seq in (1, 2, 3, 4)])
            wait_for(lambda: forwarder.awaiting_receipt == 2, what="two PUBACKs")
            time.sleep(0.3)
            assert link.sent_seqs() == [1, 2]
            forwarder.stored([1])
            wait_for(lambda: link.sent_seqs() == [1, 2, 3], what="the third record sent")
            forwarder.stored([2, 3])
            wait_for(lambda: link.sent_seqs() == [1, 2, 3, 4], what="the fourth record sent")
            forwarder.stored([4])
            forwarder.flush(5)
        finally:
            forwarder.close()
