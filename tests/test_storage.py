"""Storage: the encoder against hand-written line protocol, the schema against what the code
writes."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from prognos.cloud import analytics_job, dms
from prognos.cloud.lineprotocol import (
    dead_letter_line,
    gateway_status_line,
    ingest_metrics_line,
    record_lines,
)
from prognos.cloud.storage import schema
from prognos.cloud.storage.encode import encode, encode_row
from prognos.cloud.storage.measurement import FieldPattern, FieldType, Measurement, SchemaError
from prognos.record import DiagnosticRecord, FaultHypothesis, SubsystemState
from prognos.status import FIELDS, status_message

ROOT = Path(__file__).resolve().parent.parent

POINT = Measurement(
    name="my point",
    meaning="a measurement of this test",
    tags=("b tag", "a,tag"),
    fields={"f": FieldType.FLOAT, "i": FieldType.INT, "s": FieldType.STR, "b": FieldType.BOOL},
    extra_fields=FieldPattern(
        pattern=re.compile(r"n\.[a-z]+"), type=FieldType.INT, meaning="n.NAME: a count"
    ),
    precision="ms",
)


# ---------------------------------------------------------------- encoder


def test_the_encoder_writes_line_protocol_as_written_by_hand() -> None:
    line = encode(
        POINT,
        {"b tag": 'x=1,y 2\\"', "a,tag": "plain"},
        {"s": 'say "hi"\\\nbye', "i": 42, "f": 1.5, "b": True, "n.frames": 7},
        1_700_000_000_000,
    )
    assert line == (
        'my\\ point,a\\,tag=plain,b\\ tag=x\\=1\\,y\\ 2\\\\" '
        's="say \\"hi\\"\\\\\\nbye",i=42i,f=1.5,b=true,n.frames=7i 1700000000000'
    )


def test_each_field_is_written_as_its_declared_type() -> None:
    line = encode(POINT, {}, {"f": 3, "i": 3.9, "s": 12, "b": 0}, 5)
    assert line == 'my\\ point f=3.0,i=3i,s="12",b=false 5'
    assert encode(POINT, {}, {"f": np.float32(0.5), "i": np.int64(2**62), "b": np.bool_(True)}, 5) == (
        f"my\\ point f=0.5,i={2**62}i,b=true 5"
    )


def test_unknown_values_and_empty_tags_are_left_out() -> None:
    line = encode(
        POINT, {"a,tag": "", "b tag": None}, {"f": math.nan, "i": None, "s": math.inf, "b": False}, 1
    )
    assert line == "my\\ point b=false 1"
    assert encode_row(POINT, {"a,tag": "A", "f": math.inf, "other": "ignored"}, 1) is None
    assert (
        encode_row(POINT, {"a,tag": "A", "i": np.float64(7.0), "zzz": 1}, 1) == "my\\ point,a\\,tag=A i=7i 1"
    )


def test_the_encoder_refuses_what_the_declaration_does_not_hold() -> None:
    with pytest.raises(
        SchemaError, match=r"my point declares no field 'g' \(its fields: f, i, s, b; n\.NAME"
    ):
        encode(POINT, {}, {"g": 1.0}, 1)
    with pytest.raises(SchemaError, match=r"my point declares no tag 'vin' \(its tags: b tag, a,tag\)"):
        encode(POINT, {"vin": "V"}, {"f": 1.0}, 1)
    with pytest.raises(SchemaError, match=r"my point\.i is integer, not 'many'"):
        encode(POINT, {}, {"i": "many"}, 1)
    with pytest.raises(SchemaError, match=r"my point\.b is boolean, not 'false'"):
        encode(POINT, {}, {"b": "false"}, 1)
    with pytest.raises(SchemaError, match="without any field value"):
        encode(POINT, {}, {"f": None}, 1)
    with pytest.raises(SchemaError, match="declares no field 'seq'"):
        encode(schema.VEHICLE_HEALTH, {"vin": "V"}, {"seq": 1}, 1)
    with pytest.raises(ValueError):
        encode(POINT, {}, {"f": 1.0}, 1.5)  # type: ignore[arg-type]


def test_a_declaration_is_checked_and_gives_its_columns() -> None:
    with pytest.raises(SchemaError, match="declared as tag and as field"):
        Measurement(name="m", meaning="", tags=("x",), fields={"x": FieldType.INT}, precision="ms")
    with pytest.raises(SchemaError, match="needs a field"):
        Measurement(name="m", meaning="", tags=("x",), fields={}, precision="ms")
    assert POINT.columns == ("b tag", "a,tag", "f", "i", "s", "b")
    assert POINT.column_names(first=("s",), without=("b tag",)) == ("s", "a,tag", "f", "i", "b")
    assert POINT.field_type("n.x") is FieldType.INT and POINT.field_type("n.X") is None
    with pytest.raises(SchemaError, match="declares no 'nope'"):
        POINT.select("f", "nope")


# ---------------------------------------------------------------- schema


def fields_of(line: str) -> tuple[str, set[str], set[str]]:
    """Measurement, tag keys and field keys of a line (the values may hold escaped text)."""
    unescaped = re.sub(r'"(?:[^"\\]|\\.)*"', '""', line)  # string values out of the way
    series, fields, _ = re.split(r"(?<!\\) ", unescaped)
    name, *tags = re.split(r"(?<!\\),", series)
    keys = {re.split(r"(?<!\\)=", part)[0] for part in re.split(r"(?<!\\),", fields)}
    return name, {re.split(r"(?<!\\)=", tag)[0] for tag in tags}, keys


def written_lines() -> list[str]:
    """A point of every kind the code writes, through the code that writes it."""
    record = DiagnosticRecord(
        vin="VIN1",
        seq=1,
        window_start_ms=1,
        window_end_ms=2,
        model_id="m",
        model_version="1",
        subsystems={"brakes": SubsystemState(0.5, 0.2)},
        faults=(FaultHypothesis("brakes.pad_wear", 0.5, 12.0, 8.0, 20.0),),
        counters={"frames_seen": 3},
    )
    message = status_message(
        model_id="m",
        model_version="1",
        windows=1,
        records=1,
        source_errors=0,
        model_updates=0,
        model_updates_rejected=0,
        model_rollbacks=0,
        last_model_error="",
        counters={"spool_depth": 0},
    )
    lines = [
        *record_lines("f", record),
        gateway_status_line("f", "VIN1", message, 3),
        dead_letter_line("t", "why", b"x", 4),
        ingest_metrics_line("w", {name: 0 for name in schema.INGEST.fields}, 5),
    ]
    return lines


def test_every_point_the_code_writes_is_declared() -> None:
    from prognos.cloud.analytics import analyse
    from tests.test_analytics import NOW, batch_defect_fleet, inputs_for

    results = analyse(inputs_for(*batch_defect_fleet()), NOW)
    snapshot, counts = analytics_job.snapshot(results, NOW, lookback_days=30.0, horizon_weeks=8)
    lines = [*written_lines(), *snapshot, encode_row(schema.ANALYTICS_RUN, counts, NOW) or ""]
    seen = set()
    for line in lines:
        name, tags, keys = fields_of(line)
        measurement = schema.MEASUREMENTS[name]
        assert tags <= set(measurement.tags), line
        assert all(measurement.field_type(key) is not None for key in keys), line
        seen.add(name)
    analytics = {"alert", "cohort", "campaign_vehicle", "service_list", "parts_forecast", "parts_reorder"}
    assert seen >= {m.name for m in schema.INGESTED} | analytics | {"analytics_run"}


def test_the_dms_kinds_are_declared_from_their_columns() -> None:
    assert set(schema.DMS) == set(dms.KINDS)
    work_order = schema.MEASUREMENTS["work_order"]
    assert work_order.tags == ("dealer_id",) and work_order.precision == "ns"
    assert (
        work_order.fields["opened_at_ms"] is FieldType.INT
        and work_order.fields["part_count"] is FieldType.INT
    )
    assert (
        work_order.fields["parts"] is FieldType.STR and work_order.fields["labour_hours"] is FieldType.FLOAT
    )
    assert schema.MEASUREMENTS["parts_stock"].tags == ("dealer_id", "service_center", "part")


def test_names_are_unique_and_a_batch_of_ingest_has_one_precision() -> None:
    every = (*schema.INGESTED, *schema.DMS.values(), *schema.ANALYTICS)
    assert len(schema.MEASUREMENTS) == len(every)
    assert {
        m.precision for m in (schema.DIAG, schema.VEHICLE_HEALTH, schema.FAULT, schema.GATEWAY_STATUS)
    } == {"ms"}
    assert {m.precision for m in schema.ANALYTICS} == {"ms"}


def test_the_status_measurement_follows_the_status_message() -> None:
    texts = {f.name for f in FIELDS if f.type == "string"}
    numbers = {f.name for f in FIELDS if f.type == "integer"}
    fields = schema.GATEWAY_STATUS.fields
    assert {k for k, t in fields.items() if t is FieldType.STR} == texts
    assert {k for k, t in fields.items() if t is FieldType.INT} == numbers
    assert fields["online"] is FieldType.BOOL
    assert schema.GATEWAY_STATUS.field_type("spool_depth") is FieldType.INT


def test_the_rollup_queries_write_the_declared_rollups() -> None:
    queries = " ".join((analytics_job.Q_ROLLUP_HEALTH, *analytics_job.ROLLUP_QUERIES))
    for measurement in schema.ANALYTICS_ROLLUPS:
        target = f'INTO "{measurement.retention_policy}"."{measurement.name}"'
        query = next(q for q in (analytics_job.Q_ROLLUP_HEALTH, *analytics_job.ROLLUP_QUERIES) if target in q)
        assert set(re.findall(r" AS (\w+)", query)) == set(measurement.fields), measurement.name
        assert query.endswith("fill(none)") and all(
            tag in query.split("GROUP BY")[1] for tag in measurement.tags
        )
    assert queries.count("INTO") == len(schema.ANALYTICS_ROLLUPS)


def test_the_dashboard_reads_only_declared_measurements() -> None:
    source = (ROOT / "prognos" / "dashboard" / "data.py").read_text(encoding="utf-8")
    read = set(re.findall(r'FROM "([a-z_]+)"', source))
    assert read and read <= set(schema.MEASUREMENTS), read - set(schema.MEASUREMENTS)


def test_the_schema_loads_without_pandas() -> None:
    """Ingest imports the schema, which holds the DMS kinds: loading them must not cost an
    ingest worker pandas (a second and 50 MB)."""
    code = "import sys, prognos.cloud.ingest; sys.exit('pandas' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=False).returncode == 0
