"""Entitlement ledger verification: a ledger of 1,000,000 signed entries in SQLite, verified by
prognos.desk.ledger.verify_ledger (the code behind `prognos desk entitlements verify`).

    .venv/bin/python benchmarks/desk_ledger.py [--entries 1000000] [--db FILE] [--jobs 2] [--verify-only]

Builds the ledger first (unless --db names a file that already holds one, made by an earlier
run with the same --entries; the key is kept beside it as FILE.pem): prepaid maintenance packages
and warranties granted to 50,000 customers, services consumed, a few transfers and revocations,
in time order, chained and signed in bulk (prognos.desk.ledger.seal) and inserted with
executemany. Then it times, pinned to one core:

- reading the rows only (the store's share);
- the chain without signatures: body against columns, links, hashes (verify_ledger's own work);
- one signature, measured alone on 10,000 entries: the floor every entry costs;
- verify_ledger itself, everything, one process;

and, unpinned, verify_ledger with --jobs N processes checking the signatures. Results are
recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from sqlalchemy import Engine, func, insert, select  # noqa: E402

from prognos.desk import schema  # noqa: E402
from prognos.desk.entitlements import Body  # noqa: E402
from prognos.desk.ledger import (  # noqa: E402
    GENESIS,
    Entry,
    _entries,
    seal,
    signed_message,
    structure_problem,
    verify_ledger,
)
from prognos.desk.store import connect  # noqa: E402
from prognos.signing import key_id, load_private_key, signer, verifier  # noqa: E402

START = datetime(2024, 1, 1, tzinfo=UTC)
CUSTOMERS = 50_000
BATCH = 10_000
SEED = 7


def pin_to_one_core() -> str:
    if hasattr(os, "sched_setaffinity"):
        core = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {core})
        return f"pinned to core {core}"
    return "not pinned (no sched_setaffinity)"


@dataclass(slots=True)
class Holding:
    entitlement_id: str
    holder: str
    center: str
    left: int | None  # services left; None: a warranty
    revoked: bool = False


def take(items: list[Holding], rng: random.Random) -> Holding:
    """Remove and return a random item in O(1) (the last one moves into its place)."""
    index = rng.randrange(len(items))
    chosen = items[index]
    items[index] = items[-1]
    items.pop()
    return chosen


def bodies(count: int) -> Iterator[Body]:
    """`count` ledger bodies in seq order: grants (2 in 5 a maintenance package of 3 to 6
    services, the rest warranties), consumptions of open packages, a transfer or revocation
    now and then; one every 30 s or so."""
    rng = random.Random(SEED)
    open_packages: list[Holding] = []
    active: list[Holding] = []
    granted = 0
    at = START
    for seq in range(1, count + 1):
        at += timedelta(seconds=rng.randint(1, 60))
        common: Body = {"v": 1, "seq": seq, "at": at.isoformat(), "actor": "bench"}
        roll = rng.random()
        if roll < 0.45 and open_packages:
            package = open_packages[rng.randrange(len(open_packages))]
            if package.revoked or not package.left:
                take(open_packages, rng)
            else:
                package.left -= 1
                yield {
                    **common,
                    "kind": "consume",
                    "entitlement_id": package.entitlement_id,
                    "customer_id": package.holder,
                    "units": 1,
                    "center_id": package.center,
                    "reference": f"WO-{seq:08d}",
                }
                continue
        if roll < 0.47 and active:
            held = active[rng.randrange(len(active))]
            new_holder = f"C{rng.randrange(CUSTOMERS):06d}"
            if not held.revoked and held.left != 0 and new_holder != held.holder:
                yield {
                    **common,
                    "kind": "transfer",
                    "entitlement_id": held.entitlement_id,
                    "customer_id": new_holder,
                    "center_id": held.center,
                    "from_customer_id": held.holder,
                    "from_center_id": held.center,
                    "reason": "vehicle sold",
                }
                held.holder = new_holder
                continue
        if roll < 0.48 and active:
            held = take(active, rng)
            if not held.revoked and held.left != 0:
                held.revoked = True
                yield {
                    **common,
                    "kind": "revoke",
                    "entitlement_id": held.entitlement_id,
                    "customer_id": held.holder,
                    "reason": "refunded",
                }
                continue
        granted += 1
        entitlement = f"E{granted:08d}"
        customer = f"C{rng.randrange(CUSTOMERS):06d}"
        center = f"SC-{rng.randrange(1, 51):02d}"
        maintenance = rng.random() < 0.4
        units = rng.randint(3, 6) if maintenance else None
        yield {
            **common,
            "kind": "grant",
            "entitlement_id": entitlement,
            "customer_id": customer,
            "vin": f"VF1BENCH{granted:09d}",
            "product": "maintenance" if maintenance else rng.choice(["warranty", "extended_warranty"]),
            "units": units,
            "valid_from": at.isoformat(),
            "valid_until": (at + timedelta(days=rng.choice([730, 1095, 1825]))).isoformat(),
            "center_id": center,
            "dealer_id": f"D{rng.randrange(1, 11):02d}",
        }
        holding = Holding(entitlement, customer, center, units)
        active.append(holding)
        if maintenance:
            open_packages.append(holding)


def build(engine: Engine, key: Ed25519PrivateKey, count: int) -> float:
    sign = signer(key)
    signed_by = key_id(key.public_key())
    started = time.perf_counter()
    rows: list[dict[str, object]] = []
    prev_hash = GENESIS
    newest: dict[object, str] = {}  # entitlement -> hash of its newest entry (the next one follows it)
    with engine.begin() as connection:
        connection.exec_driver_sql("PRAGMA cache_size = -400000")  # 400 MB: the hash index is random
        for body in bodies(count):
            if body["kind"] != "grant":
                body["follows"] = newest[body["entitlement_id"]]
            entry = next(seal([body], prev_hash=prev_hash, sign=sign, key_id=signed_by))
            newest[entry.entitlement_id] = prev_hash = entry.hash
            rows.append(entry.row())
            if len(rows) == BATCH:
                connection.execute(insert(schema.ledger), rows)
                rows = []
                if entry.seq % 100_000 == 0:
                    print(f"  {entry.seq:,} entries ({time.perf_counter() - started:.0f} s)", flush=True)
        if rows:
            connection.execute(insert(schema.ledger), rows)
    return time.perf_counter() - started


T = TypeVar("T")


def cpu_s() -> float:
    """CPU seconds of this process and of its children that have ended (the --jobs workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(work: Callable[[], T]) -> tuple[float, float, T]:
    """(wall seconds, CPU seconds, result): the machine is shared, so the CPU time says what the
    work cost when other jobs took the core away for part of the wall time."""
    started, started_cpu = time.perf_counter(), cpu_s()
    result = work()
    return time.perf_counter() - started, cpu_s() - started_cpu, result


def figure(name: str, wall_s: float, cpu: float, entries: int, note: str = "") -> None:
    print(
        f"{name:<34} {wall_s:6.1f} s wall ({wall_s / entries * 1e6:5.1f} us/entry), {cpu:6.1f} s CPU {note}"
    )


def read_only(engine: Engine) -> int:
    with engine.connect() as connection:
        return sum(1 for _ in _entries(connection, 5000))


def chain_only(engine: Engine, key_ids: set[str]) -> int:
    checked, prev_hash = 0, GENESIS
    with engine.connect() as connection:
        for entry in _entries(connection, 5000):
            if structure_problem(entry, prev_hash=prev_hash, key_ids=key_ids):
                raise SystemExit(f"entry {entry.seq} is bad")
            checked, prev_hash = entry.seq, entry.hash
    return checked


def signature_floor_us(engine: Engine, key: Ed25519PrivateKey) -> float:
    verify = verifier(key.public_key())
    with engine.connect() as connection:
        sample: list[Entry] = []
        for entry in _entries(connection, 5000):
            sample.append(entry)
            if len(sample) == 10_000:
                break
    pairs = [(bytes.fromhex(e.signature), signed_message(e.hash)) for e in sample]
    started = time.perf_counter()
    for signature, message in pairs:
        assert verify(signature, message)
    return (time.perf_counter() - started) / len(pairs) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--entries", type=int, default=1_000_000, help="ledger entries (default: 1,000,000)")
    parser.add_argument(
        "--db", type=Path, default=None, help="SQLite file to build in or reuse (default: temporary)"
    )
    parser.add_argument(
        "--jobs", type=int, default=2, help="processes for the --jobs figure (default: 2; 0: skip)"
    )
    parser.add_argument("--verify-only", action="store_true", help="time verify_ledger only")
    args = parser.parse_args()

    cores = os.sched_getaffinity(0) if hasattr(os, "sched_setaffinity") else None
    temporary = tempfile.TemporaryDirectory(prefix="ledger-bench-") if args.db is None else None
    path = args.db if args.db is not None else Path(temporary.name) / "desk.db"  # type: ignore[union-attr]
    key_path = path.with_suffix(".pem")
    engine = connect(f"sqlite:///{path}")
    with engine.connect() as connection:
        present = connection.execute(select(func.count()).select_from(schema.ledger)).scalar_one()
    if present and present == args.entries and key_path.exists():
        key = load_private_key(key_path)
        print(f"reusing {path}: {present:,} entries")
    elif present:
        raise SystemExit(
            f"{path} holds {present:,} entries, not {args.entries:,}: remove it or give another --db"
        )
    else:
        key = Ed25519PrivateKey.generate()
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        print(f"building {args.entries:,} entries in {path} ...")
        seconds = build(engine, key, args.entries)
        print(f"built: {args.entries:,} entries in {seconds:.1f} s ({args.entries / seconds:,.0f} entries/s)")
    print(f"database: {path.stat().st_size / 1e6:.0f} MB")
    public = key.public_key()

    print(f"{pin_to_one_core()}; load average {os.getloadavg()[0]:.2f} (other jobs on the machine)")
    if not args.verify_only:
        wall_s, cpu, _ = timed(lambda: read_only(engine))
        figure("read rows only", wall_s, cpu, args.entries)
        wall_s, cpu, _ = timed(lambda: chain_only(engine, {key_id(public)}))
        figure("chain without signatures", wall_s, cpu, args.entries)
        floor = signature_floor_us(engine, key)
        floor_s = floor * args.entries / 1e6
        print(
            f"{'one signature (floor)':<34} {floor:6.1f} us -> {floor_s:.1f} s for {args.entries:,} entries"
        )
    wall_s, cpu, report = timed(lambda: verify_ledger(engine, public))
    figure("verify_ledger, one core", wall_s, cpu, args.entries, f"holds={report.holds}")
    if args.jobs > 0 and cores is not None:
        os.sched_setaffinity(0, cores)
        wall_s, cpu, report = timed(lambda: verify_ledger(engine, public, jobs=args.jobs))
        name = f"verify_ledger, --jobs {args.jobs} ({len(cores)} cores)"
        figure(name, wall_s, cpu, args.entries, f"holds={report.holds}")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    engine.dispose()
    if temporary is not None:
        temporary.cleanup()


if __name__ == "__main__":
    main()
