"""The analytics job on a fleet-sized database: 10,000 vehicles over 30 days.

    .venv/bin/python benchmarks/analytics_fleet.py [--vehicles 10000] [--days 30] [--per-hour 1]
        [--home DIR] [--runs 1] [--profile]

Seeds a database on a stack of its own (prognos.ops.stack.stack_up; a temporary directory, or
--home DIR, which keeps the seeded data for the next run) with what ingest and the DMS import
store for such a fleet:

- per vehicle one heartbeat record an hour (--per-hour), each the points of
  prognos.cloud.ingest.points.record_lines: a `diag` point and five `vehicle_health` points, plus a
  `fault` point while a fault of prognos.sim.fleet.make_fleet (10 % random faults and the
  default batch defect of lot L002) is detected, with its days to threshold; brake health
  falls with pad wear at each vehicle's own rate; a part that reaches its failure day is
  replaced (health back up, no more fault points);
- the registry, parts stock and service centers of prognos.sim.dealers.make_dms for the same fleet,
  imported with prognos.cloud.dealers.dms_import.

The points are formatted here, vectorised (record_lines would take minutes for 7 million
records), and checked against record_lines for measurement, tags, field names and types.
Then it times the job's own function, prognos.cloud.analytics.job.run_once, with an InfluxClient
configured as `prognos cloud analytics` configures it (timeout QUERY_TIMEOUT_S), and prints
where the time went (each query, the writes, the computing); the first run also rolls up the
settled days. Results are recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import queue
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from prognos.cloud.analytics.job import QUERY_TIMEOUT_S, run_once  # noqa: E402
from prognos.cloud.analytics.reading import ROLLUP_MARKER, ROLLUP_RP, read_inputs, rfc3339  # noqa: E402
from prognos.cloud.dealers.dms_import import import_files  # noqa: E402
from prognos.cloud.ingest.points import record_lines  # noqa: E402
from prognos.cloud.storage.client import InfluxClient, Series  # noqa: E402
from prognos.errors import RejectedError  # noqa: E402
from prognos.ops import stack as stack_module  # noqa: E402
from prognos.ops.stack import stack_down, stack_up  # noqa: E402
from prognos.ops.state import StackInfo  # noqa: E402
from prognos.record import DiagnosticRecord, FaultHypothesis, SubsystemState, Trigger  # noqa: E402
from prognos.sim.dealers import make_dms, write_dms  # noqa: E402
from prognos.sim.fleet import make_fleet  # noqa: E402
from prognos.sim.vehicle import Fault, VehicleSpec  # noqa: E402
from tests.support.analytics_inputs import assert_same_inputs  # noqa: E402

DATABASE = "bench"
FLEET = "bench"
FLEET_SEED = 1
AS_OF = datetime(2026, 3, 1, tzinfo=UTC)
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
WINDOW_MS = 600_000
BATCH_LINES = 20_000
WRITERS = 2
SUBSYSTEMS = ("battery", "tires", "brakes", "bearings", "motor")
CODES = {
    "battery_drift": "battery.module_temperature_drift",
    "tire_leak": "tires.pressure_loss",
    "pad_wear": "brakes.pad_wear",
    "bearing_wear": "bearings.wheel_bearing_wear",
    "motor_noise": "motor.noise",
}
SUBSYSTEM_OF = {
    "battery_drift": "battery",
    "tire_leak": "tires",
    "pad_wear": "brakes",
    "bearing_wear": "bearings",
    "motor_noise": "motor",
}
DETECTED_AT = 0.05  # severity at which the gateway's rules name the fault
MODEL = ('"prognos-default"', '"2026.11.27"')


# ---------------------------------------------------------------- the fleet's points


@dataclass(frozen=True)
class Heartbeats:
    """One vehicle's heartbeats: window ends (ms), health and anomaly score per subsystem, and
    the fault points (index of the heartbeat, code, confidence, days, low, high)."""

    vin: str
    ends_ms: np.ndarray
    health: dict[str, np.ndarray]
    score: dict[str, np.ndarray]
    faults: list[tuple[int, str, float, float, float, float]]


def heartbeats(spec: VehicleSpec, index: int, start_ms: int, days: int, per_hour: int) -> Heartbeats:
    """A vehicle's heartbeats over `days` from start_ms (day 0 of make_fleet's fault days)."""
    rng = np.random.default_rng([FLEET_SEED, index, 7])
    step_ms = HOUR_MS // per_hour
    count = days * 24 * per_hour
    ends = start_ms + int(rng.integers(1, step_ms)) + np.arange(count, dtype=np.int64) * step_ms
    day = (ends - start_ms) / DAY_MS
    health = {name: np.clip(0.9 + rng.normal(0.0, 0.015, count), 0.0, 1.0) for name in SUBSYSTEMS}
    score = {name: np.clip(0.15 + rng.normal(0.0, 0.05, count), 0.0, None) for name in SUBSYSTEMS}
    pad_rate = 0.0015 + 0.004 * spec.aggressiveness  # health lost per day
    health["brakes"] = np.clip(
        1.0 - spec.pad_wear_percent / 100.0 - pad_rate * day + rng.normal(0.0, 0.01, count), 0.0, 1.0
    )
    faults: list[tuple[int, str, float, float, float, float]] = []
    for fault in spec.faults:
        faults += _fault(fault, day, health, score, rng)
    return Heartbeats(spec.vin, ends, health, score, faults)


def _fault(
    fault: Fault,
    day: np.ndarray,
    health: dict[str, np.ndarray],
    score: dict[str, np.ndarray],
    rng: np.random.Generator,
) -> list[tuple[int, str, float, float, float, float]]:
    subsystem, code = SUBSYSTEM_OF[fault.kind], CODES[fault.kind]
    severity = fault.severity(day)
    broken = day >= fault.failure_day
    health[subsystem] = np.where(
        broken, 0.95, np.clip(health[subsystem] * (1.0 - severity), 0.0, 1.0)
    )  # replaced at the failure day
    score[subsystem] = np.where(broken, score[subsystem], score[subsystem] + 1.2 * severity)
    points = []
    for i in np.flatnonzero((severity >= DETECTED_AT) & ~broken):
        days = float(fault.failure_day - day[i]) * float(rng.uniform(0.85, 1.15))
        confidence = min(0.95, 0.5 + float(severity[i]) / 2)
        points.append((int(i), code, confidence, days, days * 0.7, days * 1.4))
    return points


def lines_of(beats: Heartbeats, per_hour: int) -> list[str]:
    """The points ingest stores for these heartbeats (the format of record_lines)."""
    vin = beats.vin
    ends = beats.ends_ms.tolist()
    seq0 = int(beats.ends_ms[0] // (HOUR_MS // per_hour))
    window = WINDOW_MS
    diag = (
        f"diag,fleet={FLEET},vin={vin} seq={{}}i,window_start_ms={{}}i,model_id={MODEL[0]},"
        f"model_version={MODEL[1]},trigger={{}}i,counter.frames_seen={{}}i,counter.frames_bad=0i {{}}"
    )
    fault_at = {i for i, *_ in beats.faults}
    out = [
        diag.format(seq0 + k, end - window, 2 if k in fault_at else 0, 60_000 + (k * 7919) % 5000, end)
        for k, end in enumerate(ends)
    ]
    for name in SUBSYSTEMS:
        prefix = f"vehicle_health,fleet={FLEET},subsystem={name},vin={vin} "
        out += [
            f"{prefix}health={h:.4f},anomaly_score={s:.4f} {end}"
            for h, s, end in zip(beats.health[name].tolist(), beats.score[name].tolist(), ends, strict=True)
        ]
    for i, code, confidence, days, low, high in beats.faults:
        out.append(
            f"fault,code={code},fleet={FLEET},vin={vin} confidence={confidence:.4f},"
            f"days_to_threshold={days:.3f},days_low={low:.3f},days_high={high:.3f} {ends[i]}"
        )
    return out


def _shape(line: str) -> tuple[str, tuple[str, ...], int]:
    """Series key and (field, type) pairs of one line of line protocol (no escapes in ours)."""
    key, fields, stamp = line.rsplit(" ", 2)
    kinds = []
    for item in fields.split(","):
        name, value = item.split("=", 1)
        kind = "string" if value.startswith('"') else "integer" if value.endswith("i") else "float"
        kinds.append(f"{name}:{kind}")
    return key, tuple(sorted(kinds)), int(stamp)


def check_format(beats: Heartbeats, per_hour: int) -> None:
    """The first heartbeat with a fault, formatted here and by record_lines: the same points."""
    k = beats.faults[0][0] if beats.faults else 0
    ours = [line for line in lines_of(beats, per_hour) if line.endswith(f" {beats.ends_ms[k]}")]
    end = int(beats.ends_ms[k])
    record = DiagnosticRecord(
        vin=beats.vin,
        seq=1,
        window_start_ms=end - WINDOW_MS,
        window_end_ms=end,
        model_id="prognos-default",
        model_version="2026.11.27",
        trigger=Trigger.ANOMALY if beats.faults else Trigger.HEARTBEAT,
        subsystems={
            n: SubsystemState(float(beats.health[n][k]), float(beats.score[n][k])) for n in SUBSYSTEMS
        },
        faults=tuple(FaultHypothesis(c, f, d, lo, hi) for i, c, f, d, lo, hi in beats.faults if i == k),
        counters={"frames_seen": 1, "frames_bad": 0},
    )
    theirs = record_lines(FLEET, record)
    if sorted(map(_shape, ours)) != sorted(map(_shape, theirs)):
        raise SystemExit(f"the seeded points differ from record_lines:\n{ours}\n{theirs}")


def bodies(specs: list[VehicleSpec], start_ms: int, days: int, per_hour: int) -> Iterator[tuple[bytes, int]]:
    """Batches of about BATCH_LINES lines: (body, lines)."""
    pending: list[str] = []
    for index, spec in enumerate(specs):
        beats = heartbeats(spec, index, start_ms, days, per_hour)
        if index == 0 or (beats.faults and index < 200):
            check_format(beats, per_hour)
        pending += lines_of(beats, per_hour)
        if len(pending) >= BATCH_LINES:
            yield ("\n".join(pending) + "\n").encode(), len(pending)
            pending = []
    if pending:
        yield ("\n".join(pending) + "\n").encode(), len(pending)


def seed_points(info: StackInfo, specs: list[VehicleSpec], start_ms: int, days: int, per_hour: int) -> int:
    """Write every vehicle's points: one thread formats, WRITERS threads post (uncompressed,
    ms precision, as ingest stamps them). Returns the number of points."""
    work: queue.Queue[tuple[bytes, int] | None] = queue.Queue(maxsize=4)
    errors: list[str] = []
    written = [0]
    lock = threading.Lock()

    def post() -> None:
        session = requests.Session()
        while (item := work.get()) is not None:
            body, count = item
            for attempt in range(10):
                answer = session.post(
                    f"{info.influx_url}/write",
                    params={"db": DATABASE, "precision": "ms"},
                    data=body,
                    timeout=300,
                )
                if answer.status_code == 204:
                    break
                if answer.status_code < 500 or attempt == 9:
                    errors.append(f"InfluxDB answered {answer.status_code}: {answer.text[:300]}")
                    break
                time.sleep(1.0 + attempt)  # busy (a full cache): wait for the snapshot
            with lock:
                written[0] += count
        session.close()

    threads = [threading.Thread(target=post, name=f"seed-writer-{n}") for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    started = time.monotonic()
    shown = 0.0
    try:
        for item in bodies(specs, start_ms, days, per_hour):
            work.put(item)
            if errors:
                break
            if time.monotonic() - shown > 15:
                shown = time.monotonic()
                rate = written[0] / max(shown - started, 1e-9)
                print(f"   ... {written[0]:,} points ({rate:,.0f}/s)", flush=True)
    finally:
        for _ in threads:
            work.put(None)
        for thread in threads:
            thread.join()
    if errors:
        raise SystemExit(errors[0])
    return written[0]


def seed(info: StackInfo, vehicles: int, days: int, per_hour: int) -> None:
    influx = InfluxClient(info.influx_url, timeout_s=120.0)
    influx.create_database(DATABASE)
    as_of_ms = int(AS_OF.timestamp() * 1000)
    start_ms = as_of_ms - days * DAY_MS
    started = time.monotonic()
    rows = make_dms(
        seed=7,
        months=2,
        end=date(AS_OF.year, AS_OF.month, 1),
        vehicles=vehicles,
        fleet_seed=FLEET_SEED,
        fleet=FLEET,
        order_scale=0.05,
    )
    with tempfile.TemporaryDirectory(prefix="prognos-dms-") as scratch:
        paths = write_dms(rows, Path(scratch))
        summary = import_files(influx, DATABASE, list(paths.values()))
    print(
        f"seed: registry of {len(rows['vehicle']):,} vehicles and the DMS data imported "
        f"({summary.points:,} points, {time.monotonic() - started:.0f} s)",
        flush=True,
    )
    specs = make_fleet(vehicles, seed=FLEET_SEED, fault_share=0.1)
    with_faults = sum(1 for s in specs if s.faults)
    started = time.monotonic()
    points = seed_points(info, specs, start_ms, days, per_hour)
    elapsed = time.monotonic() - started
    print(
        f"seed: {vehicles * days * 24 * per_hour:,} records of {vehicles:,} vehicles ({with_faults:,} with a "
        f"fault) = {points:,} points in {elapsed:.0f} s ({points / elapsed:,.0f} points/s)",
        flush=True,
    )
    influx.write(DATABASE, [f"bench_seed vehicles={vehicles}i,days={days}i,per_hour={per_hour}i 0"], "ms")
    influx.close()


def seeded(info: StackInfo) -> tuple[int, int, int] | None:
    influx = InfluxClient(info.influx_url)
    try:
        series = influx.query("SELECT * FROM bench_seed", database=DATABASE)
    except RejectedError:  # no database yet
        return None
    finally:
        influx.close()
    if not series:
        return None
    row = series[0].rows()[-1]
    return int(row["vehicles"]), int(row["days"]), int(row["per_hour"])


def settle(info: StackInfo, timeout_s: float = 300.0) -> float:
    """Wait until influxd is idle (compactions after the bulk write done): under 15 % of a core
    over 3 s. Returns the seconds waited."""
    started = time.monotonic()
    ticks = os.sysconf("SC_CLK_TCK")

    def cpu_s() -> float:
        fields = Path(f"/proc/{info.influxd_pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / ticks

    while time.monotonic() - started < timeout_s:
        before = cpu_s()
        time.sleep(3.0)
        if (cpu_s() - before) / 3.0 < 0.15:
            break
    return time.monotonic() - started


# ---------------------------------------------------------------- timing the job


class TimedInflux(InfluxClient):
    """The job's client as `prognos cloud analytics` makes it, timing every query and write."""

    def __init__(self, url: str) -> None:
        super().__init__(url, timeout_s=QUERY_TIMEOUT_S)
        self.spent: dict[str, list[float]] = defaultdict(list)

    def query(
        self, text: str, *, database: str | None, params: dict[str, Any] | None = None, method: str = "GET"
    ) -> list[Series]:
        started = time.perf_counter()
        try:
            return super().query(text, database=database, params=params, method=method)
        finally:
            label = text.split(" WHERE")[0][:90]
            if " INTO " in text:
                label = "rollup " + text.split(" INTO ")[1].split(" ")[0]
            self.spent[label].append(time.perf_counter() - started)

    def write(self, database: str, lines: list[str], precision: str = "ms") -> None:
        started = time.perf_counter()
        try:
            super().write(database, lines, precision)
        finally:
            self.spent["write"].append(time.perf_counter() - started)


def verify(info: StackInfo) -> None:
    """The inputs read with the daily rollups equal those read from the raw points alone."""
    influx = InfluxClient(info.influx_url, timeout_s=600.0)
    as_of_ms = int(AS_OF.timestamp() * 1000) - 5 * HOUR_MS - 123_456  # not at midnight
    started = time.perf_counter()
    rolled = read_inputs(influx, DATABASE, as_of_ms)
    middle = time.perf_counter()
    raw = read_inputs(influx, DATABASE, as_of_ms, now_ms=0)  # nothing settled: every day raw
    ended = time.perf_counter()
    influx.close()
    print(
        f"verify: inputs with rollups {middle - started:.1f} s, from raw points only {ended - middle:.1f} s"
    )
    for name, rows in assert_same_inputs(rolled, raw).items():
        print(f"   {name}: {rows:,} rows, equal")


def drop_rollups(info: StackInfo) -> None:
    """Forget the job's daily rollups, so that the next run builds them again (a first run)."""
    influx = InfluxClient(info.influx_url, timeout_s=600.0)
    policies = {
        row["name"] for s in influx.query("SHOW RETENTION POLICIES", database=DATABASE) for row in s.rows()
    }
    if ROLLUP_RP in policies:
        influx.query(f'DROP RETENTION POLICY "{ROLLUP_RP}" ON "{DATABASE}"', database=DATABASE, method="POST")
    influx.query(f"DROP MEASUREMENT {ROLLUP_MARKER}", database=DATABASE, method="POST")
    influx.close()


def time_job(info: StackInfo, profile: bool, as_of_ms: int) -> float:
    influx = TimedInflux(info.influx_url)
    profiler = cProfile.Profile() if profile else None
    started = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    summary = run_once(influx, DATABASE, as_of_ms=as_of_ms, now_ms=as_of_ms)  # as a live run sees it
    if profiler is not None:
        profiler.disable()
    elapsed = time.perf_counter() - started
    influx.close()
    counts = {k: int(v) for k, v in summary.counts.items() if k != "duration_s"}
    print(f"analytics run_once at {rfc3339(as_of_ms)}: {elapsed:.1f} s")
    print(
        f"   {counts['vehicles_observed']:,} vehicles with data ({counts['vehicles_act']:,} act, "
        f"{counts['vehicles_watch']:,} watch); {counts['alerts']:,} alerts; {counts['cohorts']} cohorts, "
        f"{counts['campaigns']} campaigns ({counts['campaign_vehicles']:,} vehicles); "
        f"{counts['service_list']:,} on the service list; {counts['maintenance_intervals']:,} maintenance "
        f"intervals; {counts['parts_forecast']:,} forecast and {counts['parts_reorder']} reorder points"
    )
    waiting = 0.0
    for text, times in sorted(influx.spent.items(), key=lambda item: -sum(item[1])):
        waiting += sum(times)
        print(f"   {sum(times):6.2f} s  {len(times):3d} x  {text}")
    print(f"   {elapsed - waiting:6.2f} s  computing and formatting (the rest)")
    if profiler is not None:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(25)
        print(out.getvalue())
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--vehicles", type=int, default=10_000, help="vehicles (default: 10000)")
    parser.add_argument("--days", type=int, default=30, help="days of data before the run (default: 30)")
    parser.add_argument(
        "--per-hour", type=int, default=1, help="heartbeats per vehicle and hour (default: 1)"
    )
    parser.add_argument(
        "--home", type=Path, default=None, help="stack directory to keep (default: temporary)"
    )
    parser.add_argument(
        "--runs", type=int, default=2, help="timed runs of the job; the first rolls up the days (default: 2)"
    )
    parser.add_argument(
        "--verify", action="store_true", help="check that rollups and raw points give the same inputs"
    )
    parser.add_argument(
        "--rebuild", action="store_true", help="drop the job's rollups first: the first run builds them"
    )
    parser.add_argument("--profile", action="store_true", help="print a cProfile summary of the last run")
    args = parser.parse_args()

    scratch = None if args.home else tempfile.TemporaryDirectory(prefix="prognos-analytics-bench-")
    home = args.home or Path(scratch.name if scratch else ".")
    stack_module.START_TIMEOUT_S = 600.0  # influxd loads tens of millions of points before it answers
    info, _ = stack_up(home, secure=False)
    print(f"stack: influxd {info.influx_url} ({os.cpu_count()} cores), database {DATABASE}")
    try:
        wanted = (args.vehicles, args.days, args.per_hour)
        found = seeded(info)
        if found == wanted:
            print(f"seed: found in {home} ({args.vehicles:,} vehicles, {args.days} days)")
        elif found is not None:
            raise SystemExit(f"{home} holds another seed {found}; use another --home")
        else:
            seed(info, *wanted)
        print(f"settle: influxd idle after {settle(info):.0f} s")
        if args.rebuild:
            drop_rollups(info)
        as_of_ms = int(AS_OF.timestamp() * 1000)
        times = [  # as `--every 15m` runs: a new snapshot time each run
            time_job(info, args.profile and run == args.runs - 1, as_of_ms + run * 15 * 60_000)
            for run in range(args.runs)
        ]
        print(f"job: {', '.join(f'{t:.1f} s' for t in times)} (target < 60 s)")
        if args.verify:
            verify(info)
    finally:
        stack_down(home)
        if scratch is not None:
            scratch.cleanup()


if __name__ == "__main__":
    main()
