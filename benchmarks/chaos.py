"""Chaos on the real stack for minutes: records sent against records stored, per fault.

    .venv/bin/python benchmarks/chaos.py [--minutes 3] [--seed S] [--vehicles 3] [--workers 2]
        [--rate 25] [--faults-per-minute 12] [--without-receipts] [--crash] [--home DIR]

On a stack of its own (a temporary directory, or --home; the secure stack, with TLS, logins and
ACLs, each vehicle provisioned), with the code tests/integration/test_chaos.py runs
(tests/support/chaos_rig.py): agents (the gateway's spool, forwarder and MQTT uplink, each
behind a relay that can partition it) and ingest workers as processes; faults at seeded random
times, each lasting 0.5-4 s: SIGKILL of the broker, of the database, of an ingest worker, of an
agent, and a partition of an agent's link. At the end every agent drains its spool and each
record the agents produced is looked up in InfluxDB. One row per fault, with the records
produced from it until the next fault:

    sent     produced: the agent's spool stored it (submit() returned)
    acked    the spool deleted it: on ingest's storage receipt (as shipped), or on the broker's
             PUBACK (--without-receipts)
    stored   in InfluxDB
    lost     sent and not stored; split by cause: `crash`, acknowledged after the broker last
             saved and before a SIGKILL of it; `restart`, acknowledged after a broker restart and
             before an ingest worker had subscribed again; `other`, anything else (must be 0)
    dup      stored more than once (must be 0)

--without-receipts runs the same seed again with agents that delete a record on its PUBACK, as
gateways without receipt_timeout_s do: what the broker loses is then lost.
--crash measures a broker SIGKILL right after the last PUBACK, ingest online and offline, with
and without receipts: records lost, publish rate, broker CPU.
Figures are recorded in docs/chaos.md.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.chaos_rig import (  # noqa: E402
    RECEIPT_TIMEOUT_S,
    ChaosPlan,
    format_report,
    measure_broker_crash,
    run_chaos,
    start_stack,
)


def chaos(home: Path, args: argparse.Namespace, seed: int, *, receipts: bool) -> None:
    plan = ChaosPlan(
        seed=seed,
        duration_s=args.minutes * 60.0,
        vehicles=args.vehicles,
        workers=args.workers,
        rate_per_s=args.rate,
        faults=max(1, round(args.minutes * args.faults_per_minute)),
        receipt_timeout_s=RECEIPT_TIMEOUT_S if receipts else None,
    )
    title = "as shipped (records kept until their receipt)" if receipts else "without receipts"
    print(f"\n== chaos, {title}", flush=True)
    began = time.monotonic()
    report = run_chaos(home, plan, start=start_stack, say=lambda line: print(f"   {line}", flush=True))
    print(format_report(report))
    print(f"({time.monotonic() - began:.0f} s with the drain and the check)", flush=True)


def crash(home: Path) -> None:
    print("\n== broker SIGKILL right after the last PUBACK (ingest worker's session saved before)")
    print(f"{'receipts':>9} {'ingest':>8} {'records':>8} {'lost':>6} {'rec/s':>7} {'broker cpu s':>13}")
    for records in (2000, 300):
        for receipts in (False, True):
            for online in (False, True):
                result = measure_broker_crash(
                    home / f"crash-{records}-{receipts}-{online}",
                    start=start_stack,
                    ingest_online=online,
                    records=records,
                    rate_per_s=1000.0,
                    receipt_timeout_s=RECEIPT_TIMEOUT_S if receipts else None,
                    say=lambda line: None,
                )
                print(
                    f"{'yes' if receipts else 'no':>9} {'online' if online else 'offline':>8} "
                    f"{result.produced:>8} {result.lost:>6} {result.produced / result.publish_s:>7.0f} "
                    f"{result.broker_cpu_s:>13.2f}",
                    flush=True,
                )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=3.0, help="length of the run (default: 3)")
    parser.add_argument(
        "--seed", type=int, default=None, help="fault schedule seed (default: drawn, printed)"
    )
    parser.add_argument("--vehicles", type=int, default=3, help="agents (default: 3)")
    parser.add_argument("--workers", type=int, default=2, help="ingest workers (default: 2)")
    parser.add_argument("--rate", type=float, default=25.0, help="records per second per agent (default: 25)")
    parser.add_argument("--faults-per-minute", type=float, default=12.0, help="(default: 12)")
    parser.add_argument(
        "--without-receipts",
        action="store_true",
        help="run the seed again with agents that delete a record on its PUBACK",
    )
    parser.add_argument(
        "--crash", action="store_true", help="measure a broker SIGKILL, with and without receipts"
    )
    parser.add_argument("--home", type=Path, default=None, help="work directory (default: a temporary one)")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1_000_000)
    print(f"benchmarks/chaos.py --minutes {args.minutes:g} --seed {seed}", flush=True)
    with tempfile.TemporaryDirectory(prefix="prognos-chaos-") as scratch:
        home = args.home or Path(scratch)
        chaos(home / "shipped", args, seed, receipts=True)
        if args.without_receipts:
            chaos(home / "without-receipts", args, seed, receipts=False)
        if args.crash:
            crash(home)


if __name__ == "__main__":
    main()
