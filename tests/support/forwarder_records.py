"""The records and the quick backoff that the forwarder tests share: tests/unit/test_forwarder.py
(a scripted in-memory link) and tests/integration/test_forwarder.py (a real Mosquitto, and the
agent it runs as a child process)."""

from __future__ import annotations

from prognos.backoff import Backoff
from prognos.edge.forwarder import Forwarder
from prognos.edge.spool import priority_for
from prognos.record import DiagnosticRecord, FaultHypothesis, SubsystemState, Trigger, encode_record

VIN = "SPOOL000000000001"
T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
HOUR_MS = 3_600_000


def fast_backoff() -> Backoff:
    return Backoff(base_s=0.05, cap_s=0.5)


def record(seq: int, hour: int, trigger: Trigger = Trigger.HEARTBEAT) -> DiagnosticRecord:
    start_ms = T0_MS + hour * HOUR_MS
    return DiagnosticRecord(
        vin=VIN,
        seq=seq,
        window_start_ms=start_ms,
        window_end_ms=start_ms + 600_000,
        model_id="rules",
        model_version="1",
        trigger=trigger,
        subsystems={"battery": SubsystemState(0.93, 1.4 if trigger is Trigger.ANOMALY else 0.2)},
        faults=(FaultHypothesis("battery.module_temperature_drift", 0.9, 12.0, 8.0, 16.0),)
        if trigger is Trigger.ANOMALY
        else (),
        counters={"frames_seen": 36_000 * (hour + 1), "frames_bad": hour % 3},
    )


def submit_all(forwarder: Forwarder, records: list[DiagnosticRecord]) -> None:
    for r in records:
        forwarder.submit(encode_record(r), priority_for(r.trigger))
