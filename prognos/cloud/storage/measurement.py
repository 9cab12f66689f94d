"""What a measurement declaration holds: name, tags, fields with their types, and the unit of its
timestamps. Pure data; the declarations themselves are in prognos.cloud.storage.schema.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from prognos.errors import PrognosError

Precision = Literal["ms", "ns"]  # the unit of a point's timestamp, as /write's precision names it


class SchemaError(PrognosError, ValueError):
    """A point that does not fit its declaration: a tag or field the measurement does not
    declare, or a value that is not of its field's type. A bug in the code that writes it."""


class FieldType(enum.StrEnum):
    """A field's type, named as InfluxDB's SHOW FIELD KEYS names it."""

    FLOAT = "float"
    INT = "integer"
    STR = "string"
    BOOL = "boolean"


@dataclass(frozen=True, kw_only=True)
class FieldPattern:
    """Fields not listed one by one but named by a rule (the counters of a record or a status)."""

    pattern: re.Pattern[str]
    type: FieldType
    meaning: str


@dataclass(frozen=True, kw_only=True, eq=False)
class Measurement:
    """One measurement: its tags (the point's key with the timestamp) and its fields, in the
    order they are written. `extra_fields` admits further fields whose names match its pattern.
    `retention_policy` None is the database's default policy."""

    name: str
    tags: tuple[str, ...]
    fields: Mapping[str, FieldType]
    precision: Precision
    meaning: str
    extra_fields: FieldPattern | None = None
    retention_policy: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", MappingProxyType(dict(self.fields)))
        both = set(self.tags) & set(self.fields)
        if both:
            raise SchemaError(f"{self.name}: {', '.join(sorted(both))} declared as tag and as field")
        if len(set(self.tags)) != len(self.tags):
            raise SchemaError(f"{self.name}: a tag is declared twice")
        if not self.fields and self.extra_fields is None:
            raise SchemaError(f"{self.name}: a measurement needs a field")

    def field_type(self, key: str) -> FieldType | None:
        """The type of field `key`: declared, or by the pattern of extra_fields; None if neither."""
        declared = self.fields.get(key)
        if declared is not None:
            return declared
        extra = self.extra_fields
        if extra is not None and extra.pattern.fullmatch(key):
            return extra.type
        return None

    @property
    def columns(self) -> tuple[str, ...]:
        """Tags, then fields, in declaration order: a row of the measurement read back."""
        return (*self.tags, *self.fields)

    def column_names(self, *, first: Sequence[str] = (), without: Collection[str] = ()) -> tuple[str, ...]:
        """`first`, then the other columns in declaration order, leaving out `without`;
        SchemaError for a name the measurement does not declare."""
        self.select(*first, *without)
        rest = (name for name in self.columns if name not in first and name not in without)
        return (*first, *rest)

    def select(self, *names: str) -> tuple[str, ...]:
        """`names`, checked: SchemaError for one the measurement does not declare."""
        unknown = [name for name in names if name not in self.tags and name not in self.fields]
        if unknown:
            raise SchemaError(f"{self.name} declares no {', '.join(map(repr, unknown))}")
        return names
