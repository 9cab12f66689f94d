"""The judge, on records made up for the purpose: alert episodes as the cloud sees them, detections
with lead times, false alarms, deadlines of detect expectations, delivery, and the summary."""

from __future__ import annotations

import json
from pathlib import Path

from prognos.hil.judge import collect, find_episodes, judge, summary
from prognos.hil.results import BenchRun, Inbox, Received, VehicleRun
from prognos.hil.scenario import Scenario, parse_scenario
from prognos.record import DiagnosticRecord, FaultHypothesis, SubsystemState, Trigger, encode_record

START_MS = 1_788_220_800_000
WINDOW_MS = 600_000
FAULTY, HEALTHY = "PRGTEST0000000001", "PRGTEST0000000002"

SCENARIO = f"""
name = "judged"

[time]
duration_days = 10

[[vehicle]]
vin = "{FAULTY}"

[[vehicle]]
vin = "{HEALTHY}"

[[fault]]
kind = "tire_leak"
vehicles = [0]
onset_day = 2
failure_day = 8

[[fault]]
kind = "motor_noise"
vehicles = [0]
onset_day = 6
failure_day = 30

[[expect]]
kind = "detect"
fault = "tire_leak"
within_days_of_onset = 3
min_lead_days = 2

[[expect]]
kind = "detect"
fault = "motor_noise"
within_days_of_onset = 10

[[expect]]
kind = "no_alert"

[[expect]]
kind = "false_alarms"
max_per_1000_vehicle_days = 60

[[expect]]
kind = "uplink"
max_bytes_per_vehicle_day = 30
"""


def scenario(text: str = SCENARIO) -> Scenario:
    return parse_scenario(text, origin="judged.toml", base=Path("."))


def record(vin: str, seq: int, day: float, *codes: str) -> DiagnosticRecord:
    end_ms = START_MS + round(day * 86_400_000 / WINDOW_MS) * WINDOW_MS
    return DiagnosticRecord(
        vin=vin,
        seq=seq,
        window_start_ms=end_ms - WINDOW_MS,
        window_end_ms=end_ms,
        model_id="rules",
        model_version="1",
        trigger=Trigger.ANOMALY if codes else Trigger.HEARTBEAT,
        subsystems={"tires": SubsystemState(0.5, 2.0 if codes else 0.1)},
        faults=tuple(FaultHypothesis(code, 0.9) for code in codes),
    )


def bench_run(
    records: list[DiagnosticRecord], *, sent: dict[str, int] | None = None, days: float = 10.0
) -> BenchRun:
    sc = scenario()
    counts = sent or {vin: sum(r.vin == vin for r in records) for vin in (FAULTY, HEALTHY)}
    vehicles = {
        vin: VehicleRun(vin, records=n, samples_sent=10, samples_taken=10) for vin, n in counts.items()
    }
    inbox = Inbox([Received(r.vin, encode_record(r), 0.0) for r in records])
    return BenchRun(sc, "f", START_MS, days, 1.0, False, vehicles, inbox, Path("."))


RECORDS = [
    record(FAULTY, 1, 0.5),
    record(FAULTY, 2, 1.0, "tires.pressure_loss"),  # before onset: a false alarm
    record(FAULTY, 3, 1.5),
    record(FAULTY, 4, 3.0, "tires.pressure_loss"),  # the detection: 1 day after onset, 5 before failure
    record(FAULTY, 5, 3.1, "tires.pressure_loss", "brakes.pad_wear"),  # same tire episode; brakes: false
    record(FAULTY, 6, 9.0, "tires.pressure_loss"),  # after failure: neither
    record(HEALTHY, 1, 4.0),
    record(HEALTHY, 2, 5.0, "battery.module_temperature_drift"),  # a false alarm
]


def test_episodes_start_where_a_vehicles_records_begin_to_carry_a_subsystems_fault() -> None:
    run = bench_run(RECORDS)
    episodes = find_episodes(run.scenario, collect(run), START_MS)
    assert [(e.vin[-1], e.subsystem, round(e.day, 2), e.false_alarm) for e in episodes] == [
        ("1", "tires", 1.0, True),
        ("1", "tires", 3.0, False),
        ("1", "brakes", 3.1, True),
        ("2", "battery", 5.0, True),
    ]


def test_a_detection_in_time_passes_and_a_developing_fault_is_not_judged_yet() -> None:
    judgement = judge(bench_run(RECORDS))
    tire, motor = judgement.faults
    assert (tire.status, tire.detection_day, tire.lead_days) == ("detected", 3.0, 5.0)
    assert motor.status == "pending"
    checks = {c.description.split(":")[0]: c for c in judgement.checks}
    assert checks["[[expect]] 1"].passed and checks["[[expect]] 1"].measured["in_time"] == 1
    motor_check = checks["[[expect]] 2"]
    assert not motor_check.passed and "no fault to judge (1 still developing" in motor_check.detail
    assert (
        not checks["[[expect]] 3"].passed
        and "battery on PRGTEST0000000002 at day 5.00" in checks["[[expect]] 3"].detail
    )
    assert len(judgement.false_alarms) == 3
    assert judgement.false_alarms_per_1000_vehicle_days == 150.0
    assert not checks["[[expect]] 4"].passed
    assert judgement.checks[0].kind == "delivery" and judgement.checks[0].passed
    assert judgement.uplink_bytes == sum(len(encode_record(r)) for r in RECORDS)
    assert not checks["[[expect]] 5"].passed and "36 per vehicle-day" in checks["[[expect]] 5"].detail
    assert not judgement.passed


def test_a_late_detection_or_a_missed_fault_fails_its_expectation() -> None:
    late = [record(FAULTY, 1, 5.5, "tires.pressure_loss")]  # 3.5 days after onset, allowed 3
    check = judge(bench_run(late)).checks[1]
    assert not check.passed and "detected at day 5.50, after its deadline (day 5.00)" in check.detail
    judgement = judge(bench_run([record(FAULTY, 1, 1.0)]))
    assert judgement.faults[0].status == "missed"
    assert "tire_leak on PRGTEST0000000001 not detected by day 5.00" in judgement.checks[1].detail


def test_lost_duplicated_or_garbled_records_fail_delivery() -> None:
    run = bench_run(RECORDS, sent={FAULTY: 8, HEALTHY: 2})  # the agent spooled two more than arrived
    run.inbox.messages.append(run.inbox.messages[0])
    run.inbox.messages.append(Received(HEALTHY, b"\xff\x00", 0.0))
    run.vehicles[HEALTHY].samples_taken = 9
    delivery = judge(run).checks[0]
    assert not delivery.passed
    assert delivery.measured == {"records": 10, "missing": 2, "duplicates": 1, "invalid": 1}
    assert "PRGTEST0000000001: 2 of 8 records never reached the broker" in delivery.detail
    assert "the agent took 9 of 10 samples sent" in delivery.detail


def test_the_summary_is_json_with_the_documented_fields() -> None:
    run = bench_run(RECORDS)
    data = json.loads(json.dumps(summary(run, judge(run))))
    assert data["verdict"] == "fail" and data["summary_version"] == 1
    assert {
        "scenario", "fleet", "start_ms", "duration_days", "simulated_days", "window_s", "wall_s",
        "speedup_achieved", "interrupted", "vehicle_count", "vehicle_days", "interfaces", "agent",
        "checks", "faults", "episodes", "false_alarms", "false_alarms_per_1000_vehicle_days",
        "uplink", "vehicles",
    } <= set(data)  # fmt: skip
    assert data["checks"][0] == {
        "kind": "delivery",
        "description": "every record reached the broker, every sample the agent",
        "passed": True,
        "detail": "8 records, all on the broker",
        "measured": {"records": 8, "missing": 0, "duplicates": 0, "invalid": 0},
    }
    assert data["faults"][0]["status"] == "detected" and data["faults"][0]["lead_days"] == 5.0
    assert data["vehicles"][0]["records"] == 6 and data["uplink"]["records"] == 8
