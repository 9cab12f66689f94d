"""DMS import: every bad row is reported with its place and then nothing is written; a good
import reads back as it went in; importing again does not count twice; arbitrary input raises
only the documented errors (ConfigError for a file, RowError for a row). The tests against the
real InfluxDB are tests/integration/test_dms.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prognos.cli import main
from prognos.cloud.dealers.dms import (
    RowError,
    decode_table,
    from_stored,
    id_offset_ns,
    parse_row,
    point_line,
    point_time_ns,
    stored_fields,
    validate,
)
from prognos.cloud.dealers.kinds import KINDS, Column, Record, Table, detect_kind
from prognos.errors import ConfigError

ORDER_HEADER = (
    "dealer_id,order_id,vin,opened_at,closed_at,promised_minutes,first_contact_resolved,"
    "fixed_first_time,repeat_of_order_id,labour_hours,parts,amount,currency,service_center,region"
)
ORDER_1 = (
    "D1,WO-1,VIN1,2024-03-01T08:00:00Z,2024-03-01T08:40:00Z,45,true,true,,0.8,P-A;P-B,120.50,EUR,SC-1,north"
)
ORDER_9 = "D1,WO-9,VIN2,2024-03-02T09:00:00Z,,60,no,false,WO-1,1.5,,80,EUR,SC-1,north"


def orders_csv(*rows: str) -> bytes:
    return (ORDER_HEADER + "\n" + "\n".join(rows) + "\n").encode()


def checked(data: bytes, name: str = "orders.csv") -> Any:
    table = decode_table(data, name)
    return validate(table, detect_kind(table.columns, name))


def order(**changes: str) -> str:
    cells = dict(zip(ORDER_HEADER.split(","), ORDER_1.split(","), strict=True))
    cells["order_id"] = "WO-5"
    cells.update(changes)
    return ",".join(cells.values())


# --- validation, no database --------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad_row, reason",
    [
        (order(vin=""), "vin is missing"),
        (order(dealer_id="  "), "dealer_id is missing"),
        (order(order_id=""), "order_id is missing"),
        (order(promised_minutes="soon"), "promised_minutes 'soon' is not a number"),
        (order(promised_minutes="0"), "promised_minutes '0' is not between 1 and 525600"),
        (order(promised_minutes="45.5"), "promised_minutes '45.5' is not a whole number"),
        (order(opened_at="01/03/2024 08:00"), "opened_at '01/03/2024 08:00' is not an ISO 8601"),
        (order(opened_at="2024-02-30T08:00:00Z"), "is not an ISO 8601"),
        (order(closed_at="2024-03-01T07:59:00Z"), "closed_at 2024-03-01T07:59:00.000Z is before opened_at"),
        (order(fixed_first_time="maybe"), "fixed_first_time 'maybe' is not true or false"),
        (order(labour_hours="-1"), "labour_hours '-1' is not between 0 and 10000"),
        (order(amount="NaN"), "amount 'NaN' is not a number"),
        (order(amount="1e999"), "amount '1e999' is not a finite number"),
        (order(repeat_of_order_id="WO-5"), "repeat_of_order_id names the order itself"),
        (order(dealer_id="D\\1"), "holds a backslash"),
        (order(order_id="WO-1"), "duplicate of line 2 (dealer_id 'D1', order_id 'WO-1')"),
        (ORDER_1 + ",extra", "16 cells, the header has 15"),
    ],
)
def test_each_bad_order_row_is_reported_at_its_line(bad_row: str, reason: str) -> None:
    result = checked(orders_csv(ORDER_1, bad_row, ORDER_9))
    assert result.rows == 3
    assert [p.location for p in result.problems] == ["line 3"]
    assert reason in str(result.problems[0])
    assert [r["order_id"] for r in result.records] == ["WO-1", "WO-9"]


GUIDE_HEADER = ORDER_HEADER + ",fault_code,symptoms,mileage_km,root_cause,repair"


def guided(
    *,
    order_id: str = "WO-5",
    symptoms: str = "squeal;pulls_to_side",
    mileage_km: str = "48210",
    root_cause: str = "caliper_sticking",
) -> str:
    diagnosis = ["brakes.pad_wear", symptoms, mileage_km, root_cause, "overhaul_caliper"]
    return ",".join([order(order_id=order_id), *diagnosis])


@pytest.mark.parametrize(
    "row, reason",
    [
        (guided(symptoms="Squeal"), "symptoms 'Squeal': each tag is a lower-case word"),
        (guided(symptoms="squeal;;pulls to side"), "'', 'pulls to side' is not"),
        (guided(root_cause="caliper;pads"), "root_cause 'caliper;pads': each tag"),
        (guided(mileage_km="-5"), "mileage_km '-5' is below 0"),
    ],
)
def test_the_diagnostic_columns_of_a_work_order_are_checked(row: str, reason: str) -> None:
    good = guided(order_id="WO-2")
    result = checked((GUIDE_HEADER + "\n" + good + "\n" + row + "\n").encode())
    assert [p.location for p in result.problems] == ["line 3"]
    assert reason in str(result.problems[0])
    record = result.records[0]
    assert record["fault_code"] == "brakes.pad_wear" and record["mileage_km"] == 48210
    assert (record["symptoms"], record["root_cause"]) == ("squeal;pulls_to_side", "caliper_sticking")


@pytest.mark.parametrize(
    "kind, header, good, bad, reason",
    [
        (
            "survey",
            "dealer_id,survey_id,vin,answered_at,csat,nps",
            "D1,S1,V1,2024-03-01T10:00:00+01:00,5,10",
            "D1,S2,V1,2024-03-01,6,9",
            "csat '6' is not between 1 and 5",
        ),
        (
            "survey",
            "dealer_id,survey_id,vin,answered_at,csat,nps",
            "D1,S1,V1,2024-03-01,5,10",
            "D1,S2,V1,2024-03-01,4,11",
            "nps '11' is not between 0 and 10",
        ),
        (
            "survey",
            "dealer_id,survey_id,vin,answered_at,csat,nps",
            "D1,S1,V1,2024-03-01,5,",
            "D1,S2,V1,2024-03-01,,",
            "a survey needs csat or nps",
        ),
        (
            "complaint",
            "dealer_id,complaint_id,opened_at,closed_at,category,vin",
            "D1,C1,2024-03-01,2024-03-04,billing,",
            "D1,C2,2024-03-05,2024-03-04,billing,",
            "closed_at 2024-03-04T00:00:00.000Z is before opened_at",
        ),
        (
            "parts_stock",
            "dealer_id,part,on_hand,on_order,lead_time_weeks,as_of",
            "D1,P-A,5,0,2,2024-03-01",
            "D1,P-B,-1,0,2,2024-03-01",
            "on_hand '-1' is below 0",
        ),
        (
            "parts_stock",
            "dealer_id,part,on_hand,on_order,lead_time_weeks,as_of",
            "D1,P-A,5,0,2,2024-03-01",
            "D1,P-A,7,0,2,2024-03-01T00:00:00Z",
            "duplicate of line 2",
        ),
        (
            "dealer_finance",
            "dealer_id,period,cash_in,cash_out,orders_received,orders_fulfilled",
            "D1,2024-03,100000,90000,200,190",
            "D1,2024-13,100000,90000,200,190",
            "period '2024-13' is not a month (2024-03) or an ISO week (2024-W09)",
        ),
        (
            "vehicle",
            "vin,model,lot,region,production_date",
            "V1,EV-1,L001,north,2023-05-01",
            "V2,EV-1,,north,2023-05-01",
            "lot is missing",
        ),
    ],
)
def test_bad_rows_of_every_kind(kind: str, header: str, good: str, bad: str, reason: str) -> None:
    result = checked(f"{header}\n{good}\n{bad}\n".encode(), f"{kind}.csv")
    assert result.kind.name == kind
    assert [p.location for p in result.problems] == ["line 3"]
    assert reason in str(result.problems[0])
    assert len(result.records) == 1


def test_every_problem_of_a_row_is_named_at_once() -> None:
    result = checked(orders_csv(ORDER_1, order(vin="", promised_minutes="x", fixed_first_time="?")))
    (problem,) = result.problems
    assert len(problem.reasons) == 3


def test_csv_line_numbers_count_physical_lines() -> None:
    """A quoted cell across two lines makes the next row start one line later; blank lines
    count too; the header is line 1."""
    two_lines = order(order_id="WO-2", region='"north\nwest"')  # a line break is refused too
    data = orders_csv(ORDER_1, two_lines, "", order(order_id="WO-3", vin=""))
    result = checked(data)
    assert [p.location for p in result.problems] == ["line 3", "line 6"]
    assert "control character" in str(result.problems[0])
    assert "vin is missing" in str(result.problems[1])


def test_missing_required_column_is_reported_on_the_header_line() -> None:
    header = ORDER_HEADER.replace(",vin,", ",car,")
    result = checked(f"\n{header}\n{ORDER_1}\n".encode())
    assert [str(p) for p in result.problems] == ["line 2: required column 'vin' is missing from the header"]
    assert result.records == ()
    assert result.ignored_columns == ("car",)


def test_semicolon_separated_csv_and_case_insensitive_header() -> None:
    header = ORDER_HEADER.upper().replace(",", ";")
    row = ORDER_1.replace(",", ";").replace("P-A;P-B", '"P-A;P-B"').replace("120.50", "120.5")
    result = checked(f"\ufeff{header}\n{row}\n".encode())
    assert result.ok
    assert result.records[0]["parts"] == ("P-A", "P-B")
    assert result.records[0]["amount"] == 120.5


def test_json_array_problems_name_the_index() -> None:
    good = {"dealer_id": "D1", "survey_id": "S1", "vin": "V1", "answered_at": "2024-03-01", "csat": 5}
    items = [
        good,
        {**good, "survey_id": "S2", "csat": 9},
        "not a row",
        {**good, "survey_id": "S3", "nps": True},
    ]
    result = checked(json.dumps(items).encode(), "surveys.json")
    assert [str(p) for p in result.problems] == [
        "index 1: csat '9' is not between 1 and 5",
        "index 2: text, not an object",
        "index 3: nps must be a number, not true/false",
    ]
    assert result.records[0]["csat"] == 5


def test_json_lines_problems_name_the_line() -> None:
    row = {
        "dealer_id": "D1",
        "complaint_id": "C1",
        "opened_at": "2024-03-01T10:00:00Z",
        "category": "billing",
    }
    text = "\n".join([json.dumps(row), "", "{not json", json.dumps({**row, "complaint_id": "C1"})])
    result = checked(text.encode(), "complaints.jsonl")
    assert [p.location for p in result.problems] == ["line 3", "line 4"]
    assert "not valid JSON" in str(result.problems[0])
    assert "duplicate of line 1" in str(result.problems[1])


def test_json_values_may_be_native_or_text() -> None:
    row = {
        "Dealer_ID": "D1",
        "order_id": 1001,
        "vin": "V1",
        "opened_at": "2024-03-01T08:00:00Z",
        "promised_minutes": "45",
        "first_contact_resolved": 1,
        "fixed_first_time": "yes",
        "labour_hours": 2,
        "parts": ["P-A", "P-A"],
        "amount": 99.5,
    }
    record = parse_row(KINDS["work_order"], row)
    assert record["order_id"] == "1001"
    assert record["promised_minutes"] == 45
    assert record["first_contact_resolved"] is True
    assert record["labour_hours"] == 2.0 and isinstance(record["labour_hours"], float)
    assert record["parts"] == ("P-A", "P-A")


def test_times_are_utc_to_the_millisecond() -> None:
    kind = KINDS["survey"]
    row = {"dealer_id": "D", "survey_id": "S", "vin": "V", "csat": 3}
    local = parse_row(kind, {**row, "answered_at": "2024-03-01T10:00:00.123456+02:00"})
    naive = parse_row(kind, {**row, "answered_at": "2024-03-01T08:00:00.123"})
    assert local["answered_at"] == naive["answered_at"] == datetime(2024, 3, 1, 8, 0, 0, 123000, tzinfo=UTC)


def test_point_keys_are_deterministic_and_spread_within_the_second() -> None:
    kind = KINDS["work_order"]
    base = parse_row(kind, dict(zip(ORDER_HEADER.split(","), ORDER_1.split(","), strict=True)))
    other = {**base, "order_id": "WO-2"}
    assert point_line(kind, base) == point_line(kind, dict(base))
    t1, t2 = point_time_ns(kind, base), point_time_ns(kind, other)
    second = int(datetime(2024, 3, 1, 8, tzinfo=UTC).timestamp()) * 10**9
    assert t1 == second + id_offset_ns("WO-1") and t2 == second + id_offset_ns("WO-2")
    assert t1 != t2
    assert point_line(kind, base).startswith('work_order,dealer_id=D1 order_id="WO-1",vin="VIN1"')


def test_stored_fields_come_back_as_the_record() -> None:
    kind = KINDS["work_order"]
    record = parse_row(kind, dict(zip(ORDER_HEADER.split(","), ORDER_9.split(","), strict=True)))
    fields = stored_fields(kind, record)
    assert "closed_at_ms" not in fields and fields["part_count"] == 0
    json_like = {**fields, "dealer_id": "D1", "amount": 80}  # InfluxDB's JSON gives 80.0 as 80
    assert from_stored(kind, json_like) == record


@pytest.mark.parametrize(
    "data, name, message",
    [
        (b"", "a.csv", "a.csv is empty"),
        (b"\xef\xbb\xbf \n\n", "a.csv", "a.csv is empty"),
        (ORDER_HEADER.encode() + b"\n", "a.csv", "a.csv has no rows"),
        (b"[]", "a.json", "a.json has no rows"),
        (b"dealer_id,order_id\nD1,\xff\xfe\n", "a.csv", "a.csv is not UTF-8 text (byte 0xff on line 2)"),
        (b'[{"a": 1}', "a.json", "a.json is not valid JSON: Expecting ',' delimiter at line 1 column 10"),
        (b'{"a": 1}', "a.json", None),
        (b'"x"', "a.json", None),
    ],
)
def test_unreadable_files_are_config_errors(data: bytes, name: str, message: str | None) -> None:
    if message is None:  # readable: JSON Lines, one row each, whatever it holds
        assert len(decode_table(data, name).rows) + len(decode_table(data, name).problems) == 1
        return
    with pytest.raises(ConfigError) as caught:
        decode_table(data, name)
    assert message in str(caught.value)


def test_kind_comes_from_the_columns_or_is_refused() -> None:
    assert detect_kind(["dealer_id", "survey_id"], "x").name == "survey"
    assert detect_kind(["vin", "model", "lot", "owner_name"], "x").name == "vehicle"
    with pytest.raises(ConfigError, match="cannot tell the kind"):
        detect_kind(["a", "b"], "x")
    with pytest.raises(ConfigError, match="fit several kinds"):
        detect_kind(["order_id", "survey_id"], "x")


@pytest.mark.parametrize(
    "files, argv_tail, message",
    [
        ({}, ["{dir}/missing.csv"], "missing.csv: no such file"),
        (
            {"latin.csv": "dealer_id,order_id\nD1,Müller\n".encode("latin-1")},
            ["{dir}/latin.csv"],
            "not UTF-8",
        ),
        ({"empty.csv": b""}, ["{dir}/empty.csv"], "empty.csv is empty"),
        ({"odd.csv": b"a,b\n1,2\n"}, ["{dir}/odd.csv"], "cannot tell the kind"),
        ({"odd.csv": b"a,b\n1,2\n"}, ["{dir}/odd.csv", "--kind", "invoices"], "unknown kind 'invoices'"),
        ({"sub/x": b""}, ["{dir}/sub"], "is a directory"),
    ],
)
def test_cli_file_errors_are_one_line_exit_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    files: dict[str, bytes],
    argv_tail: list[str],
    message: str,
) -> None:
    for name, data in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    argv = [arg.format(dir=tmp_path) for arg in argv_tail]
    code = main(["cloud", "import-dms", "--home", str(tmp_path / "nostack"), *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert err.startswith("prognos: error: ") and err.count("\n") == 1
    assert "Traceback" not in err


def test_cli_help_names_every_kind(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["cloud", "import-dms", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert all(name in text for name in KINDS)


def test_cli_check_lists_bad_rows_with_a_limit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = [order(order_id=f"WO-{i}", vin="") for i in range(10, 40)]
    path = tmp_path / "orders.csv"
    path.write_bytes(orders_csv(ORDER_1, *bad))
    assert main(["cloud", "import-dms", "--check", "--max-errors", "3", str(path)]) == 2
    err = capsys.readouterr().err
    assert "30 bad rows in 1 of 1 file; nothing was imported" in err
    assert "  line 3: vin is missing" in err and "  line 5: vin is missing" in err
    assert "line 6" not in err
    assert "... and 27 more" in err


# --- fuzzing: arbitrary input raises only the documented errors ----------------------------------

CELLS = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        ["", "1", "-1", "0.5", "true", "2024-03-01", "2024-03-01T10:00:00Z", "2024-W09", "1e400"]
    ),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.lists(st.one_of(st.text(max_size=8), st.integers()), max_size=4),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


ZONES = st.sampled_from([None, UTC, timezone(timedelta(hours=2)), timezone(-timedelta(hours=5, minutes=30))])
TEXT = st.text(st.characters(codec="utf-8"), min_size=1, max_size=20)
VALID: dict[str, Callable[[Column], st.SearchStrategy[object]]] = {
    "text": lambda c: TEXT | st.integers(0, 10**6),
    "int": lambda c: st.integers(int(c.minimum or 0), int(min(c.maximum or 10**6, 10**6))).flatmap(
        lambda v: st.sampled_from([v, str(v), float(v), f" {v} "])
    ),
    "float": lambda c: st.floats(c.minimum or 0, min(c.maximum or 1e6, 1e6)).flatmap(
        lambda v: st.sampled_from([v, repr(v)])
    ),
    "bool": lambda c: st.sampled_from([True, False, 0, 1, "true", "No", "y", "F", " 1 "]),
    "time": lambda c: st.tuples(st.datetimes(datetime(1970, 1, 2), datetime(2199, 12, 30)), ZONES).map(
        lambda moment_zone: moment_zone[0].replace(tzinfo=moment_zone[1]).isoformat()
    ),
    "parts": lambda c: st.lists(st.text("ABC-19 ", min_size=1, max_size=6), max_size=4).flatmap(
        lambda v: st.sampled_from([v, ";".join(v)])
    ),
    "period": lambda c: st.sampled_from(["2024-03", "1999-12", "2020-W53", "2024-w01", "2024-W01"]),
}


@st.composite
def rows(draw: st.DrawFn) -> tuple[str, dict[str, object]]:
    """Rows of a kind: half of them wild, half of them mostly well-formed."""
    kind = KINDS[draw(st.sampled_from(sorted(KINDS)))]
    if draw(st.booleans()):
        names = draw(st.lists(st.sampled_from(kind.names) | st.text(max_size=10), max_size=18))
        return kind.name, {name: draw(CELLS) for name in names}
    row: dict[str, object] = {}
    for column in kind.columns:
        choice = draw(st.integers(0, 19))
        if choice == 0:
            continue  # left out
        row[column.name.upper() if choice == 1 else column.name] = draw(
            CELLS if choice == 2 else VALID[column.type](column)
        )
    return kind.name, row


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows())
def test_row_parser_raises_only_row_errors(case: tuple[str, dict[str, object]]) -> None:
    kind_name, row = case
    kind = KINDS[kind_name]
    try:
        record = parse_row(kind, row)
    except RowError as exc:
        assert exc.reasons and all(isinstance(r, str) and r for r in exc.reasons)
        return
    for column in kind.columns:
        assert not (column.required and record[column.name] is None)
    assert from_stored(kind, {**stored_fields(kind, record), **_tags(kind, record)}) == record
    point_line(kind, record)


def _tags(kind: Any, record: Record) -> dict[str, object]:
    return {name: record[name] for name in kind.tags if record[name] is not None}


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode)),
    st.sampled_from(["x.csv", "x.json", "x.jsonl", "x"]),
    st.sampled_from(sorted(KINDS)),
)
def test_file_decoder_raises_only_config_errors(data: bytes, name: str, kind: str) -> None:
    try:
        table = decode_table(data, name)
    except ConfigError:
        return
    assert isinstance(table, Table)
    result = validate(table, KINDS[kind])
    assert all(problem.reasons for problem in result.problems)
    assert len(result.records) <= len(table.rows)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(alphabet=',;"\n\r\t ab1-:TZ', max_size=20), min_size=1, max_size=6))
def test_csv_shaped_text_raises_only_config_errors(lines: list[str]) -> None:
    data = (ORDER_HEADER + "\n" + "\n".join(lines)).encode()
    try:
        result = checked(data)
    except ConfigError:
        return
    assert all(p.location.startswith("line ") for p in result.problems)


def test_the_documentation_lists_every_column() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "dms.md").read_text(encoding="utf-8")
    for kind in KINDS.values():
        section = text.split(f"### `{kind.name}`", 1)[1].split("\n### ", 1)[0]
        for column in kind.columns:
            assert f"| `{column.name}` |" in section, (kind.name, column.name)
            row = section.split(f"| `{column.name}` |", 1)[1].split("\n", 1)[0]
            assert ("| yes |" in row) == column.required, (kind.name, column.name)
        assert f"| `{kind.name}` |" in text  # in the signature table and the schema table


def test_column_type_of_every_kind_is_known() -> None:
    for kind in KINDS.values():
        assert set(kind.unique) <= set(kind.names)
        assert set(kind.signature) <= set(kind.names)
        assert all(isinstance(c, Column) for c in kind.columns)
        assert kind.tags, f"{kind.name} has no tag"
