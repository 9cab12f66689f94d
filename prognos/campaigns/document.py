"""The campaign document: what a gateway collects, when, for how long, and where it keeps it.

A campaign is a TOML or JSON document (docs/campaigns.md lists every field):

    name = "brake-heat"
    version = 1
    priority = 2                      # 0 is the most urgent, 9 the least
    compression = "zlib"              # or "off"
    state = "active"                  # or "suspended"
    expires_at = 2027-06-30T00:00:00Z
    post_trigger_s = 10.0             # keep collecting this long after a trigger

    [trigger]                         # a condition ...
    condition = "max(Vehicle.Chassis.Axle.Row1.Wheel.Left.Brake.PadWear, 60) > 80"
    mode = "rising_edge"              # or "always"
    min_interval_s = 300.0
    # period_s = 60.0                 # ... or a period in seconds, never both

    [[signals]]
    path = "Vehicle.Speed"
    max_samples = 600
    min_interval_ms = 1000

    [spool]
    partition = "brakes"
    max_bytes = 1_000_000
    min_ttl_s = 86_400
    upload_condition = "Vehicle.Speed < 1"

    [target]                          # vehicle attribute -> the values that qualify
    model = ["eBus-12", "eBus-18"]

Parsing is pure: text in, a frozen Campaign out, or a CampaignError that names the field.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from prognos.campaigns.expression import Expression, ExpressionError, parse_expression
from prognos.errors import ConfigError

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
PARTITION_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
ATTRIBUTE_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,31}")
TRIGGER_MODES = ("always", "rising_edge")
COMPRESSIONS = ("off", "zlib")
STATES = ("active", "suspended")
MAX_PRIORITY = 9
MAX_VERSION = 2**31 - 1
MAX_POST_TRIGGER_S = 3600.0
MAX_PERIOD_S = 7 * 86400.0
MAX_MIN_INTERVAL_S = 7 * 86400.0
MAX_SIGNALS = 64
MAX_SAMPLES = 100_000
MAX_SAMPLE_INTERVAL_MS = 3_600_000
MAX_SPOOL_BYTES = 1 << 30
MAX_TTL_S = 365 * 86400
MAX_TARGET_VALUES = 1000
MAX_DOCUMENT_CHARS = 64 * 1024

TOP_KEYS = {
    "name",
    "version",
    "priority",
    "compression",
    "state",
    "expires_at",
    "post_trigger_s",
    "trigger",
    "signals",
    "spool",
    "target",
}
TRIGGER_KEYS = {"condition", "mode", "min_interval_s", "period_s"}
SIGNAL_KEYS = {"path", "max_samples", "min_interval_ms"}
SPOOL_KEYS = {"partition", "max_bytes", "min_ttl_s", "upload_condition"}


class CampaignError(ConfigError):
    """A campaign document that is not valid; `field` names where (e.g. "signals[2].max_samples")."""

    def __init__(self, origin: str, field: str, message: str) -> None:
        super().__init__(f"{origin}: {field}: {message}" if field else f"{origin}: {message}")
        self.field = field


@dataclass(frozen=True, kw_only=True)
class ConditionTrigger:
    condition: Expression
    mode: Literal["always", "rising_edge"]
    min_interval_s: float


@dataclass(frozen=True, kw_only=True)
class PeriodTrigger:
    period_s: float


@dataclass(frozen=True, kw_only=True)
class SignalSpec:
    path: str
    max_samples: int
    min_interval_ms: int


@dataclass(frozen=True, kw_only=True)
class Spool:
    partition: str
    max_bytes: int
    min_ttl_s: int
    upload_condition: Expression | None


@dataclass(frozen=True, kw_only=True)
class Campaign:
    name: str
    version: int
    priority: int
    compression: Literal["off", "zlib"]
    state: Literal["active", "suspended"]
    expires_at: datetime
    post_trigger_s: float
    trigger: ConditionTrigger | PeriodTrigger
    signals: tuple[SignalSpec, ...]
    spool: Spool
    target: Mapping[str, tuple[str, ...]]  # attribute -> the values that qualify; empty: every vehicle

    def expired(self, now: datetime) -> bool:
        return now >= self.expires_at

    def targets(self, attributes: Mapping[str, str]) -> bool:
        """Whether a vehicle with these attributes is one the campaign is for."""
        return all(attributes.get(key) in values for key, values in self.target.items())


def parse_campaign(
    text: str,
    *,
    origin: str = "<campaign>",
    fmt: Literal["toml", "json"] = "toml",
    signals: Collection[str] | None = None,
) -> Campaign:
    """The campaign in `text`; its signal paths checked against `signals` (the catalog's) when
    given. CampaignError, naming the field, for anything else."""
    if len(text) > MAX_DOCUMENT_CHARS:
        raise CampaignError(origin, "", f"document is longer than {MAX_DOCUMENT_CHARS} characters")
    try:
        doc = tomllib.loads(text) if fmt == "toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, ValueError, RecursionError) as exc:
        raise CampaignError(origin, "", f"not valid {fmt.upper()}: {_short(exc)}") from exc
    return campaign_from_dict(doc, origin=origin, signals=signals)


def campaign_from_dict(
    doc: Any, *, origin: str = "<campaign>", signals: Collection[str] | None = None
) -> Campaign:
    fields = _Fields(origin, signals)
    if not isinstance(doc, dict):
        raise CampaignError(origin, "", "a campaign must be a table of fields")
    fields.known(doc, TOP_KEYS, "")
    name = fields.text(doc, "name", "name")
    if not NAME_PATTERN.fullmatch(name):
        raise CampaignError(origin, "name", f"must match {NAME_PATTERN.pattern}, not {name[:80]!r}")
    trigger_table = fields.table(doc, "trigger", "trigger", required=True)
    spool_table = fields.table(doc, "spool", "spool", required=False)
    target_table = fields.table(doc, "target", "target", required=False)
    return Campaign(
        name=name,
        version=fields.integer(doc, "version", "version", low=1, high=MAX_VERSION),
        priority=fields.integer(doc, "priority", "priority", low=0, high=MAX_PRIORITY, default=5),
        compression=fields.choice(doc, "compression", "compression", COMPRESSIONS, default="off"),  # type: ignore[arg-type]
        state=fields.choice(doc, "state", "state", STATES, default="active"),  # type: ignore[arg-type]
        expires_at=fields.moment(doc, "expires_at", "expires_at"),
        post_trigger_s=fields.number(
            doc, "post_trigger_s", "post_trigger_s", low=0.0, high=MAX_POST_TRIGGER_S, default=0.0
        ),
        trigger=fields.trigger(trigger_table),
        signals=fields.signal_list(doc.get("signals")),
        spool=fields.spool(spool_table, name),
        target=fields.target(target_table),
    )


def campaign_to_dict(campaign: Campaign) -> dict[str, Any]:
    """The campaign as plain JSON values, every field written out: campaign_from_dict reads it
    back to the same campaign."""
    trigger: dict[str, Any]
    if isinstance(campaign.trigger, PeriodTrigger):
        trigger = {"period_s": campaign.trigger.period_s}
    else:
        trigger = {
            "condition": campaign.trigger.condition.text,
            "mode": campaign.trigger.mode,
            "min_interval_s": campaign.trigger.min_interval_s,
        }
    spool: dict[str, Any] = {
        "partition": campaign.spool.partition,
        "max_bytes": campaign.spool.max_bytes,
        "min_ttl_s": campaign.spool.min_ttl_s,
    }
    if campaign.spool.upload_condition is not None:
        spool["upload_condition"] = campaign.spool.upload_condition.text
    return {
        "name": campaign.name,
        "version": campaign.version,
        "priority": campaign.priority,
        "compression": campaign.compression,
        "state": campaign.state,
        "expires_at": campaign.expires_at.isoformat().replace("+00:00", "Z"),
        "post_trigger_s": campaign.post_trigger_s,
        "trigger": trigger,
        "signals": [
            {"path": s.path, "max_samples": s.max_samples, "min_interval_ms": s.min_interval_ms}
            for s in campaign.signals
        ],
        "spool": spool,
        "target": {key: list(values) for key, values in campaign.target.items()},
    }


def _short(exc: Exception) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


@dataclass(frozen=True)
class _Fields:
    origin: str
    catalog: Collection[str] | None

    def fail(self, field: str, message: str) -> CampaignError:
        return CampaignError(self.origin, field, message)

    def known(self, table: dict[str, Any], keys: set[str], prefix: str) -> None:
        unknown = sorted(set(table) - keys)
        if unknown:
            raise self.fail(
                f"{prefix}{unknown[0]}"[:100], f"unknown field (known: {', '.join(sorted(keys))})"
            )

    def table(self, doc: dict[str, Any], key: str, field: str, *, required: bool) -> dict[str, Any]:
        if key not in doc:
            if required:
                raise self.fail(field, "missing")
            return {}
        value = doc[key]
        if not isinstance(value, dict):
            raise self.fail(field, f"must be a table, not {_kind(value)}")
        return value

    def text(self, doc: dict[str, Any], key: str, field: str, default: str | None = None) -> str:
        if key not in doc:
            if default is None:
                raise self.fail(field, "missing")
            return default
        value = doc[key]
        if not isinstance(value, str):
            raise self.fail(field, f"must be text, not {_kind(value)}")
        return value

    def choice(
        self, doc: dict[str, Any], key: str, field: str, choices: tuple[str, ...], default: str
    ) -> str:
        value = self.text(doc, key, field, default)
        if value not in choices:
            raise self.fail(field, f"must be one of {', '.join(choices)}, not {value[:40]!r}")
        return value

    def integer(
        self, doc: dict[str, Any], key: str, field: str, *, low: int, high: int, default: int | None = None
    ) -> int:
        if key not in doc:
            if default is None:
                raise self.fail(field, "missing")
            return default
        value = doc[key]
        if isinstance(value, float) and value.is_integer() and math.isfinite(value):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(field, f"must be a whole number, not {_kind(value)}")
        if not low <= value <= high:
            raise self.fail(field, f"must be from {low} to {high}")
        return value

    def number(
        self,
        doc: dict[str, Any],
        key: str,
        field: str,
        *,
        low: float,
        high: float,
        default: float | None = None,
    ) -> float:
        if key not in doc:
            if default is None:
                raise self.fail(field, "missing")
            return default
        value = doc[key]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(field, f"must be a number, not {_kind(value)}")
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not (math.isfinite(number) and low <= number <= high):
            raise self.fail(field, f"must be a number from {low:g} to {high:g}")
        return number

    def moment(self, doc: dict[str, Any], key: str, field: str) -> datetime:
        if key not in doc:
            raise self.fail(field, "missing")
        value = doc[key]
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value)
            except ValueError:
                raise self.fail(field, f"is not an ISO 8601 time: {value[:40]!r}") from None
        if not isinstance(value, datetime):
            raise self.fail(field, f"must be a time such as 2027-01-01T00:00:00Z, not {_kind(value)}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise self.fail(field, "needs a time zone (end it with Z for UTC)")
        try:
            return value.astimezone(UTC)
        except OverflowError:
            raise self.fail(field, "is out of range") from None

    def expression(self, text: str, field: str) -> Expression:
        try:
            return parse_expression(text, signals=self.catalog)
        except ExpressionError as exc:
            raise self.fail(field, str(exc)) from exc

    def trigger(self, table: dict[str, Any]) -> ConditionTrigger | PeriodTrigger:
        self.known(table, TRIGGER_KEYS, "trigger.")
        if ("condition" in table) == ("period_s" in table):
            raise self.fail("trigger", "needs exactly one of condition and period_s")
        if "period_s" in table:
            for key in ("mode", "min_interval_s"):
                if key in table:
                    raise self.fail(f"trigger.{key}", "applies to a condition, not to period_s")
            period = self.number(table, "period_s", "trigger.period_s", low=0.0, high=MAX_PERIOD_S)
            if period <= 0:
                raise self.fail("trigger.period_s", "must be above 0")
            return PeriodTrigger(period_s=period)
        condition = self.expression(self.text(table, "condition", "trigger.condition"), "trigger.condition")
        mode = self.choice(table, "mode", "trigger.mode", TRIGGER_MODES, default="rising_edge")
        return ConditionTrigger(
            condition=condition,
            mode=mode,  # type: ignore[arg-type]
            min_interval_s=self.number(
                table,
                "min_interval_s",
                "trigger.min_interval_s",
                low=0.0,
                high=MAX_MIN_INTERVAL_S,
                default=0.0,
            ),
        )

    def signal_list(self, entries: Any) -> tuple[SignalSpec, ...]:
        if entries is None:
            raise self.fail("signals", "missing: name at least one signal to collect")
        if not isinstance(entries, list) or not entries:
            raise self.fail("signals", "must be a list of at least one signal")
        if len(entries) > MAX_SIGNALS:
            raise self.fail("signals", f"has more than {MAX_SIGNALS} signals")
        specs: list[SignalSpec] = []
        seen: set[str] = set()
        for index, entry in enumerate(entries):
            where = f"signals[{index}]"
            if not isinstance(entry, dict):
                raise self.fail(where, f"must be a table, not {_kind(entry)}")
            self.known(entry, SIGNAL_KEYS, f"{where}.")
            path = self.text(entry, "path", f"{where}.path")
            if self.catalog is not None and path not in self.catalog:
                raise self.fail(f"{where}.path", f"unknown signal {path[:100]!r}")
            if path in seen:
                raise self.fail(f"{where}.path", f"{path} is listed twice")
            seen.add(path)
            specs.append(
                SignalSpec(
                    path=path,
                    max_samples=self.integer(
                        entry,
                        "max_samples",
                        f"{where}.max_samples",
                        low=1,
                        high=MAX_SAMPLES,
                        default=MAX_SAMPLES,
                    ),
                    min_interval_ms=self.integer(
                        entry,
                        "min_interval_ms",
                        f"{where}.min_interval_ms",
                        low=0,
                        high=MAX_SAMPLE_INTERVAL_MS,
                        default=0,
                    ),
                )
            )
        return tuple(specs)

    def spool(self, table: dict[str, Any], name: str) -> Spool:
        self.known(table, SPOOL_KEYS, "spool.")
        partition = self.text(table, "partition", "spool.partition", default=name[:32])
        if not PARTITION_PATTERN.fullmatch(partition):
            raise self.fail("spool.partition", f"must match {PARTITION_PATTERN.pattern}")
        upload = None
        if "upload_condition" in table:
            text = self.text(table, "upload_condition", "spool.upload_condition")
            upload = self.expression(text, "spool.upload_condition")
        return Spool(
            partition=partition,
            max_bytes=self.integer(
                table, "max_bytes", "spool.max_bytes", low=1024, high=MAX_SPOOL_BYTES, default=16 << 20
            ),
            min_ttl_s=self.integer(table, "min_ttl_s", "spool.min_ttl_s", low=0, high=MAX_TTL_S, default=0),
            upload_condition=upload,
        )

    def target(self, table: dict[str, Any]) -> dict[str, tuple[str, ...]]:
        target: dict[str, tuple[str, ...]] = {}
        for key, value in table.items():
            where = f"target.{key}"[:100]
            if not ATTRIBUTE_PATTERN.fullmatch(key):
                raise self.fail(where, f"attribute names must match {ATTRIBUTE_PATTERN.pattern}")
            values = [value] if isinstance(value, str) else value
            if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
                raise self.fail(where, "must be a text value or a non-empty list of them")
            if len(values) > MAX_TARGET_VALUES:
                raise self.fail(where, f"has more than {MAX_TARGET_VALUES} values")
            target[key] = tuple(values)
        return target


def _kind(value: object) -> str:
    names = {
        bool: "true/false",
        int: "a number",
        float: "a number",
        str: "text",
        list: "a list",
        dict: "a table",
    }
    return names.get(type(value), type(value).__name__)
