"""The kinds of dealer-system data (work orders, complaints, surveys, parts stock, dealer
finance, vehicles, service centers): their columns with types, units and ranges, and the
checks across columns of a row (docs/dms.md)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Literal

from prognos.cloud.storage.measurement import FieldType, Measurement, Precision
from prognos.errors import ConfigError

if TYPE_CHECKING:
    pass

ColumnType = Literal["text", "int", "float", "bool", "time", "parts", "period"]
# How each column type is stored; "parts" is two fields (Kind.measurement).
_FIELD_TYPES: dict[ColumnType, FieldType] = {
    "text": FieldType.STR,
    "int": FieldType.INT,
    "float": FieldType.FLOAT,
    "bool": FieldType.BOOL,
    "time": FieldType.INT,  # epoch milliseconds, in the field X_ms
    "period": FieldType.STR,
}
Value = str | int | float | bool | datetime | tuple[str, ...] | None
Record = dict[str, Value]

MAX_TEXT = 200  # characters in one text value
MAX_PARTS = 200  # part numbers on one work order
MAX_NUMBER_TEXT = 40  # characters in one number
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
PARTS_SEPARATOR = ";"
TIME_SUFFIX = "_ms"  # a time column X is stored as the integer field X_ms (epoch milliseconds)
PART_COUNT = "part_count"  # stored beside `parts`: how many part units the order used
EPOCH_NS = 0  # the time of points that describe a thing rather than an event (the registry)
PRECISION: Precision = "ns"  # of every point's timestamp (point_time_ns)


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None
    tag: bool = False  # stored as an InfluxDB tag (part of the point's key), else a field
    meaning: str = ""

    @property
    def field_key(self) -> str:
        """The InfluxDB key this column is stored under."""
        return self.name + TIME_SUFFIX if self.type == "time" else self.name


def _no_checks(record: Record) -> list[str]:
    return []


@dataclass(frozen=True)
class Kind:
    """One kind of DMS export; its name is also its InfluxDB measurement."""

    name: str
    columns: tuple[Column, ...]
    unique: tuple[str, ...]  # no two rows of a file share these values
    signature: tuple[str, ...]  # a header holding all of these is this kind
    time_column: str | None  # the point's time; None: the epoch (one point per key)
    offset_column: str | None  # an id that spreads points within the second of time_column
    checks: Callable[[Record], list[str]] = _no_checks
    meaning: str = ""

    def column(self, name: str) -> Column:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)

    @property
    def tags(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns if column.tag)

    @cached_property
    def measurement(self) -> Measurement:
        """How the kind is stored: tagged columns as tags, the others as fields (a time column X
        as the integer field X_ms, `parts` with `part_count` beside it), stamped in nanoseconds
        (point_time_ns). prognos.cloud.storage.schema lists it with the other measurements."""
        fields: dict[str, FieldType] = {}
        for column in self.columns:
            if column.tag:
                continue
            if column.type == "parts":
                fields[column.name] = FieldType.STR
                fields[PART_COUNT] = FieldType.INT
            else:
                fields[column.field_key] = _FIELD_TYPES[column.type]
        return Measurement(
            name=self.name, meaning=self.meaning, tags=self.tags, fields=fields, precision=PRECISION
        )


@dataclass(frozen=True)
class RawRow:
    location: str  # "line 7", "index 3"
    position: int  # the line number or index, for ordering
    values: Mapping[str, object]


@dataclass(frozen=True)
class Problem:
    location: str
    position: int
    reasons: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.location}: {'; '.join(self.reasons)}"


@dataclass(frozen=True)
class Table:
    name: str
    format: Literal["csv", "json", "jsonl"]
    columns: tuple[str, ...]  # CSV: the header; JSON: every key seen, in first-seen order
    rows: tuple[RawRow, ...]
    problems: tuple[Problem, ...]  # rows that are not rows (wrong cell count, not an object)
    row_count: int  # every row of the file, the ones in `problems` included
    header_line: int = 1  # CSV: the line of the header


@dataclass(frozen=True)
class Checked:
    """A validated file: its records, or the problems that keep it out."""

    name: str
    kind: Kind
    rows: int
    records: tuple[Record, ...]
    problems: tuple[Problem, ...]
    ignored_columns: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


# --- kinds ------------------------------------------------------------------------------------


def _closed_after_opened(record: Record) -> list[str]:
    opened, closed = record.get("opened_at"), record.get("closed_at")
    if isinstance(opened, datetime) and isinstance(closed, datetime) and closed < opened:
        return [f"closed_at {iso_text(closed)} is before opened_at {iso_text(opened)}"]
    return []


# A diagnostic tag of a work order (a symptom, a root cause, a repair step): a lower-case word.
TAG = re.compile(r"[a-z][a-z0-9_]{0,39}")
TAG_COLUMNS = ("symptoms", "root_cause", "repair")  # root_cause holds one tag, the others a list


def tag_list(text: object) -> tuple[str, ...]:
    """The tags of a `symptoms` or `repair` value (; between them), in order, without repeats."""
    if not isinstance(text, str):
        return ()
    return tuple(dict.fromkeys(tag.strip() for tag in text.split(PARTS_SEPARATOR) if tag.strip()))


def _tag_checks(record: Record) -> list[str]:
    reasons = []
    for name in TAG_COLUMNS:
        value = record.get(name)
        if not isinstance(value, str):
            continue
        tags = [value.strip()] if name == "root_cause" else value.split(PARTS_SEPARATOR)
        bad = [tag.strip() for tag in tags if not TAG.fullmatch(tag.strip())]
        if bad:
            reasons.append(
                f"{name} {shown(value)}: each tag is a lower-case word of letters, digits and _ "
                f"(at most 40 characters; {', '.join(map(repr, bad))} is not)"
            )
    return reasons


def _work_order_checks(record: Record) -> list[str]:
    reasons = _closed_after_opened(record)
    if record.get("repeat_of_order_id") is not None and record.get("repeat_of_order_id") == record.get(
        "order_id"
    ):
        reasons.append("repeat_of_order_id names the order itself")
    reasons.extend(_tag_checks(record))
    return reasons


def _survey_checks(record: Record) -> list[str]:
    if record.get("csat") is None and record.get("nps") is None:
        return ["a survey needs csat or nps (or both)"]
    return []


def _dealer(meaning: str = "the dealer's id in its DMS") -> Column:
    return Column("dealer_id", "text", required=True, tag=True, meaning=meaning)


def _supplier(part: str) -> Column:
    return Column(f"{part}_supplier", "text", meaning=f"supplier of the {part}")


WORK_ORDER = Kind(
    name="work_order",
    meaning="one repair or service visit",
    columns=(
        _dealer(),
        Column("order_id", "text", required=True, meaning="the order's number, unique within the dealer"),
        Column("vin", "text", required=True, meaning="the vehicle"),
        Column("opened_at", "time", required=True, meaning="when the customer handed the vehicle in"),
        Column("closed_at", "time", meaning="when the order was closed; empty while it is open"),
        Column(
            "promised_minutes",
            "int",
            required=True,
            minimum=1,
            maximum=525_600,
            meaning="time promised to the customer (the SLA), in minutes",
        ),
        Column("first_contact_resolved", "bool", required=True, meaning="resolved at the first contact"),
        Column("fixed_first_time", "bool", required=True, meaning="no return visit for the same fault"),
        Column("repeat_of_order_id", "text", meaning="the earlier order this visit repeats"),
        Column("labour_hours", "float", required=True, minimum=0, maximum=10_000, meaning="labour booked"),
        Column("parts", "parts", meaning="part numbers used, one entry per unit"),
        Column("amount", "float", required=True, minimum=0, maximum=1e9, meaning="invoiced amount"),
        Column("currency", "text", meaning="ISO 4217 code of amount, e.g. EUR"),
        Column("service_center", "text", meaning="the workshop that did the work"),
        Column("region", "text", meaning="the dealer's region"),
        Column(
            "fault_code",
            "text",
            meaning="the fault code the vehicle reported, e.g. brakes.pad_wear or a DTC like P0A7F; "
            "empty for a visit without one",
        ),
        Column(
            "symptoms",
            "text",
            meaning="what the customer and technician observed, tags with ; between them, "
            "e.g. squeal;pulls_to_side",
        ),
        Column("mileage_km", "int", minimum=0, maximum=5_000_000, meaning="the odometer when handed in, km"),
        Column("root_cause", "text", meaning="the root cause the technician found, one tag"),
        Column("repair", "text", meaning="the repair steps done, tags with ; between them"),
    ),
    unique=("dealer_id", "order_id"),
    signature=("order_id",),
    time_column="opened_at",
    offset_column="order_id",
    checks=_work_order_checks,
)

COMPLAINT = Kind(
    name="complaint",
    meaning="one customer complaint",
    columns=(
        _dealer(),
        Column("complaint_id", "text", required=True, meaning="the complaint's number"),
        Column("opened_at", "time", required=True, meaning="when the complaint was raised"),
        Column("closed_at", "time", meaning="when it was settled; empty while open"),
        Column("category", "text", required=True, meaning="e.g. waiting time, quality, billing"),
        Column("vin", "text", meaning="the vehicle, if the complaint is about one"),
    ),
    unique=("dealer_id", "complaint_id"),
    signature=("complaint_id",),
    time_column="opened_at",
    offset_column="complaint_id",
    checks=_closed_after_opened,
)

SURVEY = Kind(
    name="survey",
    meaning="one answered customer survey",
    columns=(
        _dealer(),
        Column("survey_id", "text", required=True, meaning="the survey answer's id"),
        Column("vin", "text", required=True, meaning="the vehicle the visit was for"),
        Column("answered_at", "time", required=True, meaning="when the customer answered"),
        Column("csat", "int", minimum=1, maximum=5, meaning="satisfaction, 1 (very poor) to 5 (excellent)"),
        Column("nps", "int", minimum=0, maximum=10, meaning="likelihood to recommend, 0 to 10"),
    ),
    unique=("dealer_id", "survey_id"),
    signature=("survey_id",),
    time_column="answered_at",
    offset_column="survey_id",
    checks=_survey_checks,
)

PARTS_STOCK = Kind(
    name="parts_stock",
    meaning="one part's stock at one service center at one moment",
    columns=(
        _dealer(),
        Column(
            "service_center",
            "text",
            tag=True,
            meaning="the store holding the stock; empty when the dealer has one",
        ),
        Column("part", "text", required=True, tag=True, meaning="part number"),
        Column("on_hand", "int", required=True, minimum=0, maximum=10**9, meaning="units in stock"),
        Column("on_order", "int", minimum=0, maximum=10**9, meaning="units ordered, not yet received"),
        Column("lead_time_weeks", "float", minimum=0, maximum=520, meaning="supplier lead time"),
        Column("as_of", "time", required=True, meaning="when the stock was counted"),
    ),
    unique=("dealer_id", "service_center", "part", "as_of"),
    signature=("part", "on_hand"),
    time_column="as_of",
    offset_column=None,
)

DEALER_FINANCE = Kind(
    name="dealer_finance",
    meaning="one dealer's cash flow and order fulfilment in one period",
    columns=(
        _dealer(),
        Column("period", "period", required=True, meaning="a month (2024-03) or an ISO week (2024-W09)"),
        Column("cash_in", "float", required=True, minimum=0, maximum=1e12, meaning="cash received"),
        Column("cash_out", "float", required=True, minimum=0, maximum=1e12, meaning="cash paid out"),
        Column("orders_received", "int", minimum=0, maximum=10**9, meaning="customer orders received"),
        Column("orders_fulfilled", "int", minimum=0, maximum=10**9, meaning="customer orders fulfilled"),
    ),
    unique=("dealer_id", "period"),
    signature=("cash_in",),
    time_column="period",
    offset_column=None,
)

VEHICLE = Kind(
    name="vehicle",
    meaning="one vehicle of the registry: identity, cohort, owner and home service center",
    columns=(
        Column("vin", "text", required=True, tag=True, meaning="vehicle identification number"),
        Column("model", "text", required=True, meaning="model name, e.g. EV-1"),
        Column("lot", "text", required=True, meaning="production lot, e.g. L003"),
        _supplier("battery"),
        _supplier("tire"),
        _supplier("brake"),
        _supplier("bearing"),
        _supplier("motor"),
        Column("region", "text", meaning="where the vehicle is used"),
        Column("owner_name", "text", meaning="the person or company to contact"),
        Column("owner_contact", "text", meaning="their e-mail address or phone number"),
        Column("service_center", "text", meaning="the vehicle's home service center"),
        Column("production_date", "time", meaning="when the vehicle was built"),
        Column("fleet", "text", meaning="the fleet name the gateway publishes under"),
    ),
    unique=("vin",),
    signature=("vin", "model", "lot"),
    time_column=None,
    offset_column=None,
)

SKILL = re.compile(r"[a-z][a-z0-9_]{0,31}")


def _service_center_checks(record: Record) -> list[str]:
    skills = record.get("skills")
    if not isinstance(skills, str):
        return []
    bad = [skill for skill in skills.split(PARTS_SEPARATOR) if not SKILL.fullmatch(skill.strip())]
    if bad:
        return [
            f"skills {shown(skills)}: each skill is a lower-case word ({', '.join(map(repr, bad))} is not)"
        ]
    return []


def skill_set(text: object) -> frozenset[str]:
    """The skills of a service center's `skills` value; empty means it repairs everything."""
    if not isinstance(text, str):
        return frozenset()
    return frozenset(skill.strip() for skill in text.split(PARTS_SEPARATOR) if skill.strip())


SERVICE_CENTER = Kind(
    name="service_center",
    meaning="one workshop: where it is, who runs it and how much work it can take",
    columns=(
        Column(
            "service_center",
            "text",
            required=True,
            tag=True,
            meaning="the workshop's id, as work orders, stock and the registry name it",
        ),
        Column("name", "text", meaning="the workshop's name"),
        Column("dealer_id", "text", required=True, meaning="the dealer that runs it"),
        Column("lat", "float", required=True, minimum=-90, maximum=90, meaning="latitude, WGS 84 degrees"),
        Column("lon", "float", required=True, minimum=-180, maximum=180, meaning="longitude, WGS 84 degrees"),
        Column(
            "capacity_per_week",
            "int",
            required=True,
            minimum=0,
            maximum=100_000,
            meaning="appointments it can take in a week",
        ),
        Column(
            "technicians", "int", required=True, minimum=0, maximum=10_000, meaning="technicians on staff"
        ),
        Column(
            "skills",
            "text",
            meaning="what it repairs: subsystems (battery, tires, brakes, bearings, motor) with ; between "
            "them; empty: everything",
        ),
    ),
    unique=("service_center",),
    signature=("service_center", "capacity_per_week"),
    time_column=None,
    offset_column=None,
    checks=_service_center_checks,
)

PART = Kind(
    name="part",
    meaning="one part of the parts master: its name, what it costs and how it is ordered",
    columns=(
        Column(
            "part", "text", required=True, tag=True, meaning="part number, as work orders and stock name it"
        ),
        Column("name", "text", required=True, meaning="the part's name, e.g. Brake pad set, front axle"),
        Column(
            "unit_cost",
            "float",
            minimum=0,
            maximum=1e9,
            meaning="what one unit costs the dealer, in currency",
        ),
        Column("currency", "text", meaning="ISO 4217 code of unit_cost, e.g. EUR"),
        Column("supplier", "text", meaning="who supplies it"),
        Column("lead_time_days", "int", minimum=0, maximum=3650, meaning="days from order to delivery"),
        Column(
            "pack_size",
            "int",
            minimum=1,
            maximum=1_000_000,
            meaning="units in one pack: orders are whole packs",
        ),
        Column("min_order", "int", minimum=0, maximum=1_000_000, meaning="the smallest order, in units"),
        Column("substitutes", "text", meaning="part numbers that can replace it, with ; between them"),
    ),
    unique=("part",),
    signature=("part", "name"),
    time_column=None,
    offset_column=None,
)

KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (WORK_ORDER, COMPLAINT, SURVEY, PARTS_STOCK, DEALER_FINANCE, VEHICLE, SERVICE_CENTER, PART)
}


def kind_named(name: str) -> Kind:
    try:
        return KINDS[name.strip().lower().replace("-", "_")]
    except KeyError:
        raise ConfigError(f"unknown kind {name!r}; the kinds are {', '.join(KINDS)}") from None


def detect_kind(columns: Iterable[str], name: str) -> Kind:
    """The one kind whose signature columns `columns` holds; ConfigError if none or several."""
    present = set(columns)
    matches = [kind for kind in KINDS.values() if set(kind.signature) <= present]
    if len(matches) == 1:
        return matches[0]
    hints = "; ".join(f"{kind.name}: {' + '.join(kind.signature)}" for kind in KINDS.values())
    if not matches:
        shown = ", ".join(sorted(present)[:12]) or "none"
        raise ConfigError(
            f"{name}: cannot tell the kind of file from its columns ({shown}); "
            f"pass --kind, or include the columns that name it ({hints})"
        )
    raise ConfigError(
        f"{name}: its columns fit several kinds ({', '.join(k.name for k in matches)}); pass --kind"
    )


def shown(raw: object) -> str:
    text = raw if isinstance(raw, str) else json.dumps(raw, default=str)
    return repr(text if len(text) <= 40 else text[:37] + "...")


def iso_text(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
