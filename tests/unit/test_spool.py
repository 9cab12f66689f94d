"""The spool on disk (order, bound, drop policy, resume, durability under SIGKILL, clear errors)
and the full-jitter backoff."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from prognos.backoff import Backoff
from prognos.edge.spool import RESERVE_BYTES, Priority, Spool, SpoolFull, priority_for
from prognos.errors import ConfigError
from prognos.record import Trigger
from tests.support.chaos_rig import MountRefused, fill, small_file_system

PROJECT = Path(__file__).resolve().parents[2]
LOW, HIGH = Priority.LOW, Priority.HIGH


def highest(low: float, high: float) -> float:
    return high


# Backoff


def test_backoff_windows_double_from_base_up_to_the_cap() -> None:
    backoff = Backoff(base_s=0.5, cap_s=10.0, uniform=highest)
    assert [backoff.next_delay_s() for _ in range(8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]


def test_backoff_draws_uniformly_from_zero_to_the_window() -> None:
    calls: list[tuple[float, float]] = []

    def spy(low: float, high: float) -> float:
        calls.append((low, high))
        return (low + high) / 2

    backoff = Backoff(base_s=1.0, cap_s=4.0, uniform=spy)
    delays = [backoff.next_delay_s() for _ in range(4)]
    assert calls == [(0.0, 1.0), (0.0, 2.0), (0.0, 4.0), (0.0, 4.0)], "full jitter: the low end is always 0"
    assert delays == [0.5, 1.0, 2.0, 2.0]


def test_backoff_delays_stay_in_bounds_and_spread_out() -> None:
    backoff = Backoff(base_s=0.1, cap_s=30.0, uniform=random.Random(7).uniform)
    for _ in range(20):
        window = backoff.window_s()
        delay = backoff.next_delay_s()
        assert 0.0 <= delay <= window <= 30.0
    capped = [backoff.next_delay_s() for _ in range(2000)]
    assert max(capped) <= 30.0
    assert min(capped) < 3.0 and max(capped) > 27.0, "full jitter uses the whole window"


def test_backoff_reset_starts_again_from_base() -> None:
    backoff = Backoff(base_s=1.0, cap_s=60.0, uniform=highest)
    for _ in range(5):
        backoff.next_delay_s()
    assert backoff.window_s() == 32.0
    backoff.reset()
    assert backoff.attempt == 0
    assert backoff.next_delay_s() == 1.0


def test_backoff_survives_an_outage_of_any_length() -> None:
    backoff = Backoff(base_s=0.001, cap_s=300.0, uniform=highest)
    for _ in range(100_000):
        delay = backoff.next_delay_s()
    assert delay == 300.0
    assert backoff.attempt < 64, "the attempt count stops growing at the cap"


@pytest.mark.parametrize(("base_s", "cap_s"), [(0.0, 1.0), (-1.0, 1.0), (2.0, 1.0)])
def test_backoff_rejects_nonsense(base_s: float, cap_s: float) -> None:
    with pytest.raises(ConfigError, match="backoff"):
        Backoff(base_s=base_s, cap_s=cap_s)


# Spool basics


def test_only_anomaly_records_are_high_priority() -> None:
    assert priority_for(Trigger.ANOMALY) is HIGH
    assert priority_for(Trigger.HEARTBEAT) is LOW
    assert priority_for(Trigger.CHANGE) is LOW


def test_records_come_back_in_insertion_order_until_deleted(tmp_path: Path) -> None:
    with Spool(tmp_path / "spool.db", max_bytes=1_000_000) as spool:
        ids = [spool.put(f"record {i}".encode(), HIGH if i % 3 == 0 else LOW) for i in range(10)]
        assert ids == sorted(ids) and len(set(ids)) == 10
        assert spool.depth == 10
        assert spool.size_bytes == sum(len(f"record {i}") for i in range(10))
        first = spool.peek(4)
        assert [r.payload for r in first] == [b"record 0", b"record 1", b"record 2", b"record 3"]
        assert [r.priority for r in first] == [HIGH, LOW, LOW, HIGH]
        assert [r.id for r in spool.peek(3, after_id=ids[4])] == ids[5:8]
        assert spool.peek(100, after_id=ids[-1]) == []
        assert spool.delete([ids[0], ids[2], 99_999]) == 2, "unknown ids are ignored"
        assert spool.delete([ids[0]]) == 0, "deleting twice is harmless"
        assert [r.id for r in spool.peek(100)] == [ids[1], *ids[3:]]
        assert spool.depth == 8
        assert spool.size_bytes == 8 * len(b"record 0")
        assert spool.delete(ids) == 8
        assert (spool.depth, spool.size_bytes) == (0, 0)


def test_reopening_resumes_the_spool_and_ids_keep_growing(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    with Spool(path, max_bytes=1_000_000) as spool:
        ids = [spool.put(bytes([i]) * 10, LOW) for i in range(5)]
        spool.delete(ids[:2])
    with Spool(path, max_bytes=1_000_000) as spool:
        assert [r.id for r in spool.peek(10)] == ids[2:]
        assert [r.payload for r in spool.peek(10)] == [bytes([i]) * 10 for i in range(2, 5)]
        assert (spool.depth, spool.size_bytes) == (3, 30)
        spool.delete(ids)
        newer = spool.put(b"after", HIGH)
    with Spool(path, max_bytes=1_000_000) as spool:
        assert newer > ids[-1], "an id is never reused, even after the spool was emptied"
        assert [(r.id, r.payload) for r in spool.peek(10)] == [(newer, b"after")]


def test_sequence_numbers_claimed_from_a_spool_never_repeat_across_reopens(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    with Spool(path, max_bytes=1_000_000) as spool:
        assert spool.claim_seqs(10) == 1, "a new spool numbers from 1"
        assert spool.claim_seqs(5) == 11
    with Spool(path, max_bytes=1_000_000) as spool:
        assert spool.claim_seqs(1 << 32) == 16
        assert spool.claim_seqs(1) == 16 + (1 << 32)
        with pytest.raises(ValueError, match="count must be >= 1"):
            spool.claim_seqs(0)


# Size bound and drop policy


def test_over_the_bound_the_oldest_low_priority_records_go_first(tmp_path: Path) -> None:
    with Spool(tmp_path / "spool.db", max_bytes=100) as spool:
        alert = spool.put(b"A" * 20, HIGH)
        lows = [spool.put(bytes([i]) * 20, LOW) for i in range(4)]
        assert spool.dropped == 0 and spool.size_bytes == 100, "exactly at the bound is within it"
        newest = spool.put(b"n" * 30, LOW)
        # 130 bytes: the two oldest heartbeats (40 bytes) go; the alert stays although it is older.
        assert [r.id for r in spool.peek(10)] == [alert, lows[2], lows[3], newest]
        assert spool.dropped == 2
        assert spool.size_bytes == 90 and spool.depth == 4
        assert spool.overfull == 0


def test_alerts_are_never_dropped_even_over_the_bound(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    with Spool(path, max_bytes=100) as spool:
        low = spool.put(b"l" * 20, LOW)
        alerts = [spool.put(b"A" * 40, HIGH) for _ in range(2)]
        assert [r.id for r in spool.peek(10)] == [low, *alerts]
        third = spool.put(b"A" * 40, HIGH)  # 140 bytes: the heartbeat goes, then only alerts are left
        assert [r.id for r in spool.peek(10)] == [*alerts, third]
        assert (spool.dropped, spool.overfull, spool.size_bytes) == (1, 1, 120)
        late_low = spool.put(b"l" * 10, LOW)  # only alerts to drop: the new heartbeat itself goes
        assert late_low > third
        assert [r.id for r in spool.peek(10)] == [*alerts, third]
        assert (spool.dropped, spool.overfull) == (2, 2)
        spool.put(b"A" * 10, HIGH)
        assert spool.depth == 4 and spool.size_bytes == 130
    with Spool(path, max_bytes=100) as spool:
        assert (spool.dropped, spool.overfull) == (2, 3), "the counters live in the spool file"


def test_a_stream_of_heartbeats_keeps_the_newest_that_fit(tmp_path: Path) -> None:
    with Spool(tmp_path / "spool.db", max_bytes=1000) as spool:
        ids = {spool.put(f"{i:05d}".encode() * 10, LOW): i for i in range(200)}
        kept = [ids[r.id] for r in spool.peek(1000)]
        assert kept == list(range(180, 200))
        assert spool.dropped == 180 and spool.size_bytes == 1000


# A full disk (docs/spool.md, "Full disk")


def payload(i: int, size: int = 200) -> bytes:
    return f"{i:08d}".encode() * (size // 8)


def test_a_full_database_drops_the_oldest_heartbeats_to_keep_alerts_and_counts_what_it_cannot_keep(
    tmp_path: Path,
) -> None:
    """SQLite's max_page_count gives the SQLITE_FULL of a full disk without mounting one."""
    path = tmp_path / "spool.db"
    with Spool(path, max_bytes=10**8, reserve_bytes=0) as spool:
        spool._db.execute("PRAGMA max_page_count = 20")
        heartbeats = [spool.put(payload(i), LOW) for i in range(600)]  # more than 20 pages hold
        assert spool.dropped > 0 and spool.unstored == 0
        kept = [r.id for r in spool.peek(1000)]
        assert kept == heartbeats[-len(kept) :], "the newest heartbeats are kept, the oldest dropped"
        alerts = []
        with pytest.raises(SpoolFull):
            for i in range(10_000):
                alerts.append(spool.put(payload(i), HIGH))
        assert alerts, "alerts are stored as long as heartbeats can be dropped"
        left = spool.peek(10_000)
        assert set(alerts) <= {r.id for r in left}, "every alert stored is kept"
        # An alert goes unstored only when dropping every heartbeat left would not make room:
        # what is left of them shares its pages with alerts.
        assert sum(len(r.payload) for r in left if r.priority is LOW) < 4096
        assert spool.unstored == 1
        assert spool.delete(alerts[:50]) == 50, "deleting works on a full database"
        spool.put(b"room again", HIGH)
        depth = spool.depth
    with Spool(path, max_bytes=10**8, reserve_bytes=0) as spool:
        assert spool.depth == depth, "nothing already spooled was lost"
        assert spool.unstored == 0, "unstored counts since the spool was opened"


def test_a_full_file_system_gives_back_the_reserve_keeps_what_it_has_and_recovers(tmp_path: Path) -> None:
    """A real ENOSPC on a small tmpfs, filled up by something else."""
    try:
        with small_file_system(tmp_path / "fs", "8m") as fs:
            path = fs / "spool.db"
            with Spool(path, max_bytes=10**8) as spool:
                assert (fs / "spool.db.reserve").stat().st_size == RESERVE_BYTES
                early = [spool.put(payload(i), HIGH if i % 5 == 0 else LOW) for i in range(100)]
                fill(fs / "ballast")
                later = []
                for i in range(100, 400):
                    later.append(spool.put(payload(i), HIGH if i % 5 == 0 else LOW))
                assert spool.disk_full, "the spool found its file system full"
                assert not (fs / "spool.db.reserve").exists(), "and gave back its reserve"
                assert spool.dropped > 0 and spool.unstored == 0
                ids = {r.id for r in spool.peek(10_000)}
                alerts = [spool_id for n, spool_id in enumerate(early + later) if n % 5 == 0]
                assert set(alerts) <= ids, "no alert dropped while heartbeats could go"
                fill(fs / "ballast-2")  # the room it gave back is taken too
                with pytest.raises(SpoolFull):
                    for i in range(10_000):
                        spool.put(payload(i), HIGH)
                assert spool.unstored == 1
                kept = spool.depth
                for ballast in ("ballast", "ballast-2"):
                    (fs / ballast).unlink()
                spool.put(b"room again", LOW)
                assert not spool.disk_full and (fs / "spool.db.reserve").stat().st_size == RESERVE_BYTES
                assert spool.delete(r.id for r in spool.peek(10_000)) == kept + 1
    except MountRefused as exc:
        pytest.skip(f"{exc}; the max_page_count test covers SQLITE_FULL")


# Durability


CHILD = textwrap.dedent(
    """
    import sys
    from prognos.edge.spool import Priority, Spool

    spool = Spool(sys.argv[1], max_bytes=10**9)
    i = int(sys.argv[2])
    while True:
        spool_id = spool.put(b"payload-%d;" % i * 20, Priority.HIGH if i % 7 == 0 else Priority.LOW)
        print(spool_id, i, flush=True)
        i += 1
    """
)


def payload_of(number: int) -> bytes:
    return b"payload-%d;" % number * 20


def test_sigkill_loses_no_record_whose_put_returned(tmp_path: Path) -> None:
    """A child puts records and prints each id after put() returned; it is killed mid-stream,
    three times over the same spool. Every printed id must be there, with its payload."""
    path = tmp_path / "spool.db"
    acknowledged: dict[int, int] = {}  # spool id -> record number, for every put() that returned
    unconfirmed: dict[int, int] = {}  # records that landed although their put() never returned
    first_number = 0
    for round_number in range(3):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path), str(first_number)],
            cwd=PROJECT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        lines = [child.stdout.readline() for _ in range(40 + 25 * round_number)]
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(10) == -signal.SIGKILL
        lines += child.stdout.read().splitlines(keepends=True)
        child.stdout.close()
        printed = [line.split() for line in lines if line.endswith("\n")]
        assert len(printed) >= 40 + 25 * round_number
        acknowledged.update((int(spool_id), int(number)) for spool_id, number in printed)
        last_number = int(printed[-1][1])

        with Spool(path, max_bytes=10**9) as spool:
            stored = {r.id: r.payload for r in spool.peek(10**6)}
        lost = sorted(set(acknowledged) - set(stored))
        assert not lost, f"records whose put() returned are gone after SIGKILL: {lost[:5]}"
        assert all(stored[i] == payload_of(n) for i, n in acknowledged.items())
        assert sorted(stored) == list(range(1, len(stored) + 1)), "ids stay dense and ordered"
        extra = sorted(set(stored) - set(acknowledged) - set(unconfirmed))
        assert len(extra) <= 1, "only the put() in progress may land without having returned"
        if extra:
            assert stored[extra[0]] == payload_of(last_number + 1)
            unconfirmed[extra[0]] = last_number + 1
        first_number = last_number + 2


# Errors


def assert_one_clear_line(exc: pytest.ExceptionInfo[ConfigError], *fragments: str) -> None:
    message = str(exc.value)
    assert "\n" not in message and "Traceback" not in message
    for fragment in fragments:
        assert fragment in message


def test_missing_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        Spool(tmp_path / "nowhere" / "spool.db", max_bytes=1000)
    assert_one_clear_line(exc, "does not exist", str(tmp_path / "nowhere"))


def test_a_directory_is_not_a_spool_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        Spool(tmp_path, max_bytes=1000)
    assert_one_clear_line(exc, "is a directory")


def test_a_file_in_the_way_of_the_directory(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError) as exc:
        Spool(tmp_path / "file" / "spool.db", max_bytes=1000)
    assert_one_clear_line(exc, "is not a directory")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write in any directory")
def test_unwritable_directory_is_a_config_error(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(ConfigError) as exc:
        Spool(locked / "spool.db", max_bytes=1000)
    assert_one_clear_line(exc, "not writable", str(locked))


def test_a_directory_where_no_file_can_be_created_is_a_config_error() -> None:
    # /proc accepts no new files, for root too.
    with pytest.raises(ConfigError) as exc:
        Spool("/proc/prognos-spool.db", max_bytes=1000)
    assert_one_clear_line(exc, "/proc")


def test_corrupt_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    path.write_bytes(random.Random(1).randbytes(8192))
    with pytest.raises(ConfigError) as exc:
        Spool(path, max_bytes=1000)
    assert_one_clear_line(exc, str(path), "move it aside")


def test_damaged_pages_are_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    with Spool(path, max_bytes=10**7) as spool:
        for i in range(200):
            spool.put(bytes([i % 256]) * 2000, LOW)
    data = bytearray(path.read_bytes())
    data[8192:40960] = random.Random(2).randbytes(40960 - 8192)  # scribble over pages past the header
    path.write_bytes(bytes(data))
    with pytest.raises(ConfigError) as exc:
        Spool(path, max_bytes=10**7)
    assert_one_clear_line(exc, str(path))


def test_another_sqlite_database_is_not_taken_for_a_spool(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE record (x)")
    with pytest.raises(ConfigError) as exc:
        Spool(path, max_bytes=1000)
    assert_one_clear_line(exc, "not a Prognos spool")


def test_a_spool_from_a_newer_agent_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    Spool(path, max_bytes=1000).close()
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(ConfigError) as exc:
        Spool(path, max_bytes=1000)
    assert_one_clear_line(exc, "format version 99")


def test_one_spool_one_process(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    with Spool(path, max_bytes=1000):
        with pytest.raises(ConfigError) as exc:
            Spool(path, max_bytes=1000)
        assert_one_clear_line(exc, "in use by another process")
    Spool(path, max_bytes=1000).close()


def test_max_bytes_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="max_bytes"):
        Spool(tmp_path / "spool.db", max_bytes=0)
