"""The judge: what the agents published, read back from the broker, against what the scenario
injected and expects. Pure: records in, verdicts out.

Alert episodes follow the idea of prognos/models/evaluate.py, applied to what the cloud sees. An agent
sends a record for every window in which it raises a fault, so an episode of a subsystem
starts at a record that carries a fault of that subsystem (`tires.pressure_loss` belongs to
`tires`) when the vehicle's previous record did not, and ends at the vehicle's first record
without one. An episode on a vehicle whose fault of that subsystem has started and not yet
failed is a detection (the first one counts: its day is the window's end, its lead time the
failure day minus that day); one after the failure day is neither; any other one is a false
alarm. Days count from the scenario's day 0.

A `detect` expectation judges a fault once its deadline has passed within the run: the failure
day (less min_lead_days), or onset + within_days_of_onset if that is earlier (from day 0 for a
fault already developing when the run starts). A fault detected
in time passes, one detected late or not at all by its deadline fails, and one whose deadline
lies beyond the end of the run is pending and not judged. Every run is also judged on
delivery: every record each agent spooled reached the broker exactly once or more (seq 1..n,
nothing left in a spool), every sample the bench sent reached the agent, and no agent stopped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from prognos.errors import DecodeError
from prognos.hil.results import BenchRun
from prognos.hil.scenario import Expectation, Scenario
from prognos.record import DiagnosticRecord, decode_record
from prognos.sim.vehicle import FAULT_PARTS, Fault

MS_PER_DAY = 86_400_000
KIND_OF_SUBSYSTEM = {part: kind for kind, part in FAULT_PARTS.items()}
SUMMARY_VERSION = 1


@dataclass(frozen=True)
class Episode:
    vin: str
    subsystem: str
    day: float
    false_alarm: bool


@dataclass
class FaultOutcome:
    vin: str
    kind: str
    target: int
    onset_day: float
    failure_day: float
    status: str = "pending"  # detected | missed | pending (not judged: still developing at the end)
    detection_day: float | None = None
    lead_days: float | None = None


@dataclass
class Check:
    kind: str
    description: str
    passed: bool
    detail: str
    measured: dict[str, Any] = field(default_factory=dict)


@dataclass
class VehicleRecords:
    """One vehicle's records as delivered, in window order, with their wire sizes."""

    records: list[DiagnosticRecord] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    duplicates: int = 0
    invalid: list[str] = field(default_factory=list)

    def day(self, i: int, start_ms: int) -> float:
        return (self.records[i].window_end_ms - start_ms) / MS_PER_DAY


@dataclass
class Judgement:
    passed: bool
    checks: list[Check]
    faults: list[FaultOutcome]
    episodes: list[Episode]
    vehicle_days: float
    uplink_bytes: int
    by_vehicle: dict[str, VehicleRecords]

    @property
    def false_alarms(self) -> list[Episode]:
        return [e for e in self.episodes if e.false_alarm]

    @property
    def false_alarms_per_1000_vehicle_days(self) -> float:
        return 1000.0 * len(self.false_alarms) / self.vehicle_days if self.vehicle_days > 0 else 0.0

    @property
    def uplink_bytes_per_vehicle_day(self) -> float:
        return self.uplink_bytes / self.vehicle_days if self.vehicle_days > 0 else 0.0


def collect(run: BenchRun) -> dict[str, VehicleRecords]:
    """The delivered records per vehicle: decoded, one per (VIN, seq), in window order."""
    by_vehicle = {vin: VehicleRecords() for vin in run.vehicles}
    seen: set[tuple[str, int]] = set()
    for message in run.inbox.messages:
        bucket = by_vehicle.setdefault(message.vin, VehicleRecords())
        try:
            record = decode_record(message.payload)
        except DecodeError as exc:
            bucket.invalid.append(str(exc))
            continue
        if record.vin != message.vin:
            bucket.invalid.append(f"record of {record.vin} on the topic of {message.vin}")
            continue
        if (record.vin, record.seq) in seen:
            bucket.duplicates += 1
            continue
        seen.add((record.vin, record.seq))
        bucket.records.append(record)
        bucket.sizes.append(len(message.payload))
    for bucket in by_vehicle.values():
        order = sorted(
            range(len(bucket.records)),
            key=lambda i: (bucket.records[i].window_start_ms, bucket.records[i].seq),
        )
        bucket.records = [bucket.records[i] for i in order]
        bucket.sizes = [bucket.sizes[i] for i in order]
    return by_vehicle


def alerting(record: DiagnosticRecord) -> set[str]:
    """The subsystems a record raises a fault of."""
    return {fault.code.split(".", 1)[0] for fault in record.faults}


def find_episodes(
    scenario: Scenario, by_vehicle: Mapping[str, VehicleRecords], start_ms: int
) -> list[Episode]:
    faults = {spec.vin: {f.kind: f for f in spec.faults} for spec in scenario.vehicles}
    episodes: list[Episode] = []
    for vin, bucket in by_vehicle.items():
        active: set[str] = set()
        for i, record in enumerate(bucket.records):
            now = alerting(record)
            day = bucket.day(i, start_ms)
            for subsystem in sorted(now - active):
                fault = faults.get(vin, {}).get(KIND_OF_SUBSYSTEM.get(subsystem, ""))
                if fault is not None and day > fault.failure_day:
                    false_alarm = False  # the part has failed: alerts now are true, not false alarms
                else:
                    false_alarm = fault is None or day < fault.onset_day
                episodes.append(Episode(vin, subsystem, day, false_alarm))
            active = now
    episodes.sort(key=lambda e: (e.day, e.vin, e.subsystem))
    return episodes


def judge(run: BenchRun) -> Judgement:
    scenario = run.scenario
    by_vehicle = collect(run)
    episodes = find_episodes(scenario, by_vehicle, run.start_ms)
    vehicle_days = len(scenario.vehicles) * run.simulated_days
    uplink = sum(sum(bucket.sizes) for bucket in by_vehicle.values())
    outcomes = [
        _outcome(spec.vin, fault, episodes, run.simulated_days)
        for spec in scenario.vehicles
        for fault in spec.faults
    ]
    judgement = Judgement(True, [], outcomes, episodes, vehicle_days, uplink, by_vehicle)
    checks = [_delivery(run, by_vehicle)]
    for expectation in scenario.expectations:
        checks.append(_check(expectation, judgement, run))
    if run.interrupted:
        checks.append(
            Check(
                "complete",
                "the run reached the end of the scenario",
                False,
                f"stopped after {run.simulated_days:.2f} days",
            )
        )
    judgement.checks = checks
    judgement.passed = all(c.passed for c in checks)
    return judgement


def _outcome(vin: str, fault: Fault, episodes: list[Episode], simulated_days: float) -> FaultOutcome:
    """Detected (the first episode between onset and failure), missed (failed within the run
    without one), or pending (still developing at the end)."""
    status = "missed" if fault.failure_day <= simulated_days else "pending"
    outcome = FaultOutcome(vin, fault.kind, fault.target, fault.onset_day, fault.failure_day, status)
    subsystem = FAULT_PARTS[fault.kind]
    for episode in episodes:
        if (
            episode.vin == vin
            and episode.subsystem == subsystem
            and fault.onset_day <= episode.day <= fault.failure_day
        ):
            outcome.status = "detected"
            outcome.detection_day = episode.day
            outcome.lead_days = fault.failure_day - episode.day
            break
    return outcome


def _delivery(run: BenchRun, by_vehicle: Mapping[str, VehicleRecords]) -> Check:
    problems: list[str] = []
    missing = duplicates = invalid = 0
    for vin, vehicle in run.vehicles.items():
        bucket = by_vehicle.get(vin, VehicleRecords())
        seqs = {r.seq for r in bucket.records}
        lost = set(range(1, vehicle.records + 1)) - seqs
        missing += len(lost)
        duplicates += bucket.duplicates
        invalid += len(bucket.invalid)
        if vehicle.error:
            problems.append(f"the agent of {vin} stopped: {vehicle.error}")
        if lost:
            problems.append(f"{vin}: {len(lost)} of {vehicle.records} records never reached the broker")
        if vehicle.spooled:
            problems.append(f"{vin}: {vehicle.spooled} records left in the spool")
        if bucket.invalid:
            problems.append(
                f"{vin}: {len(bucket.invalid)} messages are no valid record ({bucket.invalid[0]})"
            )
        given_log = run.replayed and not vehicle.samples_sent  # a recorded log: the bench sent nothing
        if vehicle.samples_taken != vehicle.samples_sent and not given_log:
            problems.append(
                f"{vin}: the agent took {vehicle.samples_taken} of {vehicle.samples_sent} samples sent"
            )
    records = sum(v.records for v in run.vehicles.values())
    measured = {"records": records, "missing": missing, "duplicates": duplicates, "invalid": invalid}
    detail = "; ".join(problems[:5]) + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else "")
    if not problems:
        detail = f"{records} records, all on the broker" + (
            f" ({duplicates} delivered twice)" if duplicates else ""
        )
    return Check(
        "delivery", "every record reached the broker, every sample the agent", not problems, detail, measured
    )


def _check(expectation: Expectation, judgement: Judgement, run: BenchRun) -> Check:
    description = f"{expectation.where}: {expectation.describe()}"
    if expectation.kind == "detect":
        return _detect(expectation, judgement, run, description)
    if expectation.kind == "no_alert":
        vins = expectation.vehicles
        if vins is None:
            vins = tuple(spec.vin for spec in run.scenario.vehicles if not spec.faults)
        subsystems = expectation.subsystems
        found = [
            e
            for e in judgement.episodes
            if e.vin in vins and (subsystems is None or e.subsystem in subsystems)
        ]
        if not vins:
            return Check("no_alert", description, False, "no vehicle to judge: every vehicle has a fault")
        detail = (
            f"no alert on {len(vins)} vehicle{'' if len(vins) == 1 else 's'}"
            if not found
            else f"{len(found)} alerts, the first {found[0].subsystem} on {found[0].vin} "
            f"at day {found[0].day:.2f}"
        )
        return Check(
            "no_alert", description, not found, detail, {"vehicles": len(vins), "alerts": len(found)}
        )
    if expectation.kind == "false_alarms":
        rate = judgement.false_alarms_per_1000_vehicle_days
        limit = expectation.max_per_1000_vehicle_days
        assert limit is not None
        count = len(judgement.false_alarms)
        detail = f"{count} false alarms in {judgement.vehicle_days:.1f} vehicle-days: {rate:.2f} per 1,000"
        return Check(
            "false_alarms",
            description,
            rate <= limit,
            detail,
            {"false_alarms": count, "per_1000_vehicle_days": _num(rate)},
        )
    rate = judgement.uplink_bytes_per_vehicle_day
    limit = expectation.max_bytes_per_vehicle_day
    assert limit is not None
    detail = (
        f"{judgement.uplink_bytes} bytes in {judgement.vehicle_days:.1f} vehicle-days: "
        f"{rate:.0f} per vehicle-day"
    )
    return Check(
        "uplink",
        description,
        rate <= limit,
        detail,
        {"bytes": judgement.uplink_bytes, "bytes_per_vehicle_day": _num(rate)},
    )


def _detect(expectation: Expectation, judgement: Judgement, run: BenchRun, description: str) -> Check:
    judged = ok = 0
    failures: list[str] = []
    pending = 0
    for outcome in judgement.faults:
        if expectation.fault is not None and outcome.kind != expectation.fault:
            continue
        if expectation.vehicles is not None and outcome.vin not in expectation.vehicles:
            continue
        deadline = outcome.failure_day - (expectation.min_lead_days or 0.0)
        if expectation.within_days_of_onset is not None:
            # A fault already developing at day 0 counts from day 0: the agent saw nothing before.
            deadline = min(deadline, max(outcome.onset_day, 0.0) + expectation.within_days_of_onset)
        day = outcome.detection_day
        if day is not None and day <= deadline:
            judged += 1
            ok += 1
            continue
        if day is None and deadline > run.simulated_days:
            pending += 1
            continue
        judged += 1
        if day is None:
            failures.append(f"{outcome.kind} on {outcome.vin} not detected by day {deadline:.2f}")
        else:
            failures.append(
                f"{outcome.kind} on {outcome.vin} detected at day {day:.2f}, "
                f"after its deadline (day {deadline:.2f})"
            )
    share = ok / judged if judged else 0.0
    measured = {"judged": judged, "in_time": ok, "pending": pending, "share": _num(share)}
    if judged == 0:
        return Check(
            "detect",
            description,
            False,
            f"no fault to judge ({pending} still developing at the end)",
            measured,
        )
    passed = share >= expectation.min_share - 1e-12
    detail = f"{ok} of {judged} detected in time" + (f"; {failures[0]}" if failures else "")
    if len(failures) > 1:
        detail += f" (and {len(failures) - 1} more)"
    return Check("detect", description, passed, detail, measured)


def _num(value: float) -> float | None:
    return round(value, 4) if math.isfinite(value) else None


def summary(run: BenchRun, judgement: Judgement) -> dict[str, Any]:
    """The JSON summary (docs/hil.md, "Summary")."""
    scenario = run.scenario
    vehicles = []
    for spec in scenario.vehicles:
        vehicle = run.vehicles.get(spec.vin)
        bucket = judgement.by_vehicle.get(spec.vin)
        vehicles.append(
            {
                "vin": spec.vin,
                "model": spec.model,
                "lot": spec.lot,
                "region": spec.region,
                "faults": [f.kind for f in spec.faults],
                "frames_sent": vehicle.frames_sent if vehicle else 0,
                "node_frames_sent": vehicle.node_frames_sent if vehicle else 0,
                "samples_sent": vehicle.samples_sent if vehicle else 0,
                "samples_taken": vehicle.samples_taken if vehicle else 0,
                "windows": vehicle.windows if vehicle else 0,
                "records": len(bucket.records) if bucket else 0,
                "bytes": sum(bucket.sizes) if bucket else 0,
                "counters": dict(vehicle.counters) if vehicle else {},
                "error": vehicle.error if vehicle else "",
            }
        )
    return {
        "summary_version": SUMMARY_VERSION,
        "scenario": scenario.name,
        "origin": scenario.origin,
        "verdict": "pass" if judgement.passed else "fail",
        "fleet": run.fleet,
        "start_ms": run.start_ms,
        "duration_days": scenario.time.duration_days,
        "simulated_days": _num(run.simulated_days),
        "window_s": scenario.time.window_s,
        "wall_s": _num(run.wall_s),
        "speedup_achieved": _num(run.simulated_days * 86_400.0 / run.wall_s) if run.wall_s > 0 else None,
        "interrupted": run.interrupted,
        "vehicle_count": len(scenario.vehicles),
        "vehicle_days": _num(judgement.vehicle_days),
        "interfaces": {
            "can": scenario.interfaces.can,
            "uart": scenario.interfaces.uart,
            "bus_sleep": scenario.interfaces.bus_sleep,
            "log": str(scenario.interfaces.log) if scenario.interfaces.log else None,
        },
        "agent": {
            "models": str(scenario.agent.models) if scenario.agent.models else "none",
            "catalog": str(scenario.agent.catalog),
            "dbc": str(scenario.agent.dbc),
            "heartbeat_s": scenario.agent.heartbeat_s,
        },
        "checks": [asdict(c) for c in judgement.checks],
        "faults": [asdict(f) for f in judgement.faults],
        "episodes": [asdict(e) for e in judgement.episodes],
        "false_alarms": len(judgement.false_alarms),
        "false_alarms_per_1000_vehicle_days": _num(judgement.false_alarms_per_1000_vehicle_days),
        "uplink": {
            "records": sum(len(b.records) for b in judgement.by_vehicle.values()),
            "bytes": judgement.uplink_bytes,
            "bytes_per_vehicle_day": _num(judgement.uplink_bytes_per_vehicle_day),
            "duplicates": sum(b.duplicates for b in judgement.by_vehicle.values()),
        },
        "vehicles": vehicles,
    }
