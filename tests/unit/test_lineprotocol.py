"""Records as line protocol: the health lines written out by hand match the encoder and the
declaration of vehicle_health; the other points are what the declarations give."""

from __future__ import annotations

import random

from prognos.cloud.ingest.points import (
    dead_letter_line,
    gateway_status_line,
    ingest_metrics_line,
    record_lines,
)
from prognos.cloud.storage import schema
from prognos.cloud.storage.encode import encode
from prognos.record import Cause, DiagnosticRecord, FaultHypothesis, SubsystemState, Trigger
from prognos.status import FIELDS, status_message

HEALTH = schema.VEHICLE_HEALTH.name


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


def test_health_lines_are_what_the_encoder_gives() -> None:
    rng = random.Random(3)
    for fleet in ("demo", "fleet a,b=c", "süd\\ost"):
        for _ in range(200):
            record = random_record(rng)
            lines = record_lines(fleet, record)
            expected = [
                encode(
                    schema.VEHICLE_HEALTH,
                    {"fleet": fleet, "vin": record.vin, "subsystem": name},
                    {"health": state.health, "anomaly_score": state.anomaly_score},
                    record.window_end_ms,
                )
                for name, state in record.subsystems.items()
            ]
            assert [line for line in lines if line.startswith(HEALTH + ",")] == expected
            assert len(lines) == 1 + len(record.subsystems) + len(record.faults)


def keys_of(line: str) -> tuple[str, set[str], set[str]]:
    """Measurement, tag keys and field keys of a line whose values hold no escaped characters."""
    series, fields, _ = line.split(" ")
    name, *tags = series.split(",")
    return name, {tag.split("=")[0] for tag in tags}, {field.split("=")[0] for field in fields.split(",")}


def test_the_hand_made_health_line_writes_the_declared_tags_and_fields() -> None:
    record = random_record(random.Random(1))
    lines = [line for line in record_lines("demo", record) if line.startswith(HEALTH + ",")]
    assert lines
    for line in lines:
        assert keys_of(line) == (HEALTH, set(schema.VEHICLE_HEALTH.tags), set(schema.VEHICLE_HEALTH.fields))


def test_a_record_writes_diag_and_fault_points_as_declared() -> None:
    record = random_record(random.Random(2))
    diag, *_, fault = record_lines("demo", record)
    assert diag == (
        f"diag,fleet=demo,vin={record.vin} seq={record.seq}i,window_start_ms=1700000000000i,"
        f'model_id="rules",model_version="1",trigger=0i,counter.frames={record.counters["frames"]}i '
        f"{record.window_end_ms}"
    )
    assert fault == (
        f"fault,code=brakes.pad_wear,fleet=demo,vin={record.vin} "
        f"confidence=0.5,days_to_threshold=12.0,days_low=8.0,days_high=20.0 {record.window_end_ms}"
    )


def test_causes_go_on_each_fault_point_and_conditions_on_diag_and_fault_points() -> None:
    record = DiagnosticRecord(
        vin="CAUSES00000000001",
        seq=5,
        window_start_ms=1_700_000_000_000,
        window_end_ms=1_700_000_600_000,
        model_id="prognos-default",
        model_version="2026.11.27",
        trigger=Trigger.ANOMALY,
        faults=(FaultHypothesis("brakes.pad_wear", 0.75), FaultHypothesis("tires.pressure_loss", 0.5)),
        causes=(Cause("brakes.pad_wear", 0.8125), Cause("tires.pressure_loss", 0.125)),
        ambient_c=-3.5,
        humidity_pct=87.5,
    )
    diag, *faults = record_lines("demo", record)
    assert diag == (
        "diag,fleet=demo,vin=CAUSES00000000001 seq=5i,window_start_ms=1700000000000i,"
        'model_id="prognos-default",model_version="2026.11.27",trigger=2i,ambient_c=-3.5,humidity_pct=87.5 '
        "1700000600000"
    )
    causes = (
        'cause_1_code="brakes.pad_wear",cause_1_probability=0.8125,'
        'cause_2_code="tires.pressure_loss",cause_2_probability=0.125,ambient_c=-3.5,humidity_pct=87.5'
    )
    assert faults == [
        f"fault,code={code},fleet=demo,vin=CAUSES00000000001 confidence={confidence},{causes} 1700000600000"
        for code, confidence in (("brakes.pad_wear", 0.75), ("tires.pressure_loss", 0.5))
    ]
    for line in faults:
        assert keys_of(line)[2] <= set(schema.FAULT.fields)


def test_the_status_point_holds_the_message_fields_the_schema_derives() -> None:
    message = status_message(
        model_id="m",
        model_version="v" * 300,
        windows=3,
        records=4,
        source_errors=0,
        model_updates=1,
        model_updates_rejected=2,
        model_rollbacks=0,
        last_model_error="bad_signature",
        counters={"spool_depth": 3, "Bad Key": 5, "records": 99, "flag": True},
    )
    line = gateway_status_line("f", "V1", message, 5)
    name, tags, fields = keys_of(line.replace("v" * 200, "v"))
    assert (name, tags) == ("gateway_status", {"fleet", "vin"})
    scalar = {field.name for field in FIELDS if field.type != "object"}
    assert fields == scalar | {"online", "spool_depth"}
    assert set(schema.GATEWAY_STATUS.fields) == scalar | {"online"}
    assert "records=4i" in line and "online=true" in line and f'model_version="{"v" * 200}"' in line
    offline = gateway_status_line("f", "V1", {"state": "offline"}, 6)
    assert offline == 'gateway_status,fleet=f,vin=V1 state="offline",online=false 6'


def test_metrics_and_dead_letters_are_declared_points() -> None:
    fields = {name: 1 for name in schema.INGEST.fields}
    fields["lag_s"] = 0.5
    line = ingest_metrics_line("w 1", fields, 7)
    assert (
        line.startswith("ingest,worker=w\\ 1 received=1i,") and "lag_s=0.5," in line and line.endswith(" 7")
    )
    assert dead_letter_line("t", 'say "x"', b"\x00\xff", 9) == (
        'dead_letter,topic=t reason="say \\"x\\"",payload_hex="00ff",size=2i 9'
    )
