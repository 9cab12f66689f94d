"""Storage: the encoder against hand-written line protocol, the schema against what the code
writes and what the docs list, and the writer against a small HTTP server of the test's own
that answers /write with scripted statuses (413, 429 and 503 with or without Retry-After,
400, 404 database not found)."""

from __future__ import annotations

import gzip
import json
import math
import re
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest

from prognos.cloud.analytics import job, reading
from prognos.cloud.dealers import kinds
from prognos.cloud.ingest.points import (
    dead_letter_line,
    gateway_status_line,
    ingest_metrics_line,
    record_lines,
)
from prognos.cloud.storage import schema
from prognos.cloud.storage.client import BatchTooLargeError, InfluxClient
from prognos.cloud.storage.encode import encode, encode_row
from prognos.cloud.storage.measurement import FieldPattern, FieldType, Measurement, SchemaError
from prognos.cloud.storage.writer import InfluxWriter, WriteStopped
from prognos.errors import RejectedError, ThrottledError, TransientError
from prognos.record import DiagnosticRecord, FaultHypothesis, SubsystemState
from prognos.status import FIELDS, status_message

ROOT = Path(__file__).resolve().parents[2]

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
    from prognos.cloud.analytics.analyse import analyse
    from tests.unit.test_analytics import NOW, batch_defect_fleet, inputs_for

    results = analyse(inputs_for(*batch_defect_fleet()), NOW)
    snapshot, counts = job.snapshot(results, NOW, lookback_days=30.0, horizon_weeks=8)
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
    assert set(schema.DMS) == set(kinds.KINDS)
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
    queries = " ".join((reading.Q_ROLLUP_HEALTH, *reading.ROLLUP_QUERIES))
    for measurement in schema.ANALYTICS_ROLLUPS:
        target = f'INTO "{measurement.retention_policy}"."{measurement.name}"'
        query = next(q for q in (reading.Q_ROLLUP_HEALTH, *reading.ROLLUP_QUERIES) if target in q)
        assert set(re.findall(r" AS (\w+)", query)) == set(measurement.fields), measurement.name
        assert query.endswith("fill(none)") and all(
            tag in query.split("GROUP BY")[1] for tag in measurement.tags
        )
    assert queries.count("INTO") == len(schema.ANALYTICS_ROLLUPS)


def test_the_dashboard_reads_only_declared_measurements() -> None:
    source = (ROOT / "prognos" / "dashboard" / "data.py").read_text(encoding="utf-8")
    read = set(re.findall(r'FROM "([a-z_]+)"', source))
    assert read and read <= set(schema.MEASUREMENTS), read - set(schema.MEASUREMENTS)


def test_only_the_writer_sends_points() -> None:
    """Every write goes through InfluxWriter: nothing else in prognos calls the client's write."""
    callers = []
    for path in (ROOT / "prognos").rglob("*.py"):
        if path.parent.name == "storage":
            continue
        text = path.read_text(encoding="utf-8")
        if re.search(r"(influx|client)\.write\(", text):
            callers.append(path.relative_to(ROOT))
    assert callers == []


def test_the_schema_loads_without_pandas() -> None:
    """Ingest imports the schema, which holds the DMS kinds: loading them must not cost an
    ingest worker pandas (a second and 50 MB)."""
    code = "import sys, prognos.cloud.ingest.worker; sys.exit('pandas' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=False).returncode == 0


def test_ingest_reads_the_retry_delay_from_the_typed_error() -> None:
    source = (ROOT / "prognos" / "cloud" / "ingest" / "worker.py").read_text(encoding="utf-8")
    assert "retry_after" not in source and "getattr(exc" not in source


def test_the_storage_page_lists_every_measurement_with_its_tags_and_fields() -> None:
    text = (ROOT / "docs" / "storage.md").read_text(encoding="utf-8")
    for measurement in schema.MEASUREMENTS.values():
        rows = [line for line in text.splitlines() if line.startswith(f"| `{measurement.name}` |")]
        assert len(rows) == 1, measurement.name
        for tag in measurement.tags:
            assert f"`{tag}`" in rows[0].split(" | ")[1], (measurement.name, tag)
        for name, kind in measurement.fields.items():
            assert f"`{name}` {kind}" in rows[0], (measurement.name, name)


def test_the_gateway_page_lists_every_status_field() -> None:
    text = (ROOT / "docs" / "gateway.md").read_text(encoding="utf-8")
    for status_field in FIELDS:
        assert re.search(rf"^\| `{status_field.name}` \| {status_field.type} \|", text, re.M), (
            status_field.name
        )
    message = status_message(
        model_id="m",
        model_version="v",
        windows=0,
        records=0,
        source_errors=0,
        model_updates=0,
        model_updates_rejected=0,
        model_rollbacks=0,
        last_model_error="",
        counters={},
    )
    assert tuple(message) == tuple(f.name for f in FIELDS)


# ---------------------------------------------------------------- the writer, against an HTTP server


@dataclass
class Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""


Script = Callable[[list[str]], Answer | None]  # the lines of a /write -> a scripted answer, or None: 204


@dataclass
class ScriptedInflux:
    """An HTTP server that answers /write as the test scripts it and keeps what it stored."""

    url: str
    answers: deque[Answer] = field(default_factory=deque)  # answered first, one per /write
    rule: Script = lambda lines: None
    stored: list[str] = field(default_factory=list)
    writes: list[tuple[float, list[str], str]] = field(default_factory=list)  # time, lines, precision
    queries: list[str] = field(default_factory=list)
    databases: set[str] = field(default_factory=lambda: {"db"})


@pytest.fixture
def server() -> Iterator[ScriptedInflux]:
    state: list[ScriptedInflux] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def _answer(self, answer: Answer) -> None:
            body = answer.body.encode()
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            me = state[0]
            url = urlparse(self.path)
            params = {k: v[0] for k, v in parse_qs(url.query).items()}
            data = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if url.path == "/query":
                me.queries.append(params["q"])
                name = params["q"].removeprefix("CREATE DATABASE ").strip('"')
                me.databases.add(name)
                return self._answer(Answer(200, {"Content-Type": "application/json"}, '{"results":[{}]}'))
            lines = gzip.decompress(data).decode().splitlines()
            me.writes.append((time.monotonic(), lines, params["precision"]))
            if params["db"] not in me.databases:
                return self._answer(
                    Answer(404, body=json.dumps({"error": f'database not found: "{params["db"]}"'}))
                )
            answer = me.answers.popleft() if me.answers else me.rule(lines)
            if answer is None:
                me.stored.extend(lines)
                answer = Answer(204)
            self._answer(answer)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.append(ScriptedInflux(f"http://127.0.0.1:{httpd.server_address[1]}"))
    thread = threading.Thread(target=httpd.serve_forever, name="scripted-influx", daemon=True)
    thread.start()
    try:
        yield state[0]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.fixture
def client(server: ScriptedInflux) -> Iterator[InfluxClient]:
    influx = InfluxClient(server.url, timeout_s=5.0)
    yield influx
    influx.close()


def at_most(lines_per_request: int) -> Script:
    """A server whose body limit holds `lines_per_request` lines."""
    return lambda lines: (
        Answer(413, body='{"error":"Request Entity Too Large"}') if len(lines) > lines_per_request else None
    )


def test_a_batch_too_large_is_halved_until_it_fits(server: ScriptedInflux, client: InfluxClient) -> None:
    server.rule = at_most(3)
    lines = [f"m v={i}i {i}" for i in range(20)]
    done: list[int] = []
    InfluxWriter(client=client, database="db", batch_lines=8).write(
        lines, precision="ns", progress=done.append
    )
    assert server.stored == lines and done == [8, 8, 4]
    assert all(precision == "ns" for _, _, precision in server.writes)
    assert max(len(sent) for _, sent, _ in server.writes if len(sent) <= 3) == 2  # 8 -> 4 -> 2


def test_a_line_too_large_alone_is_refused(server: ScriptedInflux, client: InfluxClient) -> None:
    server.rule = lambda lines: Answer(413) if any("huge" in line for line in lines) else None
    with pytest.raises(BatchTooLargeError):
        InfluxWriter(client=client, database="db").write(["m v=1i 1", 'm s="huge" 2'], precision="ms")
    assert server.stored == ["m v=1i 1"]


def test_429_and_503_are_throttled_errors_with_the_servers_retry_after(
    server: ScriptedInflux, client: InfluxClient
) -> None:
    server.answers.append(Answer(429, {"Retry-After": "7"}, '{"error":"slow down"}'))
    with pytest.raises(ThrottledError, match="InfluxDB answered 429: slow down") as caught:
        client.write("db", ["m v=1i 1"])
    assert caught.value.retry_after_s == 7.0 and isinstance(caught.value, TransientError)
    server.answers.extend([Answer(503), Answer(503, {"Retry-After": "soon"})])
    for _ in range(2):
        with pytest.raises(ThrottledError) as caught:
            client.write("db", ["m v=1i 1"])
        assert caught.value.retry_after_s is None


def test_the_writer_waits_as_long_as_retry_after_says(server: ScriptedInflux, client: InfluxClient) -> None:
    server.answers.extend([Answer(429, {"Retry-After": "0.3"}), Answer(503, {"Retry-After": "0.2"})])
    retries: list[tuple[str, float]] = []
    writer = InfluxWriter(
        client=client, database="db", on_retry=lambda e, d: retries.append((type(e).__name__, d))
    )
    writer.write(["m v=1i 1"], precision="ms")
    assert retries == [("ThrottledError", 0.3), ("ThrottledError", 0.2)]
    (first, _, _), (second, _, _), (third, _, _) = server.writes
    assert second - first >= 0.3 and third - second >= 0.2
    assert server.stored == ["m v=1i 1"]


def test_without_retry_after_the_writer_backs_off_with_jitter(
    server: ScriptedInflux, client: InfluxClient
) -> None:
    server.answers.extend([Answer(503), Answer(500), Answer(503, {"Retry-After": "0"})])
    delays: list[float] = []
    writer = InfluxWriter(
        client=client,
        database="db",
        backoff_base_s=0.01,
        backoff_cap_s=0.02,
        on_retry=lambda e, d: delays.append(d),
    )
    writer.write(["m v=1i 1"], precision="ms")
    assert len(delays) == 3 and 0 <= delays[0] <= 0.01 and all(0 <= d <= 0.02 for d in delays[1:])
    assert server.stored == ["m v=1i 1"]


def test_the_attempts_are_a_budget(server: ScriptedInflux, client: InfluxClient) -> None:
    server.rule = lambda lines: Answer(503, {"Retry-After": "0.01"})
    with pytest.raises(ThrottledError) as caught:
        InfluxWriter(client=client, database="db", attempts=3).write(["m v=1i 1"], precision="ms")
    assert caught.value.retry_after_s == 0.01 and len(server.writes) == 3
    with pytest.raises(ThrottledError):
        InfluxWriter(client=client, database="db", attempts=1).write(["m v=1i 1"], precision="ms")
    assert len(server.writes) == 4


def test_a_stop_ends_the_retries(server: ScriptedInflux, client: InfluxClient) -> None:
    server.rule = lambda lines: Answer(503, {"Retry-After": "30"})
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    started = time.monotonic()
    with pytest.raises(WriteStopped):
        InfluxWriter(client=client, database="db", stop=stop).write(["m v=1i 1"], precision="ms")
    assert time.monotonic() - started < 5 and server.stored == []


def test_a_missing_database_is_created_when_asked(server: ScriptedInflux, client: InfluxClient) -> None:
    InfluxWriter(client=client, database="new", create_database=True).write(["m v=1i 1"], precision="ms")
    assert server.queries == ['CREATE DATABASE "new"'] and server.stored == ["m v=1i 1"]
    with pytest.raises(TransientError, match="database not found"):
        InfluxWriter(client=client, database="other", attempts=1).write(["m v=1i 1"], precision="ms")


def test_a_database_that_stays_missing_is_waited_for(server: ScriptedInflux, client: InfluxClient) -> None:
    server.rule = lambda lines: Answer(404, body='{"error":"database not found: \\"db\\""}')
    writer = InfluxWriter(
        client=client, database="db", attempts=2, create_database=True, backoff_base_s=0.01, backoff_cap_s=0.1
    )
    with pytest.raises(TransientError, match="database not found"):
        writer.write(["m v=1i 1"], precision="ms")
    assert server.queries == ['CREATE DATABASE "db"'] * 2 and len(server.writes) == 4


def test_refused_data_is_not_retried(server: ScriptedInflux, client: InfluxClient) -> None:
    server.rule = lambda lines: Answer(400, body='{"error":"field type conflict"}')
    with pytest.raises(RejectedError, match="field type conflict"):
        InfluxWriter(client=client, database="db").write(["m v=1i 1"], precision="ms")
    assert len(server.writes) == 1


def test_groups_refused_come_back_and_the_others_are_stored(
    server: ScriptedInflux, client: InfluxClient
) -> None:
    poison = lambda lines: Answer(400, body='{"error":"partial write: field type conflict"}')  # noqa: E731
    big = at_most(4)
    server.rule = lambda lines: (
        poison(lines) if any("poison" in line for line in lines) else big(lines) if len(lines) > 4 else None
    )
    groups = [
        ["a v=1i 1", "a w=1i 1"],
        ['b s="poison" 1'],
        ["c v=1i 1", "c w=1i 1"],
        [f"d v={i}i {i}" for i in range(5)],  # too large alone
        ["e v=1i 1"],
    ]
    refused = InfluxWriter(client=client, database="db").write_groups(groups, precision="ms")
    assert [index for index, _ in refused] == [1, 3]
    assert "field type conflict" in str(refused[0][1]) and isinstance(refused[1][1], BatchTooLargeError)
    assert sorted(server.stored) == sorted([*groups[0], *groups[2], *groups[4]])
    assert InfluxWriter(client=client, database="db").write_groups([], precision="ms") == []
