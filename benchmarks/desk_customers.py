"""The service desk's customer list and customer view on 100,000 customers.

    .venv/bin/python benchmarks/desk_customers.py [--customers 100000] [--db URL] [--runs 3] [--views 20]
    .venv/bin/python benchmarks/desk_customers.py --postgres      # the same on a throwaway PostgreSQL

Without --db it seeds a SQLite file in a temporary directory; with --db URL it uses that database
and seeds it only when it has no customers yet, so a second run measures again on the same data.
--postgres starts a PostgreSQL server of its own from the Debian package (prognos.ops.postgres),
seeds it and stops it at the end.

The data are written directly (SQLAlchemy Core executemany, 5,000 rows a batch), with these
proportions, all relative to the as-of time 2026-12-07 09:00 UTC:

- 20 dealers with 2 or 3 service centers each; one dealer failed 35 days ago, one at risk;
  customers spread evenly over the centers (so about a tenth of them at those two dealers);
- vehicles: 85 % of customers own one, 12 % two, 3 % a small fleet of 3 to 10; 1 % of the
  vehicles paid in the last 120 days and not delivered, 0.5 % ordered and not paid, the rest
  delivered over the last 7 years with a 3-year warranty;
- appointments: 1.5 a customer on average over the last year and the next 60 days; past ones
  85 % done, 6 % missed, 9 % cancelled; future ones 90 % booked, 10 % cancelled;
- work orders: 2.5 a vehicle on average over the last 2 years, 3 % of them repeated 2 to 40
  days later (repeat_of_order_id);
- alerts: 8 % of the vehicles have one from the last 120 days, 10 % critical, 50 % warning, 40 %
  info, three quarters of them cleared;
- complaints: 6 % of the customers have one from the last year (response due a day after
  opening, resolution ten days after), 15 % of them still open;
- the ledger: a prepaid maintenance package (4 services, 2 years) for 30 % of the delivered
  vehicles with 0 to 3 services consumed, an extended warranty (2 years after the factory
  warranty) for 10 %; bodies in the ledger's format, hashes and signatures placeholders (the
  read model does not check them).

Then it times prognos.desk.customers.priorities (limit 100, --runs times, the first right after
opening the database) and customer_view for --views customers picked at random, and prints the
figures. Results are recorded in docs/benchmarks.md ("Service desk: customers").
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, insert, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from prognos.desk import schema  # noqa: E402
from prognos.desk.customers import candidate_facts, customer_view, priorities  # noqa: E402
from prognos.desk.store import connect  # noqa: E402
from prognos.desk.tags import Settings, customer_tags  # noqa: E402

AS_OF = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
BATCH = 5_000
DAY = timedelta(days=1)
MODELS = ("EV-1", "EV-2", "HY-3", "VAN-4")
PURPOSES = ("annual service", "brake inspection", "tyre change", "battery check", "recall campaign")
CODES = (
    "brake.pad_wear",
    "tires.pressure_loss",
    "battery.module_temperature_drift",
    "bearings.wear",
    "motor.vibration",
)
CATEGORIES = ("billing", "repair quality", "waiting time", "staff", "parts delay")
FIRST = (
    "Anna",
    "Bernd",
    "Clara",
    "Dieter",
    "Eva",
    "Felix",
    "Greta",
    "Hans",
    "Ines",
    "Jonas",
    "Karin",
    "Lukas",
)
LAST = ("Schmidt", "Mueller", "Weber", "Wagner", "Becker", "Hoffmann", "Koch", "Richter", "Klein", "Wolf")


def moment(rng: random.Random, days_back: float, days_ahead: float = 0.0) -> datetime:
    return AS_OF + timedelta(days=rng.uniform(-days_back, days_ahead))


def poisson(rng: random.Random, mean: float) -> int:
    # Knuth's method: the means here are small
    limit, count, product = pow(2.718281828459045, -mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def generate(customers: int, seed: int) -> dict[str, list[dict[str, Any]]]:
    """Every table's rows for `customers` customers (the proportions in the module docstring)."""
    rng = random.Random(seed)
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in schema.metadata.tables}
    centers: list[str] = []
    for d in range(1, 21):
        dealer_id = f"D{d:02d}"
        status, reason, since = "active", "", None
        if d == 7:
            status, reason, since = "failed", "insolvency filed", AS_OF - 35 * DAY
        elif d == 12:
            status, reason, since = "at_risk", "cash below two months of costs", AS_OF - 12 * DAY
        rows["dealer"].append(
            {
                "dealer_id": dealer_id,
                "name": f"Dealer {d}",
                "region": f"R{(d - 1) // 5 + 1}",
                "status": status,
                "status_reason": reason,
                "status_at": since,
            }
        )
        for c in range(2 + d % 2):
            center_id = f"SC-{d:02d}{c + 1}"
            centers.append(center_id)
            rows["service_center"].append(
                {
                    "center_id": center_id,
                    "dealer_id": dealer_id,
                    "name": f"Center {d}-{c + 1}",
                    "lat": 48.0 + rng.random(),
                    "lon": 11.0 + rng.random(),
                }
            )
    dealer_of = {row["center_id"]: row["dealer_id"] for row in rows["service_center"]}
    counter = {"order": 0, "alert": 0, "complaint": 0, "appointment": 0, "entitlement": 0, "seq": 0}

    def ledger(kind: str, entitlement_id: str, customer_id: str, at: datetime, **body: object) -> None:
        counter["seq"] += 1
        seq = counter["seq"]
        full = {
            "v": 1,
            "seq": seq,
            "at": at.isoformat(),
            "kind": kind,
            "entitlement_id": entitlement_id,
            "customer_id": customer_id,
            "actor": "bench",
            **body,
        }
        rows["ledger"].append(
            {
                "seq": seq,
                "at": at,
                "kind": kind,
                "entitlement_id": entitlement_id,
                "customer_id": customer_id,
                "body": json.dumps(full, sort_keys=True, separators=(",", ":")),
                "prev_hash": f"{seq - 1:064x}",
                "hash": f"{seq:064x}",
                "signature": "placeholder",
                "key_id": "bench",
            }
        )

    for n in range(1, customers + 1):
        customer_id = f"C{n:06d}"
        name = f"{rng.choice(FIRST)} {rng.choice(LAST)} {n}"
        home = centers[n % len(centers)]
        rows["customer"].append(
            {
                "customer_id": customer_id,
                "name": name,
                "name_key": name.lower(),
                "email": f"customer{n}@example.com",
                "phone": f"+49 170 {n:07d}",
                "home_center": home,
                "created_at": moment(rng, 8 * 365, 0) - 365 * DAY,
            }
        )
        share = rng.random()
        owned = 1 if share < 0.85 else 2 if share < 0.97 else rng.randint(3, 10)
        vins = []
        for k in range(owned):
            vin = f"WBA{n:08d}{k:02d}{rng.randint(0, 9999):04d}"[:17]
            vins.append(vin)
            kind = rng.random()
            paid_at = delivered_at = warranty_until = None
            if kind < 0.01:
                paid_at = moment(rng, 120)
            elif kind >= 0.015:
                delivered_at = moment(rng, 7 * 365)
                paid_at = delivered_at - rng.uniform(0, 10) * DAY
                warranty_until = delivered_at + 3 * 365 * DAY
            rows["vehicle"].append(
                {
                    "vin": vin,
                    "customer_id": customer_id,
                    "plate": f"M-{n % 100:02d}{chr(65 + k % 26)} {n:06d}",
                    "model": rng.choice(MODELS),
                    "lot": f"L{rng.randint(1, 40):03d}",
                    "paid_at": paid_at,
                    "delivered_at": delivered_at,
                    "warranty_until": warranty_until,
                }
            )
            if delivered_at is None:
                continue
            for _ in range(poisson(rng, 2.5)):
                opened = moment(rng, 730)
                if opened < delivered_at:
                    continue
                counter["order"] += 1
                dealer_id = dealer_of[home]
                order_id = f"WO{counter['order']:07d}"
                closed = opened + rng.uniform(1, 48) * timedelta(hours=1)
                description = rng.choice(CODES) if rng.random() < 0.5 else rng.choice(PURPOSES)
                rows["work_order"].append(
                    {
                        "dealer_id": dealer_id,
                        "order_id": order_id,
                        "vin": vin,
                        "center_id": home,
                        "opened_at": opened,
                        "closed_at": closed if closed < AS_OF else None,
                        "description": description,
                        "parts": "",
                        "amount": round(rng.uniform(80, 1500), 2),
                        "currency": "EUR",
                        "repeat_of_order_id": None,
                    }
                )
                again = closed + rng.uniform(2, 40) * DAY
                if rng.random() < 0.03 and again < AS_OF:
                    counter["order"] += 1
                    rows["work_order"].append(
                        {
                            "dealer_id": dealer_id,
                            "order_id": f"WO{counter['order']:07d}",
                            "vin": vin,
                            "center_id": home,
                            "opened_at": again,
                            "closed_at": again + 3 * timedelta(hours=1),
                            "description": description,
                            "parts": "",
                            "amount": round(rng.uniform(50, 400), 2),
                            "currency": "EUR",
                            "repeat_of_order_id": order_id,
                        }
                    )
            if rng.random() < 0.08:
                counter["alert"] += 1
                raised = moment(rng, 120)
                severity = rng.choices(("critical", "warning", "info"), (0.1, 0.5, 0.4))[0]
                cleared = raised + rng.uniform(0.5, 10) * DAY
                rows["alert"].append(
                    {
                        "alert_id": f"AL{counter['alert']:07d}",
                        "vin": vin,
                        "code": rng.choice(CODES),
                        "severity": severity,
                        "summary": "detected on the vehicle",
                        "raised_at": raised,
                        "cleared_at": cleared if rng.random() < 0.75 and cleared < AS_OF else None,
                    }
                )
            if rng.random() < 0.30:
                counter["entitlement"] += 1
                entitlement_id = f"E{counter['entitlement']:07d}"
                start = delivered_at + rng.uniform(0, 700) * DAY
                if start < AS_OF:
                    ledger(
                        "grant",
                        entitlement_id,
                        customer_id,
                        start,
                        vin=vin,
                        product="maintenance",
                        units=4,
                        valid_from=start.isoformat(),
                        valid_until=(start + 730 * DAY).isoformat(),
                        center_id=home,
                        dealer_id=dealer_of[home],
                    )
                    for used in range(rng.randint(0, 3)):
                        at = start + (used + 1) * 150 * DAY
                        if at < AS_OF:
                            ledger(
                                "consume",
                                entitlement_id,
                                customer_id,
                                at,
                                units=1,
                                center_id=home,
                                reference="WO",
                            )
            if rng.random() < 0.10 and warranty_until is not None:
                counter["entitlement"] += 1
                entitlement_id = f"E{counter['entitlement']:07d}"
                sold = warranty_until - rng.uniform(30, 300) * DAY
                if sold < AS_OF:
                    ledger(
                        "grant",
                        entitlement_id,
                        customer_id,
                        sold,
                        vin=vin,
                        product="extended_warranty",
                        units=None,
                        valid_from=warranty_until.isoformat(),
                        valid_until=(warranty_until + 730 * DAY).isoformat(),
                        center_id=home,
                        dealer_id=dealer_of[home],
                    )
        for _ in range(poisson(rng, 1.5)):
            counter["appointment"] += 1
            when = moment(rng, 365, 60)
            if when < AS_OF:
                status = rng.choices(("done", "missed", "cancelled"), (0.85, 0.06, 0.09))[0]
                updated = when + DAY if status != "cancelled" else when - rng.uniform(0, 10) * DAY
            else:
                status = "booked" if rng.random() < 0.9 else "cancelled"
                updated = AS_OF - rng.uniform(0, 30) * DAY
            rows["appointment"].append(
                {
                    "appointment_id": f"A{counter['appointment']:07d}",
                    "customer_id": customer_id,
                    "vin": rng.choice(vins),
                    "center_id": home,
                    "scheduled_at": when,
                    "status": status,
                    "purpose": rng.choice(PURPOSES),
                    "parts": "",
                    "updated_at": min(updated, AS_OF),
                }
            )
        if rng.random() < 0.06:
            counter["complaint"] += 1
            opened = moment(rng, 365)
            settled = rng.random() < 0.85
            rows["complaint"].append(
                {
                    "complaint_id": f"CP{counter['complaint']:06d}",
                    "source": "desk",
                    "customer_id": customer_id,
                    "vin": rng.choice(vins),
                    "dealer_id": dealer_of[home],
                    "category": rng.choice(CATEGORIES),
                    "summary": "the customer is not happy",
                    "state": rng.choice(("resolved", "closed"))
                    if settled
                    else rng.choice(("open", "in_progress")),
                    "opened_at": opened,
                    "responded_at": opened + 5 * timedelta(hours=1) if rng.random() < 0.8 else None,
                    "response_due_at": opened + DAY,
                    "resolution_due_at": opened + 10 * DAY,
                    "updated_at": opened,
                }
            )
    return rows


ORDER = (
    "dealer",
    "service_center",
    "customer",
    "vehicle",
    "appointment",
    "work_order",
    "alert",
    "complaint",
    "ledger",
)


def seed(engine: Engine, customers: int, seed_value: int) -> dict[str, int]:
    started = time.perf_counter()
    rows = generate(customers, seed_value)
    generated = time.perf_counter() - started
    with engine.begin() as connection:
        for name in ORDER:
            table = schema.metadata.tables[name]
            for start in range(0, len(rows[name]), BATCH):
                connection.execute(insert(table), rows[name][start : start + BATCH])
    with engine.begin() as connection:
        connection.exec_driver_sql("ANALYZE")  # planner statistics, as a database in service has them
    if engine.dialect.name == "sqlite":
        with engine.connect() as connection:  # the rows into the database file, out of the WAL
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    counts = {name: len(rows[name]) for name in ORDER}
    print(
        f"seeded {', '.join(f'{count:,} {name}' for name, count in counts.items())} "
        f"(generated in {generated:.1f} s, written in {time.perf_counter() - started - generated:.1f} s)"
    )
    return counts


def timed(function: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - started


def measure(engine: Engine, *, runs: int, views: int, seed_value: int) -> None:
    settings = Settings()
    with engine.connect() as connection:
        total = connection.execute(select(func.count()).select_from(schema.customer)).scalar_one()
        list_s = []
        for _ in range(runs):
            rows, elapsed = timed(priorities, connection, now=AS_OF, settings=settings, limit=100)
            list_s.append(elapsed)
        facts, gather_s = timed(candidate_facts, connection, now=AS_OF, settings=settings)
        tagged, rules_s = timed(lambda: [f for f in facts.values() if customer_tags(f, AS_OF, settings)])
        ids = list(connection.execute(select(schema.customer.c.customer_id)).scalars())
        picked = random.Random(seed_value).sample(ids, min(views, len(ids)))
        view_s = []
        for customer_id in picked:
            _, elapsed = timed(customer_view, connection, customer_id, now=AS_OF, settings=settings)
            view_s.append(elapsed)
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(
        f"{total:,} customers in {engine.dialect.name}, as of {AS_OF:%Y-%m-%d %H:%M} UTC "
        f"(load average {load})"
    )
    print(
        f"priorities (limit 100): {', '.join(f'{s:.3f} s' for s in list_s)}; "
        f"median {statistics.median(list_s):.3f} s"
    )
    print(
        f"  the candidate queries read the facts of {len(facts):,} customers in {gather_s:.3f} s; "
        f"the rules tag {len(tagged):,} of them in {rules_s:.3f} s"
    )
    print(f"  first: {rows[0].customer_id} score {rows[0].score:.2f}: {rows[0].reasons}")
    print(
        f"customer view, {len(view_s)} customers at random: "
        f"median {statistics.median(view_s) * 1000:.1f} ms, "
        f"max {max(view_s) * 1000:.1f} ms"
    )


def throwaway_postgres() -> Iterator[str]:
    from prognos.ops import postgres
    from prognos.ops.stack import free_port

    home = Path(tempfile.mkdtemp(prefix="prognos-bench-pg-"))
    home.chmod(0o755)  # the server runs as the postgres user, who must reach its data
    server = postgres.start(home / "data", free_port())
    try:
        yield postgres.create_database(server, "desk_bench")
    finally:
        postgres.stop(home / "data")
        shutil.rmtree(home, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument(
        "--db", default=None, metavar="URL", help="desk database (default: a temporary SQLite file)"
    )
    parser.add_argument("--postgres", action="store_true", help="run on a PostgreSQL server of its own")
    parser.add_argument("--runs", type=int, default=3, help="times the list is computed")
    parser.add_argument("--views", type=int, default=20, help="customer views timed")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    command = " ".join(["benchmarks/desk_customers.py", *sys.argv[1:]])
    temporary = None
    postgres_urls = throwaway_postgres() if args.postgres else None
    if postgres_urls is not None:
        url = next(postgres_urls)
    elif args.db is not None:
        url = args.db
    else:
        temporary = Path(tempfile.mkdtemp(prefix="prognos-bench-desk-"))
        url = f"sqlite:///{temporary / 'desk.db'}"
    try:
        engine = connect(url)
        with engine.connect() as connection:
            present = connection.execute(select(func.count()).select_from(schema.customer)).scalar_one()
        if present:
            print(f"{url}: {present:,} customers already there, measuring them")
        else:
            seed(engine, args.customers, args.seed)
        engine.dispose()
        engine = connect(url)  # measure on a fresh connection pool, as a command would
        measure(engine, runs=args.runs, views=args.views, seed_value=args.seed)
        engine.dispose()
    finally:
        if postgres_urls is not None:
            postgres_urls.close()
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)
    print(f"reproduce: .venv/bin/python {command}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
