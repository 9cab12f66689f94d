"""Dealer-system (DMS) exports: the kinds of file, row parsing and validation, and their points.

Pure: bytes in, records and line protocol out. docs/dms.md is the reference for the file
formats and the InfluxDB schema; this module is their one definition.

A file decodes into a `Table` of raw rows, each with its place in the file ("line 7" in CSV,
counting the header as line 1; "index 3" in a JSON array; "line 7" in JSON Lines). `validate`
parses every row against its `Kind` and collects every problem: a file is imported only when
it has none. A parsed row is a `Record`, a dict of column name to value (text, int, float,
bool, datetime in UTC, a tuple of part numbers, or None when an optional column is empty).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from prognos.cloud.dealers.kinds import (
    EARLIEST,
    EPOCH_NS,
    LATEST,
    MAX_NUMBER_TEXT,
    MAX_PARTS,
    MAX_TEXT,
    PART_COUNT,
    PARTS_SEPARATOR,
    Checked,
    Column,
    ColumnType,
    Kind,
    Problem,
    RawRow,
    Record,
    Table,
    Value,
    iso_text,
    shown,
)
from prognos.cloud.storage.encode import encode
from prognos.errors import ConfigError, PrognosError

if TYPE_CHECKING:
    import pandas as pd

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")  # from a JSON escape such as \ud800: not a character
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_INTEGER = re.compile(r"[+-]?[0-9]+")
_MONTH = re.compile(r"([0-9]{4})-([0-9]{2})")
_WEEK = re.compile(r"([0-9]{4})-?[Ww]([0-9]{2})")
_TRUE = frozenset({"true", "yes", "y", "t", "1"})
_FALSE = frozenset({"false", "no", "n", "f", "0"})
_SUFFIX_FORMATS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl"}


class RowError(PrognosError, ValueError):
    """A row that does not fit its kind; `reasons` says every way it does not."""

    def __init__(self, reasons: Sequence[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = tuple(reasons)


class _Bad(ValueError):
    """One value that does not fit its column."""


# --- values -----------------------------------------------------------------------------------


def _json_type(raw: object) -> str:
    if raw is None:
        return "null"
    if isinstance(raw, bool):
        return "true/false"
    if isinstance(raw, int | float):
        return "a number"
    if isinstance(raw, list | tuple):
        return "a list"
    if isinstance(raw, dict):
        return "an object"
    if isinstance(raw, str):
        return "text"
    return type(raw).__name__


def _text(column: Column, raw: object) -> str:
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise _Bad(f"{column.name} must be text, not {_json_type(raw)}")
    text = raw.strip() if isinstance(raw, str) else _int_text(raw, column)
    if len(text) > MAX_TEXT:
        raise _Bad(f"{column.name} is longer than {MAX_TEXT} characters")
    if _CONTROL.search(text):
        raise _Bad(f"{column.name} {shown(text)} holds a control character (a line break, tab, ...)")
    if _SURROGATE.search(text):
        raise _Bad(f"{column.name} {shown(text)} holds half of a UTF-16 surrogate pair, which is not text")
    if column.tag and "\\" in text:
        raise _Bad(f"{column.name} {shown(text)} holds a backslash, which InfluxDB tags cannot keep")
    return text


def _int_text(raw: int, column: Column) -> str:
    if abs(raw) >= 10**MAX_TEXT:
        raise _Bad(f"{column.name} is longer than {MAX_TEXT} characters")
    return str(raw)


def _number(column: Column, raw: object) -> int | float:
    if isinstance(raw, bool):
        raise _Bad(f"{column.name} must be a number, not true/false")
    if isinstance(raw, int):
        if abs(raw) >= 10**MAX_NUMBER_TEXT:
            raise _Bad(f"{column.name} is out of range")
        return raw
    if isinstance(raw, float):
        value = raw
    elif isinstance(raw, str):
        text = raw.strip()
        if len(text) > MAX_NUMBER_TEXT or not _NUMBER.fullmatch(text):
            raise _Bad(f"{column.name} {shown(raw)} is not a number")
        if _INTEGER.fullmatch(text):
            return int(text)
        value = float(text)
    else:
        raise _Bad(f"{column.name} must be a number, not {_json_type(raw)}")
    if not math.isfinite(value):
        raise _Bad(f"{column.name} {shown(raw)} is not a finite number")
    return value


def _in_range(column: Column, value: float, raw: object) -> None:
    low, high = column.minimum, column.maximum
    if (low is not None and value < low) or (high is not None and value > high):
        if low is not None and high is not None and high < 1e6:
            raise _Bad(f"{column.name} {shown(raw)} is not between {low:g} and {high:g}")
        if low is not None and value < low:
            raise _Bad(f"{column.name} {shown(raw)} is below {low:g}")
        raise _Bad(f"{column.name} {shown(raw)} is above {high:,.0f}")


def _int(column: Column, raw: object) -> int:
    value = _number(column, raw)
    if isinstance(value, float):
        if not value.is_integer():
            raise _Bad(f"{column.name} {shown(raw)} is not a whole number")
        value = int(value)
    _in_range(column, value, raw)
    return value


def _float(column: Column, raw: object) -> float:
    value = float(_number(column, raw))
    _in_range(column, value, raw)
    return value


def _bool(column: Column, raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int) and raw in (0, 1):
        return bool(raw)
    if isinstance(raw, str):
        word = raw.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise _Bad(f"{column.name} {shown(raw)} is not true or false (true/false, yes/no, 1/0)")


def _time(column: Column, raw: object) -> datetime:
    if not isinstance(raw, str):
        raise _Bad(f"{column.name} must be an ISO 8601 date or time, not {_json_type(raw)}")
    try:
        moment = datetime.fromisoformat(raw.strip())
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        moment = moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise _Bad(
            f"{column.name} {shown(raw)} is not an ISO 8601 date or time (like 2024-03-01T08:30:00Z)"
        ) from None
    if not EARLIEST <= moment < LATEST:
        raise _Bad(f"{column.name} {shown(raw)} is not between 1970 and 2200")
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _parts(column: Column, raw: object) -> tuple[str, ...]:
    if isinstance(raw, str):
        items: list[object] = [item for item in raw.split(PARTS_SEPARATOR) if item.strip()]
    elif isinstance(raw, list | tuple):
        items = list(raw)
    else:
        raise _Bad(f"{column.name} must be a list or ';'-separated part numbers, not {_json_type(raw)}")
    if len(items) > MAX_PARTS:
        raise _Bad(f"{column.name} lists more than {MAX_PARTS} parts")
    parts = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, str | int):
            raise _Bad(f"{column.name} holds {_json_type(item)}, not a part number")
        text = _text(column, item)
        if not text or PARTS_SEPARATOR in text:
            raise _Bad(f"{column.name} holds an empty part number or one with ';'")
        parts.append(text)
    return tuple(parts)


def _period(column: Column, raw: object) -> str:
    if isinstance(raw, str):
        text = raw.strip()
        label = ""
        if match := _MONTH.fullmatch(text):
            label = f"{match[1]}-{match[2]}"
        elif match := _WEEK.fullmatch(text):
            label = f"{match[1]}-W{match[2]}"
        try:
            if label and period_bounds(label)[0] >= EARLIEST and period_bounds(label)[1] <= LATEST:
                return label
        except ValueError:
            pass
    raise _Bad(f"{column.name} {shown(raw)} is not a month (2024-03) or an ISO week (2024-W09)")


_PARSERS: dict[ColumnType, Callable[[Column, object], Value]] = {
    "text": _text,
    "int": _int,
    "float": _float,
    "bool": _bool,
    "time": _time,
    "parts": _parts,
    "period": _period,
}


def period_bounds(label: str) -> tuple[datetime, datetime]:
    """Start (inclusive) and end (exclusive) of a period label in its normal form."""
    if "W" in label:
        year_text, week_text = label.split("-W")
        day = date.fromisocalendar(int(year_text), int(week_text), 1)
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        return start, start + timedelta(days=7)
    year, month = (int(part) for part in label.split("-"))
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def parse_value(column: Column, raw: object) -> Value:
    """One cell as its column's type; None when empty. Raises RowError with the reason."""
    try:
        return _parse(column, raw)
    except _Bad as exc:
        raise RowError([str(exc)]) from None


def _parse(column: Column, raw: object) -> Value:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return () if column.type == "parts" else None
    return _PARSERS[column.type](column, raw)


def parse_row(kind: Kind, row: Mapping[str, object]) -> Record:
    """A row (column name -> raw value: CSV text or a JSON value) as a record of `kind`.

    Column names are matched without case and surrounding spaces; unknown columns are ignored.
    Raises RowError naming every problem of the row, and nothing else.
    """
    values, reasons = _normalised(row)
    return _record(kind, values, reasons)


def _normalised(row: Mapping[str, object]) -> tuple[dict[str, object], list[str]]:
    reasons: list[str] = []
    values: dict[str, object] = {}
    for key, raw in row.items():
        name = str(key).strip().lower()
        if name in values:
            reasons.append(f"column {name!r} appears twice")
        values[name] = raw
    return values, reasons


def _record(kind: Kind, values: Mapping[str, object], reasons: list[str]) -> Record:
    """parse_row for a row whose column names are already normalised."""
    record: Record = {}
    for column in kind.columns:
        try:
            value = _parse(column, values.get(column.name))
        except _Bad as exc:
            reasons.append(str(exc))
            continue
        if value is None and column.required:
            reasons.append(f"{column.name} is missing")
        record[column.name] = value
    if not reasons:
        reasons.extend(kind.checks(record))
    if reasons:
        raise RowError(reasons)
    return record


# --- files ------------------------------------------------------------------------------------


def decode_table(data: bytes, name: str) -> Table:
    """The rows of a CSV, JSON-array or JSON Lines file; ConfigError if it cannot be read at all.

    The format comes from the file name's suffix (.csv, .tsv, .json, .jsonl, .ndjson), else from
    the first character ('[' or '{' is JSON). Text must be UTF-8 (a byte-order mark is allowed).
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"{name} is not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}); export it as UTF-8"
        ) from None
    stripped = text.lstrip()
    if not stripped:
        raise ConfigError(f"{name} is empty")
    suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    fmt = _SUFFIX_FORMATS.get(suffix) or ("json" if stripped[0] in "[{" else "csv")
    if fmt == "json" and stripped[0] != "[":
        fmt = "jsonl"
    if fmt == "csv":
        table = _decode_csv(text, name)
    elif fmt == "json":
        table = _decode_json_array(text, name)
    else:
        table = _decode_json_lines(text, name)
    if not table.rows and not table.problems:
        raise ConfigError(f"{name} has no rows")
    return table


def _delimiter(header: str) -> str:
    counts = {delimiter: header.count(delimiter) for delimiter in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > 0 else ","


def _decode_csv(text: str, name: str) -> Table:
    # The header ends at the first line break of any kind: a file with \r alone between its lines
    # would otherwise choose its separator from every cell of every row.
    first_line = re.split(r"[\r\n]", text.lstrip("\r\n"), maxsplit=1)[0]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(first_line), strict=True)
    rows: list[RawRow] = []
    problems: list[Problem] = []
    header: list[str] | None = None
    header_line = 1
    line = count = 0
    try:
        for cells in reader:
            start, line = line + 1, reader.line_num
            if not any(cell.strip() for cell in cells):
                continue  # a blank line, or a row of empty cells as spreadsheets leave them
            if header is None:
                header, header_line = [cell.strip().lower() for cell in cells], start
                problems.extend(_header_problems(header, start))
                continue
            count += 1
            if len(cells) != len(header):
                problems.append(
                    Problem(f"line {start}", start, (f"{len(cells)} cells, the header has {len(header)}",))
                )
                continue
            rows.append(RawRow(f"line {start}", start, dict(zip(header, cells, strict=True))))
    except csv.Error as exc:
        raise ConfigError(f"{name} line {reader.line_num}: not valid CSV ({exc})") from None
    if header is None:
        raise ConfigError(f"{name} is empty")
    if problems and problems[0].position == header_line:
        rows = []  # a broken header makes every row meaningless; report the header alone
    return Table(name, "csv", tuple(header), tuple(rows), tuple(problems), count, header_line)


def _header_problems(header: list[str], line: int) -> list[Problem]:
    reasons = []
    if any(not cell for cell in header):
        reasons.append("the header has an empty column name")
    duplicates = sorted({cell for cell in header if cell and header.count(cell) > 1})
    reasons.extend(f"column {cell!r} appears twice in the header" for cell in duplicates)
    return [Problem(f"line {line}", line, tuple(reasons))] if reasons else []


def _load_json(text: str) -> object:
    """json.loads, with Python's own limits (nesting deeper than the recursion limit, integers
    of more than 4300 digits) told in words of the file rather than in Python's."""
    try:
        return json.loads(text, parse_int=_json_int)
    except RecursionError:
        raise ValueError("arrays or objects nested too deeply") from None


def _json_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"a number of {len(text.lstrip('-'))} digits is too long") from None


def _decode_json_array(text: str, name: str) -> Table:
    try:
        items = _load_json(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{name} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except (ValueError, RecursionError) as exc:
        raise ConfigError(f"{name} is not valid JSON: {exc}") from None
    if not isinstance(items, list):
        raise ConfigError(f"{name} holds JSON {_json_type(items)}, not an array of objects")
    rows, problems = [], []
    for index, item in enumerate(items):
        if isinstance(item, dict):
            rows.append(RawRow(f"index {index}", index, item))
        else:
            problems.append(Problem(f"index {index}", index, (f"{_json_type(item)}, not an object",)))
    return Table(name, "json", _keys(rows), tuple(rows), tuple(problems), len(items))


def _decode_json_lines(text: str, name: str) -> Table:
    rows, problems = [], []
    # Lines end at \n (a \r before it is white space to JSON); str.splitlines() would also
    # cut at U+2028, U+0085 and the like, which JSON strings may hold.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        location = f"line {number}"
        try:
            item = _load_json(line)
        except json.JSONDecodeError as exc:
            problems.append(Problem(location, number, (f"not valid JSON: {exc.msg} at column {exc.colno}",)))
            continue
        except (ValueError, RecursionError) as exc:
            problems.append(Problem(location, number, (f"not valid JSON: {exc}",)))
            continue
        if isinstance(item, dict):
            rows.append(RawRow(location, number, item))
        else:
            problems.append(Problem(location, number, (f"{_json_type(item)}, not an object",)))
    return Table(name, "jsonl", _keys(rows), tuple(rows), tuple(problems), len(rows) + len(problems))


def _keys(rows: Sequence[RawRow]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for row in rows:
        for key in row.values:
            # a JSON key may hold half a surrogate pair, which cannot be printed: shown as \ud800
            name = str(key).strip().lower().encode("utf-8", "backslashreplace").decode("utf-8")
            seen.setdefault(name, None)
    return tuple(seen)


def validate(table: Table, kind: Kind, progress: Callable[[int], object] | None = None) -> Checked:
    """Parse every row of `table` as `kind`; collect every problem, duplicates included.

    `progress(n)` is called as rows are done, for a progress bar.
    """
    problems = list(table.problems)
    ignored = tuple(name for name in table.columns if name not in kind.names)
    if table.format == "csv":
        missing = [c.name for c in kind.columns if c.required and c.name not in table.columns]
        if missing:
            reasons = tuple(f"required column {name!r} is missing from the header" for name in missing)
            problems.insert(0, Problem(f"line {table.header_line}", table.header_line, reasons))
            return Checked(table.name, kind, table.row_count, (), tuple(problems), ignored)
    records: list[Record] = []
    first_seen: dict[tuple[Value, ...], str] = {}
    point_seen: dict[tuple[tuple[str, ...], int], str] = {}
    step = 0
    for row in table.rows:
        step += 1
        if progress is not None and step % 1000 == 0:
            progress(1000)
        row_reasons: list[str]
        values, row_reasons = (row.values, []) if table.format == "csv" else _normalised(row.values)
        key = _unique_key(kind, values)
        duplicate_of = first_seen.get(key) if key is not None else None
        if key is not None and duplicate_of is None:
            first_seen[key] = row.location
        try:
            record = _record(kind, values, row_reasons)
        except RowError as exc:
            row_reasons, record = list(exc.reasons), {}
        if key is not None and duplicate_of is not None:
            what = ", ".join(
                f"{name} {_display(value)}" for name, value in zip(kind.unique, key, strict=True)
            )
            row_reasons.append(f"duplicate of {duplicate_of} ({what})")
        if not row_reasons:
            point = (tuple(str(record.get(tag) or "") for tag in kind.tags), point_time_ns(kind, record))
            if point in point_seen:
                row_reasons.append(
                    f"would be stored at the same time and tags as {point_seen[point]}; change an id"
                )
            point_seen[point] = row.location
        if row_reasons:
            problems.append(Problem(row.location, row.position, tuple(row_reasons)))
        else:
            records.append(record)
    if progress is not None and step % 1000:
        progress(step % 1000)
    problems.sort(key=lambda problem: problem.position)
    return Checked(table.name, kind, table.row_count, tuple(records), tuple(problems), ignored)


def _unique_key(kind: Kind, values: Mapping[str, object]) -> tuple[Value, ...] | None:
    """The values that must be unique within a file, or None if one of them does not parse or
    a required one is missing (the row is bad anyway; it cannot be a duplicate)."""
    key = []
    for name in kind.unique:
        column = kind.column(name)
        try:
            value = _parse(column, values.get(name))
        except _Bad:
            return None
        if value is None and column.required:
            return None
        key.append(value)
    return tuple(key)


def _display(value: Value) -> str:
    if isinstance(value, datetime):
        return iso_text(value)
    return repr(value)


# --- points -----------------------------------------------------------------------------------


def epoch_ms(moment: datetime) -> int:
    return (moment - EARLIEST) // timedelta(milliseconds=1)


def from_epoch_ms(ms: int) -> datetime:
    return EARLIEST + timedelta(milliseconds=ms)


def id_offset_ns(identifier: str) -> int:
    """A stable offset below one second for an id, so two rows in the same second do not share
    a timestamp (blake2b, the same in every process and release)."""
    digest = hashlib.blake2b(identifier.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 1_000_000_000


def point_time_ns(kind: Kind, record: Record) -> int:
    """The point's timestamp: part of its key, so the same row always lands on the same point."""
    if kind.time_column is None:
        return EPOCH_NS
    value = record[kind.time_column]
    if isinstance(value, str):
        value = period_bounds(value)[0]
    if not isinstance(value, datetime):
        raise TypeError(f"{kind.name}.{kind.time_column} is not a time")
    ms = epoch_ms(value)
    if kind.offset_column is None:
        return ms * 1_000_000
    return (ms // 1000) * 1_000_000_000 + id_offset_ns(str(record[kind.offset_column]))


def stored_fields(kind: Kind, record: Record) -> dict[str, str | int | float | bool]:
    """The InfluxDB fields of a record, in column order; empty optional columns are left out."""
    fields: dict[str, str | int | float | bool] = {}
    for column in kind.columns:
        value = record.get(column.name)
        if column.tag:
            continue
        if column.type == "parts":
            parts = value if isinstance(value, tuple) else ()
            if parts:
                fields[column.name] = PARTS_SEPARATOR.join(parts)
            fields[PART_COUNT] = len(parts)
        elif value is None:
            continue
        elif isinstance(value, datetime):
            fields[column.field_key] = epoch_ms(value)
        elif column.type == "float" and isinstance(value, int | float):
            fields[column.name] = float(value)
        elif isinstance(value, str | int | float | bool):
            fields[column.name] = value
    return fields


def point_line(kind: Kind, record: Record) -> str:
    """The record as one line of line protocol (kind.measurement), timestamp in nanoseconds."""
    tags = {name: None if record.get(name) is None else str(record[name]) for name in kind.tags}
    return encode(kind.measurement, tags, stored_fields(kind, record), point_time_ns(kind, record))


def from_stored(kind: Kind, row: Mapping[str, Any]) -> Record:
    """A record back from an InfluxDB row (tags and fields as columns): the inverse of
    `point_line`. JSON gives whole floats back as ints; they are made floats again here."""
    record: Record = {}
    for column in kind.columns:
        value = row.get(column.field_key)
        if value is None or value == "":
            record[column.name] = () if column.type == "parts" else None
        elif column.type == "time":
            record[column.name] = from_epoch_ms(int(value))
        elif column.type == "parts":
            record[column.name] = tuple(part for part in str(value).split(PARTS_SEPARATOR) if part)
        elif column.type == "int":
            record[column.name] = int(value)
        elif column.type == "float":
            record[column.name] = float(value)
        elif column.type == "bool":
            record[column.name] = bool(value)
        else:
            record[column.name] = str(value)
    return record


def records_frame(kind: Kind, records: Iterable[Record]) -> pd.DataFrame:
    """Records as a DataFrame: one column per column of the kind, times as UTC timestamps;
    `parts` holds tuples of part numbers."""
    import pandas as pd  # here: the schema imports this module, and ingest the schema

    frame = pd.DataFrame(list(records), columns=list(kind.names))
    for column in kind.columns:
        if column.type == "time":
            frame[column.name] = pd.to_datetime(frame[column.name], utc=True)
        elif column.type == "float":
            frame[column.name] = frame[column.name].astype("float64")
    return frame
