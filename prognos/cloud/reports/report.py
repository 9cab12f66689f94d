"""A diagnosis report: what the service center needs to act on one alert, built from the record
that raised it and what the cloud and the service desk know. Pure: data in, a Report out, and
its JSON form (to_dict, from_dict) for the store.

Sections (docs/reports.md): the evidence (the record's subsystems and faults against their
thresholds, and the alerting subsystem's recent points), the trend (days to the failure
threshold with the 80% interval), the classifier's ranked causes, the recommended checks and
parts, the nearest capable service centers with their stock of those parts and their next free
slots, and the owner's contact.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prognos.cloud.analytics.common import CAMPAIGN_CHECKS, DAY_MS, SUBSYSTEM_WORDS
from prognos.cloud.analytics.fleet_health import ACT_HEALTH, WATCH_HEALTH, WATCH_SCORE
from prognos.cloud.dealers.reassign import ServiceCenter, distance_km, weekly_capacity
from prognos.cloud.parts.plan import DAYS_INTERVAL, FAULT_PARTS
from prognos.cloud.reports.alerting import RecordAlert, Trigger
from prognos.errors import DecodeError
from prognos.record import DiagnosticRecord

REPORT_FORMAT = 1  # the version of the JSON form (`format` in to_dict)
ALERT_SCORE = 1.0  # an anomaly score of 1 is the detector's alert level (prognos.record)
NO_CAUSES = "no classifier output in this record"
DIGEST_BYTES = 12


@dataclass(frozen=True, kw_only=True)
class Thresholds:
    act_health: float = ACT_HEALTH  # below: act now (P1)
    watch_health: float = WATCH_HEALTH  # below: watch (P2)
    watch_score: float = WATCH_SCORE  # anomaly score at or above: watch (P2)
    alert_score: float = ALERT_SCORE  # the detector names a fault


@dataclass(frozen=True, kw_only=True)
class Point:
    """One stored value pair of the alerting subsystem (a record's window end, UTC)."""

    at: datetime
    health: float
    anomaly_score: float


@dataclass(frozen=True, kw_only=True)
class SubsystemEvidence:
    subsystem: str
    health: float
    anomaly_score: float
    status: str  # against the thresholds, in words


@dataclass(frozen=True, kw_only=True)
class FaultEvidence:
    code: str
    confidence: float
    days_to_threshold: float | None = None
    days_low: float | None = None
    days_high: float | None = None


@dataclass(frozen=True, kw_only=True)
class Evidence:
    window_start: datetime
    window_end: datetime
    seq: int
    model: str  # model id and version
    record_trigger: str  # why the gateway sent the record: heartbeat, change, anomaly
    subsystems: tuple[SubsystemEvidence, ...]
    faults: tuple[FaultEvidence, ...]
    counters: tuple[tuple[str, int], ...]
    series: tuple[Point, ...]  # the alerting subsystem, oldest first, ending with this record
    history_hours: float  # how far back the series reaches at most
    min_health: float | None  # over the series
    max_score: float | None
    thresholds: Thresholds = Thresholds()


@dataclass(frozen=True, kw_only=True)
class Trend:
    """Days from the record's window end until the subsystem reaches its failure threshold."""

    days: float | None
    days_low: float | None
    days_high: float | None
    interval: float = DAYS_INTERVAL  # the probability the interval holds
    source: str  # where the estimate comes from, or why there is none, in words
    estimated_at: datetime | None = None  # the record that estimated it


@dataclass(frozen=True, kw_only=True)
class RankedCause:
    code: str
    probability: float


@dataclass(frozen=True, kw_only=True)
class PartNeed:
    part: str
    name: str
    units: int
    unit_cost: float | None = None
    currency: str = ""
    fault: str = ""  # the fault code it repairs


@dataclass(frozen=True, kw_only=True)
class StockLevel:
    """One store's stock of one part (prognos.cloud.analytics.reading.read_stock)."""

    on_hand: float
    on_order: float = 0.0
    lead_time_weeks: float | None = None


@dataclass(frozen=True, kw_only=True)
class PartStock:
    part: str
    on_hand: float | None  # None: the center reported no stock of it
    on_order: float | None
    lead_time_weeks: float | None
    status: str  # in words


@dataclass(frozen=True, kw_only=True)
class CenterChoice:
    """A service center that can do the repair, as the report offers it."""

    center_id: str
    name: str
    dealer_id: str
    home: bool  # the vehicle's home center
    distance_km: float | None  # from the home center; None without one
    stock: tuple[PartStock, ...]
    slots: tuple[datetime, ...]  # next free slot starts, UTC


@dataclass(frozen=True, kw_only=True)
class Contact:
    source: str  # desk | registry | none
    customer_id: str | None = None
    name: str = ""
    email: str = ""
    phone: str = ""
    home_center: str | None = None


@dataclass(frozen=True, kw_only=True)
class Report:
    report_id: str
    alert_id: str  # the desk's id of this vehicle's alert on this code
    fleet: str
    vin: str
    code: str
    kind: str  # fault | low_health | anomaly
    subsystem: str
    priority: str
    trigger: Trigger
    previous_priority: str | None  # escalations: what it was
    summary: str  # one line
    reason: str  # the alert rule's reason
    created_at: datetime
    published_at: datetime  # the record's window end: when the gateway sent it, unless spooled
    received_at: datetime  # when the worker got it
    evidence: Evidence
    trend: Trend
    causes: tuple[RankedCause, ...]
    checks: tuple[str, ...]
    parts: tuple[PartNeed, ...]
    parts_are_candidates: bool  # True: no fault named, the subsystem's usual parts
    centers: tuple[CenterChoice, ...]
    contact: Contact

    @property
    def center_id(self) -> str | None:
        """The center the report goes to: the first offered."""
        return self.centers[0].center_id if self.centers else None

    @property
    def title(self) -> str:
        return f"{self.priority} {self.code} on {self.vin}"


# ---- building


def report_id(vin: str, code: str, seq: int, window_end_ms: int, trigger: str) -> str:
    """RP- and 24 hex digits of a hash of the vehicle, code, record and trigger: the same for
    the same record and alert, so a redelivered record cannot store a second report."""
    key = f"{vin}\n{code}\n{seq}\n{window_end_ms}\n{trigger}".encode()
    return f"RP-{hashlib.blake2b(key, digest_size=DIGEST_BYTES).hexdigest()}"


def utc_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000.0, UTC)


def health_status(health: float, score: float, thresholds: Thresholds = Thresholds()) -> str:
    """The limits a subsystem's values cross, in words; "within limits" when none."""
    found = []
    if health < thresholds.act_health:
        found.append(f"health below the act limit {thresholds.act_health}")
    elif health < thresholds.watch_health:
        found.append(f"health below the watch limit {thresholds.watch_health}")
    if score >= thresholds.alert_score:
        found.append(f"anomaly score at or above the alert level {thresholds.alert_score}")
    elif score >= thresholds.watch_score:
        found.append(f"anomaly score at or above the watch limit {thresholds.watch_score}")
    return "; ".join(found) or "within limits"


def days_words(days: float | None, low: float | None, high: float | None) -> str:
    """E.g. "in 9 days (80% interval 6-14 days)", "within a day"; whole days, never below 0."""
    if days is None or not math.isfinite(days):
        return "not estimated"
    whole = round(max(days, 0.0))
    text = "within a day" if whole == 0 else f"in {whole} day{'s' if whole != 1 else ''}"
    if low is not None and high is not None and math.isfinite(low) and math.isfinite(high):
        lo, hi = round(max(low, 0.0)), round(max(high, 0.0))
        text += f" ({DAYS_INTERVAL:.0%} interval {lo}-{hi} days)"
    return text


def trend_of(
    alert: RecordAlert,
    record: DiagnosticRecord,
    *,
    last_estimate: tuple[int, float, float | None, float | None] | None = None,
) -> Trend:
    """The record's own estimate; else the latest stored estimate of this vehicle and code
    (`last_estimate`: its time in ms, days, low, high), counted forward to the record's window
    end as the analytics job counts days left; else none, with the reason."""
    if alert.days_to_threshold is not None:
        return Trend(
            days=alert.days_to_threshold,
            days_low=alert.days_low,
            days_high=alert.days_high,
            source="the gateway's trend in this record",
            estimated_at=utc_ms(record.window_end_ms),
        )
    if last_estimate is not None and alert.kind == "fault":
        at_ms, days, low, high = last_estimate
        elapsed = (record.window_end_ms - at_ms) / DAY_MS
        return Trend(
            days=days - elapsed,
            days_low=None if low is None else low - elapsed,
            days_high=None if high is None else high - elapsed,
            source="the gateway's latest trend for this fault, counted on to this record",
            estimated_at=utc_ms(at_ms),
        )
    if alert.kind == "fault":
        why = (
            "the gateway has no trend for this fault yet: its history is too short or not heading "
            "to the threshold"
        )
    else:
        why = "no fault is named yet, so the gateway estimates no days to the failure threshold"
    return Trend(days=None, days_low=None, days_high=None, source=why)


def parts_for(
    alert: RecordAlert, master: Mapping[str, Mapping[str, Any]]
) -> tuple[tuple[PartNeed, ...], bool]:
    """The fault's part (FAULT_PARTS), or for an alert without a fault every part of its
    subsystem (candidates); names and costs from the parts master when it has the part."""
    if alert.code in FAULT_PARTS:
        codes, candidates = [alert.code], False
    else:
        codes = sorted(code for code in FAULT_PARTS if code.split(".", 1)[0] == alert.subsystem)
        candidates = True
    needs = []
    for code in codes:
        spec = FAULT_PARTS[code]
        row = master.get(spec.part, {})
        cost = row.get("unit_cost")
        needs.append(
            PartNeed(
                part=spec.part,
                name=str(row.get("name") or spec.name),
                units=spec.units_per_failure,
                unit_cost=float(cost) if isinstance(cost, int | float) and math.isfinite(cost) else None,
                currency=str(row.get("currency") or ""),
                fault=code,
            )
        )
    return tuple(needs), candidates


def checks_for(alert: RecordAlert) -> tuple[str, ...]:
    checks = [alert.action]
    if alert.code in CAMPAIGN_CHECKS:
        checks.append(CAMPAIGN_CHECKS[alert.code])
    return tuple(checks)


def rank_centers(
    centers: Sequence[ServiceCenter],
    *,
    subsystem: str,
    home: str | None,
    closed_dealers: frozenset[str] = frozenset(),
    limit: int = 3,
) -> list[tuple[ServiceCenter, float | None]]:
    """The centers that can repair `subsystem` (its skill, or no skills listed: everything),
    take appointments (a weekly capacity above 0) and whose dealer is not closed: the home
    center first, then by distance from it (great circle); without a home center, by id. Each
    with its distance from the home center (None without one)."""
    capable = [
        c
        for c in centers
        if (not c.skills or subsystem in c.skills)
        and weekly_capacity(c) > 0
        and c.dealer_id not in closed_dealers
    ]
    origin = next((c for c in centers if c.id == home), None)
    if origin is None:
        return [(c, None) for c in sorted(capable, key=lambda c: c.id)[:limit]]
    ranked = sorted(
        ((c, distance_km(origin.lat, origin.lon, c.lat, c.lon)) for c in capable),
        key=lambda pair: (pair[0].id != origin.id, pair[1], pair[0].id),
    )
    return [(c, d) for c, d in ranked[:limit]]


def stock_status(units: int, level: StockLevel | None) -> str:
    if level is None:
        return "no stock reported"
    if level.on_hand >= units:
        return f"in stock: {level.on_hand:.0f}"
    parts = [f"{level.on_hand:.0f} in stock"]
    if level.on_order > 0:
        parts.append(f"{level.on_order:.0f} on order")
    if level.lead_time_weeks is not None:
        parts.append(f"lead time {level.lead_time_weeks:.0f} week{'s' if level.lead_time_weeks != 1 else ''}")
    return ", ".join(parts)


def center_choices(
    ranked: Sequence[tuple[ServiceCenter, float | None]],
    *,
    home: str | None,
    parts: Sequence[PartNeed],
    stock: Mapping[tuple[str, str], StockLevel],
    slots: Mapping[str, Sequence[datetime]],
) -> tuple[CenterChoice, ...]:
    """The ranked centers with their stock of each part ((center, part) -> level) and slots."""
    choices = []
    for center, distance in ranked:
        levels = []
        for need in parts:
            level = stock.get((center.id, need.part))
            levels.append(
                PartStock(
                    part=need.part,
                    on_hand=None if level is None else level.on_hand,
                    on_order=None if level is None else level.on_order,
                    lead_time_weeks=None if level is None else level.lead_time_weeks,
                    status=stock_status(need.units, level),
                )
            )
        choices.append(
            CenterChoice(
                center_id=center.id,
                name=center.name or center.id,
                dealer_id=center.dealer_id,
                home=center.id == home,
                distance_km=None if distance is None else round(distance, 1),
                stock=tuple(levels),
                slots=tuple(slots.get(center.id, ())),
            )
        )
    return tuple(choices)


def build_report(
    *,
    fleet: str,
    record: DiagnosticRecord,
    alert: RecordAlert,
    trigger: Trigger,
    previous_priority: str | None,
    alert_id: str,
    created_at: datetime,
    received_at: datetime,
    series: Sequence[Point] = (),
    history_hours: float = 0.0,
    last_estimate: tuple[int, float, float | None, float | None] | None = None,
    causes: Sequence[tuple[str, float]] = (),
    master: Mapping[str, Mapping[str, Any]] | None = None,
    centers: Sequence[tuple[ServiceCenter, float | None]] = (),
    stock: Mapping[tuple[str, str], StockLevel] | None = None,
    slots: Mapping[str, Sequence[datetime]] | None = None,
    contact: Contact = Contact(source="none"),
) -> Report:
    """The report on `alert` of `record`.

    series: the alerting subsystem's stored points before this record (any order; the record's
    own point is added). causes: the classifier's ranked causes (code, probability), most likely
    first. master: the parts master by part number (name, unit_cost, currency). centers: ranked
    by rank_centers. stock: (center, part) -> level. slots: center -> next free slot starts."""
    end = utc_ms(record.window_end_ms)
    own = record.subsystems.get(alert.subsystem)
    points = {p.at: p for p in series if p.at < end}
    if own is not None:
        points[end] = Point(at=end, health=own.health, anomaly_score=own.anomaly_score)
    ordered = tuple(points[t] for t in sorted(points))
    parts, candidates = parts_for(alert, master or {})
    trend = trend_of(alert, record, last_estimate=last_estimate)
    evidence = Evidence(
        window_start=utc_ms(record.window_start_ms),
        window_end=end,
        seq=record.seq,
        model=f"{record.model_id} {record.model_version}",
        record_trigger=record.trigger.name.lower(),
        subsystems=tuple(
            SubsystemEvidence(
                subsystem=name,
                health=state.health,
                anomaly_score=state.anomaly_score,
                status=health_status(state.health, state.anomaly_score),
            )
            for name, state in sorted(record.subsystems.items())
        ),
        faults=tuple(
            FaultEvidence(
                code=f.code,
                confidence=f.confidence,
                days_to_threshold=f.days_to_threshold,
                days_low=f.days_low,
                days_high=f.days_high,
            )
            for f in record.faults
        ),
        counters=tuple(sorted((name, int(value)) for name, value in record.counters.items())),
        series=ordered,
        history_hours=history_hours,
        min_health=min((p.health for p in ordered), default=None),
        max_score=max((p.anomaly_score for p in ordered), default=None),
    )
    what = SUBSYSTEM_WORDS.get(alert.subsystem, f"the {alert.subsystem}")
    if alert.kind == "fault" and trend.days is not None:
        when = days_words(trend.days, trend.days_low, trend.days_high)
        summary = f"Fault {alert.code} on {what}: failure expected {when}"
    elif alert.kind == "fault":
        summary = f"Fault {alert.code} on {what}: time to failure not estimated yet"
    elif alert.kind == "low_health":
        summary = f"Health of {what} near the failure threshold: {alert.health or 0.0:.2f} (1 = as new)"
    else:
        summary = (
            f"Unusual readings from {what}: anomaly score {alert.anomaly_score or 0.0:.2f} "
            "(1 = alert level), no fault named yet"
        )
    if trigger == "escalated" and previous_priority:
        summary += f"; escalated from {previous_priority}"
    return Report(
        report_id=report_id(record.vin, alert.code, record.seq, record.window_end_ms, trigger),
        alert_id=alert_id,
        fleet=fleet,
        vin=record.vin,
        code=alert.code,
        kind=alert.kind,
        subsystem=alert.subsystem,
        priority=alert.priority,
        trigger=trigger,
        previous_priority=previous_priority if trigger == "escalated" else None,
        summary=summary,
        reason=alert.reason,
        created_at=created_at.astimezone(UTC),
        published_at=end,
        received_at=received_at.astimezone(UTC),
        evidence=evidence,
        trend=trend,
        causes=tuple(RankedCause(code=code, probability=float(p)) for code, p in causes),
        checks=checks_for(alert),
        parts=parts,
        parts_are_candidates=candidates,
        centers=center_choices(
            centers, home=contact.home_center, parts=parts, stock=stock or {}, slots=slots or {}
        ),
        contact=contact,
    )


# ---- the JSON form


def to_dict(report: Report) -> dict[str, Any]:
    """The report as JSON-ready values: times as ISO 8601 text, tuples as lists."""
    body = _plain(report)
    assert isinstance(body, dict)
    body["format"] = REPORT_FORMAT
    return body


@functools.cache
def _names(kind: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(kind))


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {name: _plain(getattr(value, name)) for name in _names(type(value))}
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def from_dict(body: Mapping[str, Any]) -> Report:
    """A report from its JSON form; DecodeError for a body that is not one."""
    if body.get("format") != REPORT_FORMAT:
        raise DecodeError(f"report format {body.get('format')!r} is not {REPORT_FORMAT}")
    try:
        report = _build(Report, body)
    except (KeyError, TypeError, ValueError) as exc:
        raise DecodeError(f"not a diagnosis report: {exc}") from exc
    assert isinstance(report, Report)
    return report


def _build(kind: Any, value: Any) -> Any:
    origin = typing.get_origin(kind)
    if dataclasses.is_dataclass(kind) and isinstance(kind, type):
        hints = typing.get_type_hints(kind)
        fields = {
            f.name: _build(hints[f.name], value[f.name]) for f in dataclasses.fields(kind) if f.name in value
        }
        return kind(**fields)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        if value is None:
            return None
        return _build(options[0], value)
    if origin is tuple:
        args = typing.get_args(kind)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_build(args[0], v) for v in value)
        return tuple(_build(a, v) for a, v in zip(args, value, strict=True))
    if origin is typing.Literal:
        if value not in typing.get_args(kind):
            raise ValueError(f"{value!r} is not one of {typing.get_args(kind)}")
        return value
    if kind is datetime:
        return datetime.fromisoformat(value).astimezone(UTC)
    if kind is float:
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise TypeError(f"{value!r} is not a number")
        return float(value)
    if kind in (int, str, bool):
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise TypeError(f"{value!r} is not {kind.__name__}")
        return value
    raise TypeError(f"cannot read {kind!r}")
