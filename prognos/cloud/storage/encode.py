"""Points as InfluxDB line protocol, each checked against its measurement's declaration.

    measurement,tag=value,... field=value,... timestamp

Tags in key order, escaped; an empty or None tag is left out. Each field is written as its
declared type whatever Python type it comes as: a float as its repr, an integer with the `i`
suffix, a bool as true/false, a string quoted. A None or non-finite value is left out (InfluxQL
then reads null). A tag or field the declaration does not hold raises SchemaError. Pure.
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Mapping

from prognos.cloud.storage.measurement import FieldType, Measurement, SchemaError

MAX_STRING_FIELD = 60_000  # InfluxDB 1.x refuses string fields over 64 KiB
MAX_LEARNED_FIELDS = 4096  # extra field names (counters) remembered per measurement
# The members bound once: looking up FieldType.X costs more than writing a value.
_FLOAT, _INT, _STR, _BOOL = FieldType.FLOAT, FieldType.INT, FieldType.STR, FieldType.BOOL


@functools.lru_cache(maxsize=65_536)  # names, VINs and codes repeat in every batch
def escape_key(text: str) -> str:
    """Measurement names, tag keys, tag values and field keys."""
    return (
        text.replace("\\", "\\\\")
        .replace(",", "\\,")
        .replace("=", "\\=")
        .replace(" ", "\\ ")
        .replace("\n", "\\n")
    )


def string_field(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def encode(
    measurement: Measurement, tags: Mapping[str, object], fields: Mapping[str, object], time: int
) -> str:
    """One point, `fields` in the order given. SchemaError for a tag or field `measurement`
    does not declare, a value that does not fit its field's type, or a point left without a
    field value."""
    tag_keys, types = _KNOWN.get(measurement) or _known(measurement)
    if not tag_keys.issuperset(tags):
        unknown = ", ".join(repr(key) for key in tags if key not in tag_keys)
        raise SchemaError(
            f"{measurement.name} declares no tag {unknown} (its tags: {', '.join(measurement.tags)})"
        )
    parts = []
    for key, value in fields.items():
        kind = types.get(key)
        if kind is None:
            kind = _learn(measurement, types, key)
        # The common cases first (ingest writes thousands of points a second); field_value
        # gives the same for these, and handles every other case.
        cls = type(value)
        if cls is int and kind is _INT:
            parts.append(f"{escape_key(key)}={value}i")
        elif cls is float and kind is _FLOAT and math.isfinite(value):  # type: ignore[arg-type]
            parts.append(f"{escape_key(key)}={value!r}")
        elif cls is str and kind is _STR:
            parts.append(f"{escape_key(key)}={string_field(value)}")  # type: ignore[arg-type]
        elif value is not None:
            text = field_value(measurement, key, kind, value)
            if text is not None:
                parts.append(f"{escape_key(key)}={text}")
    if not parts:
        raise SchemaError(f"a {measurement.name} point without any field value")
    return _line(measurement, tags, parts, time)


def encode_row(measurement: Measurement, row: Mapping[str, object], time: int) -> str | None:
    """The measurement's tags and fields taken from `row` (other keys are ignored), fields in
    declaration order; None when no field has a value."""
    parts = []
    for key, kind in measurement.fields.items():
        text = field_value(measurement, key, kind, row.get(key))
        if text is not None:
            parts.append(f"{escape_key(key)}={text}")
    if not parts:
        return None
    return _line(measurement, {tag: row.get(tag) for tag in measurement.tags}, parts, time)


def field_value(measurement: Measurement, key: str, kind: FieldType, value: object) -> str | None:
    """`value` as field `key` of type `kind` is written; None for None and non-finite numbers
    (left out of the point). SchemaError for a value that cannot be of that type."""
    if value is None:
        return None
    try:
        if kind is _FLOAT:
            number = float(value)  # type: ignore[arg-type]
            return repr(number) if math.isfinite(number) else None
        if kind is _INT:
            try:
                return f"{operator.index(value)}i"  # type: ignore[arg-type]
            except TypeError:
                number = float(value)  # type: ignore[arg-type]
            return f"{int(number)}i" if math.isfinite(number) else None
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if kind is _BOOL:
            if isinstance(value, str):
                raise TypeError("text is not a bool")
            return "true" if value else "false"
        return string_field(str(value))
    except (TypeError, ValueError) as exc:
        raise SchemaError(f"{measurement.name}.{key} is {kind}, not {value!r}") from exc


# Per measurement: its tag keys, and the types of its declared fields and of the extra fields
# (counters) seen so far, so that a counter's name is matched against the pattern once.
_KNOWN: dict[Measurement, tuple[frozenset[str], dict[str, FieldType]]] = {}


def _known(measurement: Measurement) -> tuple[frozenset[str], dict[str, FieldType]]:
    known = _KNOWN[measurement] = (frozenset(measurement.tags), dict(measurement.fields))
    return known


def _learn(measurement: Measurement, types: dict[str, FieldType], key: str) -> FieldType:
    kind = measurement.field_type(key)
    if kind is None:
        raise SchemaError(
            f"{measurement.name} declares no field {key!r} (its fields: {', '.join(measurement.fields)}"
            + (f"; {measurement.extra_fields.meaning}" if measurement.extra_fields else "")
            + ")"
        )
    if len(types) < len(measurement.fields) + MAX_LEARNED_FIELDS:
        types[key] = kind
    return kind


def _line(measurement: Measurement, tags: Mapping[str, object], fields: list[str], time: int) -> str:
    tag_text = ""
    for key, value in sorted(tags.items()):
        if value is None:
            continue
        text = value if type(value) is str else str(value)
        if text:
            tag_text += f",{escape_key(key)}={escape_key(text)}"
    return f"{escape_key(measurement.name)}{tag_text} {','.join(fields)} {time:d}"
