"""Records as line protocol: the health lines written out by hand match the generic writer."""

from __future__ import annotations

import random

from prognos.cloud.lineprotocol import HEALTH, _line, record_lines
from prognos.record import DiagnosticRecord, FaultHypothesis, SubsystemState


def random_record(rng: random.Random) -> DiagnosticRecord:
    names = rng.sample(["battery", "brakes", "tires", "bearings", "motor", "x_1"], rng.randint(0, 6))
    return DiagnosticRecord(
        vin=f"VIN{rng.randrange(10**14):014d}",
        seq=rng.randrange(2**40),
        window_start_ms=1_700_000_000_000,
        window_end_ms=1_700_000_600_000 + rng.randrange(10**6),
        model_id="rules",
        model_version="1",
        subsystems={
            name: SubsystemState(rng.choice([0.0, 1.0, rng.random()]), rng.uniform(0, 1e6)) for name in names
        },
        faults=(FaultHypothesis("brakes.pad_wear", 0.5, 12.0, 8.0, 20.0),),
        counters={"frames": rng.randrange(10**6)},
    )


def test_health_lines_are_what_the_generic_writer_gives() -> None:
    rng = random.Random(3)
    for fleet in ("demo", "fleet a,b=c", "süd\\ost"):
        for _ in range(200):
            record = random_record(rng)
            lines = record_lines(fleet, record)
            expected = [
                _line(
                    HEALTH,
                    {"fleet": fleet, "vin": record.vin, "subsystem": name},
                    {"health": state.health, "anomaly_score": state.anomaly_score},
                    record.window_end_ms,
                )
                for name, state in record.subsystems.items()
            ]
            assert [line for line in lines if line.startswith(HEALTH + ",")] == expected
            assert len(lines) == 1 + len(record.subsystems) + len(record.faults)
