"""Dashboard pages at fleet scale: render time of every page against 10,000 vehicles x 30 days.

    .venv/bin/python benchmarks/dashboard_pages.py [--vehicles 10000] [--days 30] [--repeat 5]

Starts its own stack (prognos.ops.stack.stack_up in a temporary directory, stack_down at the end)
and seeds one database with what the pages read, at the scale of the fleet:

- the vehicle registry (one `vehicle` point per VIN) and 12 months of DMS data of the five
  synthetic dealers (prognos.sim.dealers.make_dms, through the importer);
- the analytics job's snapshots, one every --snapshot-hours over the days (alerts, cohorts,
  campaign vehicles, service list, parts forecast and reorders, the run marker), written with
  the job's own point serializer (prognos.cloud.analytics.job.point), the way `prognos cloud analytics
  --every` leaves them; the maintenance intervals, which no page reads, are left out;
- raw records (diag, vehicle_health, fault) over the whole period for --detailed vehicles, at
  30 records per vehicle-day (docs/benchmarks.md, gateway pipeline), and the latest record of
  every other vehicle, so each vehicle has its series;
- gateway status once a minute from every gateway over the last hour (what the System page
  reads), ingest metrics of four workers every 10 s over the days, and dead letters.

Then it renders each page with Streamlit's AppTest in this process: once with a cold cache,
then --repeat times with the cache warm, and prints the figures. Render time is the page
script's run on the server (queries, DataFrames, figures, the element tree), not the browser.
Results are recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from prognos.cloud.analytics.common import CAMPAIGN_CHECKS, RECOMMENDED_ACTIONS  # noqa: E402
from prognos.cloud.dealers.dms import parse_row, point_line  # noqa: E402
from prognos.cloud.dealers.dms_import import import_files  # noqa: E402
from prognos.cloud.dealers.kinds import KINDS  # noqa: E402
from prognos.cloud.ingest.points import (  # noqa: E402
    dead_letter_line,
    gateway_status_line,
    ingest_metrics_line,
    record_lines,
)
from prognos.cloud.parts.plan import FAULT_PARTS  # noqa: E402
from prognos.cloud.storage.client import InfluxClient  # noqa: E402
from prognos.cloud.storage.encode import encode_row  # noqa: E402
from prognos.cloud.storage.schema import (  # noqa: E402
    ALERT,
    ANALYTICS_RUN,
    CAMPAIGN_VEHICLE,
    COHORT,
    PARTS_FORECAST,
    PARTS_REORDER,
    SERVICE_LIST,
)
from prognos.ops.stack import stack_down, stack_up  # noqa: E402
from prognos.record import DiagnosticRecord, FaultHypothesis, SubsystemState, Trigger  # noqa: E402
from prognos.sim.dealers import make_dms, write_dms  # noqa: E402

APP = str(ROOT / "prognos" / "dashboard" / "app.py")
DATABASE = "bench"
DAY_MS = 86_400_000
HOUR_MS = 3_600_000
SUBSYSTEMS = ("battery", "tires", "brakes", "bearings", "motor")
CODES = tuple(FAULT_PARTS)
REGIONS = ("north", "south", "coast", "mountain", "plains")
MODELS = ("EV-1", "EV-2", "EV-3", "VAN-1")
BATCH_LINES = 50_000
RECORDS_PER_DAY = 30
WORKERS = 4
PAGES = {
    "Fleet health": ("screens/fleet_health.py", {}),
    "Vehicle detail": ("screens/vehicle.py", {"vin": ""}),  # the detailed vehicle, filled in main
    "Campaigns and cohorts": ("screens/campaigns.py", {}),
    "Dealer KPIs": ("screens/dealers.py", {}),
    "Parts demand": ("screens/parts.py", {}),
    "System": ("screens/system.py", {}),
}


def batches(lines: Sequence[str]) -> Iterator[list[str]]:
    for start in range(0, len(lines), BATCH_LINES):
        yield list(lines[start : start + BATCH_LINES])


class Writer:
    def __init__(self, influx: InfluxClient) -> None:
        self.influx = influx
        self.points = 0

    def write(self, lines: Sequence[str], precision: str = "ms") -> None:
        for batch in batches(lines):
            self.influx.write(DATABASE, batch, precision=precision)
        self.points += len(lines)


def registry_rows(
    vehicles: int, known: list[dict[str, str]], rng: np.random.Generator
) -> list[dict[str, str]]:
    """The make_dms registry (whose VINs the dealers' work orders name), then synthetic
    vehicles up to `vehicles`: 100 lots, 50 service centers."""
    rows = list(known[:vehicles])
    for i in range(len(rows), vehicles):
        lot = int(rng.integers(1, 101))
        center = (lot * 7 + i) % 50 + 1
        rows.append(
            {
                "vin": f"PRGB{i:013d}",
                "model": MODELS[lot % len(MODELS)],
                "lot": f"L{lot:03d}",
                "battery_supplier": ("Voltacell", "Amperon")[lot % 2],
                "tire_supplier": ("Rondo", "Gripa")[lot % 2],
                "brake_supplier": ("Ferodur", "Stopka")[lot % 3 == 0],
                "bearing_supplier": "RollTec",
                "motor_supplier": "Statora",
                "region": REGIONS[center % len(REGIONS)],
                "owner_name": f"Owner {i}",
                "owner_contact": f"owner{i}@example.com",
                "service_center": f"SC-{center:02d}",
                "production_date": "2024-03-01",
                "fleet": "bench",
            }
        )
    return rows


def seed_dms(writer: Writer, vehicles: int, work: Path, rng: np.random.Generator) -> list[dict[str, str]]:
    rows = make_dms(seed=7, months=12, vehicles=min(40, vehicles))
    registry = registry_rows(vehicles, rows["vehicle"], rng)
    rows["vehicle"] = []
    summary = import_files(writer.influx, DATABASE, list(write_dms(rows, work / "dms").values()))
    writer.points += summary.points
    kind = KINDS["vehicle"]
    writer.write([point_line(kind, parse_row(kind, row)) for row in registry], precision="ns")
    return registry


def seed_records(
    writer: Writer, registry: list[dict[str, str]], detailed: int, days: int, now_ms: int
) -> None:
    """Every record of the first `detailed` vehicles over `days`; the latest of the others."""
    step_ms = DAY_MS // RECORDS_PER_DAY
    for index, row in enumerate(registry):
        vin = row["vin"]
        lines: list[str] = []
        ends = (
            range(now_ms - days * DAY_MS + step_ms, now_ms, step_ms)
            if index < detailed
            else [now_ms - HOUR_MS]
        )
        for seq, end in enumerate(ends, start=1):
            age_days = (now_ms - end) / DAY_MS
            wear = 0.9 - 0.5 * (1.0 - age_days / days) if index % 4 == 0 else 0.9
            faulty = index % 4 == 0 and age_days < 5
            faults = (FaultHypothesis("brakes.pad_wear", 0.8, 9.0 + age_days, 6.0, 14.0),) if faulty else ()
            record = DiagnosticRecord(
                vin=vin,
                seq=seq,
                window_start_ms=end - 600_000,
                window_end_ms=end,
                model_id="bundle",
                model_version="2026.11.27",
                trigger=Trigger.ANOMALY if faulty else Trigger.HEARTBEAT,
                subsystems={
                    s: SubsystemState(
                        wear if s == "brakes" else 0.9, 1.2 if faulty and s == "brakes" else 0.2
                    )
                    for s in SUBSYSTEMS
                },
                faults=faults,
            )
            lines += record_lines(row["fleet"], record)
        writer.write(lines)


def snapshot_lines(
    registry: list[dict[str, str]], at_ms: int, order: np.ndarray, shift: int, rng: np.random.Generator
) -> list[str]:
    """One analytics snapshot at `at_ms`: 3% act, 5% watch, 5% drift alerts (the vehicles of
    `order` from `shift` on, so consecutive snapshots share most of their alerts); three lot
    campaigns and five covered cohorts; the parts plan of 50 centers x 5 parts x 8 weeks."""
    n = len(registry)
    lines: list[str] = []
    picks = np.roll(order, -shift)
    act, watch, drift = (
        picks[: n * 3 // 100],
        picks[n * 3 // 100 : n * 8 // 100],
        picks[n * 8 // 100 : n * 13 // 100],
    )
    rank = 0
    for group, priority, band in ((act, "P1", "act"), (watch, "P2", "watch"), (drift, "P3", "healthy")):
        for i in group:
            rank += 1
            row = registry[i]
            code = CODES[i % len(CODES)] if band == "act" else f"{SUBSYSTEMS[i % 5]}.{band}"
            values = {
                "fleet": row["fleet"],
                "vin": row["vin"],
                "code": code,
                "priority": priority,
                "rank": rank,
                "kind": "fault" if band == "act" else "low_health" if band == "watch" else "drift",
                "subsystem": SUBSYSTEMS[i % 5],
                "health": float(rng.uniform(0.1, 0.6)),
                "anomaly_score": float(rng.uniform(0.2, 1.5)),
                "confidence": 0.8 if band == "act" else None,
                "days_left": float(rng.uniform(2, 60)) if band == "act" else None,
                "days_low_left": 1.0 if band == "act" else None,
                "days_high_left": 90.0 if band == "act" else None,
                "band": band,
                "vehicle_health": float(rng.uniform(0.1, 0.6)),
                "last_seen_ms": at_ms - HOUR_MS,
                "action": RECOMMENDED_ACTIONS.get(code, "Inspect the subsystem at the next visit."),
                "reason": f"{code}: synthetic benchmark alert",
            }
            lines.append(encode_row(ALERT, values, at_ms) or "")
            if band == "act":
                service = {
                    "vin": row["vin"],
                    "rank": rank,
                    "fleet": row["fleet"],
                    "service_center": row["service_center"],
                    "registered": True,
                    "due_ms": at_ms + DAY_MS,
                    "codes": code,
                    "reason": "synthetic",
                }
                lines.append(encode_row(SERVICE_LIST, service, at_ms) or "")
    lots = [f"L{lot:03d}" for lot in (7, 23, 61)]
    for k, lot in enumerate(lots + [f"L{lot:03d}" for lot in (2, 3, 4, 5, 6)]):
        code = CODES[k % len(CODES)]
        campaign = lot in lots
        cohort_id = f"lot={lot}:{code}"
        members = [r for r in registry if r["lot"] == lot]
        cohort = {
            "attribute": "lot",
            "value": lot,
            "code": code,
            "cohort_id": cohort_id,
            "affected": len(members) // 5,
            "cohort_size": len(members),
            "registered": len(members),
            "share": 0.2,
            "base_rate": 0.02,
            "lift": 10.0,
            "p_value": 1e-9,
            "q_value": 1e-7,
            "status": "campaign" if campaign else "covered",
            "covered_by": "" if campaign else f"lot={lots[0]}:{CODES[0]}",
            "part": FAULT_PARTS[code].part,
            "part_name": FAULT_PARTS[code].name,
            "check": CAMPAIGN_CHECKS[code],
            "campaign_vehicles": len(members) if campaign else 0,
            "not_yet_affected": len(members) - len(members) // 5 if campaign else 0,
        }
        lines.append(encode_row(COHORT, cohort, at_ms) or "")
        for j, member in enumerate(members if campaign else []):
            vehicle = {
                "cohort": cohort_id,
                "vin": member["vin"],
                "attribute": "lot",
                "value": lot,
                "code": code,
                "status": "affected" if j < len(members) // 5 else "not yet affected",
                "affected": j < len(members) // 5,
                "model": member["model"],
                "lot": lot,
                "owner_name": member["owner_name"],
                "owner_contact": member["owner_contact"],
                "service_center": member["service_center"],
                "part": FAULT_PARTS[code].part,
                "check": CAMPAIGN_CHECKS[code],
            }
            lines.append(encode_row(CAMPAIGN_VEHICLE, vehicle, at_ms) or "")
    centers = sorted({r["service_center"] for r in registry})
    for center in centers:
        for spec in FAULT_PARTS.values():
            for week in range(1, 9):
                demand = float(rng.gamma(2.0, 0.5))
                forecast = {
                    "service_center": center,
                    "part": spec.part,
                    "week": f"{week:02d}",
                    "week_index": week,
                    "week_start_ms": at_ms + (week - 1) * 7 * DAY_MS,
                    "week_start": time.strftime(
                        "%Y-%m-%d", time.gmtime((at_ms + (week - 1) * 7 * DAY_MS) / 1000)
                    ),
                    "baseline": 0.0,
                    "from_failures": demand,
                    "forecast": demand,
                    "low": 0,
                    "high": int(demand * 2) + 1,
                }
                lines.append(encode_row(PARTS_FORECAST, forecast, at_ms) or "")
            on_hand = float(rng.integers(0, 12))
            reorder = {
                "service_center": center,
                "part": spec.part,
                "on_hand": on_hand,
                "on_order": 0.0,
                "lead_time_weeks": 2.0,
                "review_weeks": 1.0,
                "protection_demand": 3.0,
                "safety_stock": 2.0,
                "reorder_point": 5,
                "order_qty": max(0, 5 - int(on_hand)),
            }
            lines.append(encode_row(PARTS_REORDER, reorder, at_ms) or "")
    counts = {
        "window_start_ms": at_ms - 30 * DAY_MS,
        "lookback_days": 30.0,
        "horizon_weeks": 8,
        "vehicles_registered": n,
        "vehicles_observed": n,
        "vehicles_unregistered": 0,
        "vehicles_act": len(act),
        "vehicles_watch": len(watch),
        "vehicles_healthy": n - len(act) - len(watch),
        "alerts": rank,
        "alerts_p1": len(act),
        "alerts_p2": len(watch),
        "alerts_p3": len(drift),
        "cohorts_tested": 500,
        "cohorts": 8,
        "campaigns": 3,
        "service_list": len(act),
    }
    lines.append(encode_row(ANALYTICS_RUN, counts, at_ms) or "")
    return [line for line in lines if line]


def seed_system(writer: Writer, registry: list[dict[str, str]], days: int, now_ms: int) -> None:
    statuses = []
    for index, row in enumerate(registry):
        online = index % 40 != 0  # 2.5% went offline (the Last Will) ten minutes ago
        for minute in range(60, 10 if not online else 0, -1):
            status: dict[str, object] = {
                "state": "online",
                "model_id": "bundle",
                "model_version": "2026.11.27",
            }
            statuses.append(
                gateway_status_line(row["fleet"], row["vin"], status, now_ms - minute * 60_000 - index % 60)
            )
        if not online:
            statuses.append(
                gateway_status_line(row["fleet"], row["vin"], {"state": "offline"}, now_ms - 600_000)
            )
    writer.write(statuses)
    now_ns = now_ms * 1_000_000
    for day in range(days):
        metrics = []
        for step in range(day * 8640, (day + 1) * 8640):
            for w in range(WORKERS):
                fields: dict[str, float | int] = {
                    "records_per_s": 3.5 + w / 10,
                    "records_written": step,
                    "lag_s": 2.0,
                }
                metrics.append(ingest_metrics_line(f"ingest-{w}", fields, now_ns - step * 10_000_000_000 - w))
        writer.write(metrics, precision="ns")
    letters = [
        dead_letter_line(
            f"prognos/v1/bench/{registry[i * 7 % len(registry)]['vin']}/diag",
            "undecodable payload: not CBOR",
            b"\x00" * 16,
            now_ns - i * (days * DAY_MS // 2000) * 1_000_000,
        )
        for i in range(2000)
    ]
    writer.write(letters, precision="ns")


def measure(page: str, query: dict[str, str], repeat: int) -> tuple[float, list[float], str]:
    """(cold, warm renders) of one page in seconds. One AppTest session renders the page once
    to set up (AppTest scans the installed packages for components on its first run, which a
    server does once at start), then once after the data cache is cleared (cold: every query
    goes to InfluxDB), then `repeat` times with the cache warm (a reload, or the next user)."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    app = AppTest.from_file(APP, default_timeout=300)
    for key, value in query.items():
        app.query_params[key] = value
    if page != "screens/fleet_health.py":
        app.switch_page(page)

    def run() -> float:
        started = time.perf_counter()
        app.run()
        elapsed = time.perf_counter() - started
        if app.exception:
            raise RuntimeError(f"{page}: {app.exception[0].value}")
        boxes = [*app.error, *app.info]
        problems = [b.value for b in boxes if "Database unreachable" in b.value or "No data yet" in b.value]
        if problems:
            raise RuntimeError(f"{page} shows: {problems[0]}")
        return elapsed

    run()
    st.cache_data.clear()
    cold = run()
    warm = [run() for _ in range(repeat)]
    shown = f"{len(app.metric)} figures, {len(app.dataframe)} tables, {len(app.get('plotly_chart'))} charts"
    return cold, warm, shown


def query_times(detail_vin: str) -> list[tuple[str, float, int]]:
    """Each data function once with an empty cache: (name, seconds, rows)."""
    import streamlit as st

    from prognos.dashboard import data

    snapshot = data.latest_snapshot()
    assert snapshot is not None
    campaigns = data.cohorts(snapshot.at)
    first = str(campaigns[campaigns["status"] == "campaign"]["cohort_id"].iloc[0])
    calls: dict[str, Callable[[], Any]] = {
        "latest_snapshot": data.latest_snapshot,
        "snapshot_history": data.snapshot_history,
        "registry": data.registry,
        "alerts": lambda: data.alerts(snapshot.at),
        "cohorts": lambda: data.cohorts(snapshot.at),
        "campaign_vehicles": lambda: data.campaign_vehicles(snapshot.at, first),
        "parts_forecast": lambda: data.parts_forecast(snapshot.at),
        "parts_reorder": lambda: data.parts_reorder(snapshot.at),
        "vehicle_history (30 days)": lambda: data.vehicle_history(detail_vin, "30 days"),
        "vehicle_faults": lambda: data.vehicle_faults(detail_vin),
        "vehicle_records (30 days)": lambda: data.vehicle_records(detail_vin, "30 days"),
        "vehicle_work_orders": lambda: data.vehicle_work_orders(detail_vin),
        "dealers (month)": lambda: data.dealers("month"),
        "ingest_rate (24 hours)": lambda: data.ingest_rate("24 hours"),
        "ingest_workers": data.ingest_workers,
        "dead_letters": data.dead_letters,
        "dead_letter_counts (24 hours)": lambda: data.dead_letter_counts("24 hours"),
        "gateways": data.gateways,
    }
    results = []
    for name, call in calls.items():
        st.cache_data.clear()
        started = time.perf_counter()
        value = call()
        elapsed = time.perf_counter() - started
        rows = len(value.kpis) if hasattr(value, "kpis") else len(value) if hasattr(value, "__len__") else 1
        results.append((name, elapsed, rows))
    st.cache_data.clear()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--vehicles", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--detailed", type=int, default=100, help="vehicles with every record of the period")
    parser.add_argument("--snapshot-hours", type=float, default=6.0, help="hours between analytics snapshots")
    parser.add_argument("--repeat", type=int, default=5, help="warm renders per page")
    parser.add_argument(
        "--home",
        type=Path,
        help="use (or start) the stack in DIR and keep it: seed once, measure again later "
        "(within the hour the gateway status covers)",
    )
    args = parser.parse_args()

    home = args.home or Path(tempfile.mkdtemp(prefix="prognos-dashboard-bench-"))
    info, _ = stack_up(home, secure=False)
    state = home / "dashboard-bench.json"
    try:
        influx = InfluxClient(info.influx_url, timeout_s=120.0)
        if state.is_file():
            detail_vin = json.loads(state.read_text())["detail_vin"]
            print(f"using the database seeded before in {home}")
        else:
            detail_vin = seed(influx, args, home)
            state.write_text(json.dumps({"detail_vin": detail_vin}))

        os.environ["PROGNOS_INFLUX_URL"] = info.influx_url
        os.environ["PROGNOS_DATABASE"] = DATABASE
        logging.getLogger("streamlit").setLevel(logging.ERROR)
        print(f"page render time (AppTest, {args.repeat} warm renders after a cold one), target < 2 s:")
        print(f"  {'page':24} {'cold':>7} {'warm median':>12} {'warm max':>9}")
        worst = 0.0
        for title, (page, query) in PAGES.items():
            if "vin" in query:
                query = {"vin": detail_vin}
            cold, warm, shown = measure(page, query, args.repeat)
            worst = max(worst, max(warm))
            print(f"  {title:24} {cold:6.2f}s {statistics.median(warm):11.2f}s {max(warm):8.2f}s   {shown}")
        print(f"slowest warm render: {worst:.2f} s ({'within' if worst < 2.0 else 'over'} the 2 s target)")
        print("queries with an empty cache (what a cold render waits for):")
        for name, elapsed, rows in sorted(query_times(detail_vin), key=lambda r: -r[1]):
            print(f"  {name:30} {elapsed:6.2f}s {rows:8,} rows")
        influx.close()
    finally:
        if args.home is None:
            stack_down(home)
            shutil.rmtree(home, ignore_errors=True)
        else:
            print(f"stack kept in {home}: prognos stack down --home {home}")


def seed(influx: InfluxClient, args: argparse.Namespace, home: Path) -> str:
    """Seed the database (module docstring); returns the VIN the vehicle page shows."""
    influx.create_database(DATABASE)
    writer = Writer(influx)
    rng = np.random.default_rng(7)
    now_ms = int(time.time()) * 1000
    started = time.monotonic()
    registry = seed_dms(writer, args.vehicles, home, rng)
    seed_records(writer, registry, args.detailed, args.days, now_ms)
    snapshots = int(args.days * 24 / args.snapshot_hours)
    order = rng.permutation(len(registry))
    for k in range(snapshots):  # 0.1% of the fleet changes its alerts from one snapshot to the next
        at_ms = now_ms - int(k * args.snapshot_hours * HOUR_MS)
        writer.write(snapshot_lines(registry, at_ms, order, k * max(1, len(registry) // 1000), rng))
    seed_system(writer, registry, args.days, now_ms)
    print(
        f"seeded {writer.points:,} points in {time.monotonic() - started:.0f} s: "
        f"{args.vehicles:,} vehicles, {args.days} days, {snapshots} analytics snapshots, "
        f"every record of {args.detailed} vehicles"
    )
    return registry[0]["vin"]  # a make_dms vehicle: records over the whole period and work orders


if __name__ == "__main__":
    main()
