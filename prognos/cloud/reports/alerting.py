"""Which alerts one diagnostic record raises, and whether each is new, more urgent than what
was reported, or neither. Pure: the analytics job's rules (prognos.cloud.analytics.alerts)
applied to a single record, and the decision against the alert's stored state.

An alert (vehicle and code) is open while the vehicle's records keep carrying it. It is
*raised* by the first record that carries it, and again by a record that carries it after
`reopen_after` without any record that did; it is *escalated* by a record that gives it a more
urgent priority than any reported since it was raised. Any other record only moves its
last-seen time on. Times are record times (window ends), so replaying a backlog decides as
the live stream would have.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from prognos.cloud.analytics.alerts import (
    PRIORITIES,
    alert_code,
    fault_condition,
    more_urgent,
    recommended_action,
    subsystem_condition,
)
from prognos.cloud.analytics.common import DEFAULT_SETTINGS, AnalyticsSettings
from prognos.errors import ConfigError
from prognos.record import DiagnosticRecord

Trigger = Literal["raised", "escalated"]


@dataclass(frozen=True, kw_only=True)
class RecordAlert:
    """One alert of one record: a fault it names, or a subsystem condition without a fault."""

    vin: str
    code: str
    kind: str  # fault | low_health | anomaly
    priority: str  # P1 | P2
    subsystem: str
    reason: str
    action: str
    health: float | None = None
    anomaly_score: float | None = None
    confidence: float | None = None  # of a fault
    days_to_threshold: float | None = None  # from the record's window end
    days_low: float | None = None
    days_high: float | None = None


@dataclass(frozen=True, kw_only=True)
class AlertState:
    """What the store keeps per vehicle and code: the priority reported since the alert was
    (last) raised, when that was, when a record last carried it, and the report it got."""

    vin: str
    code: str
    priority: str
    opened_at: datetime
    last_seen_at: datetime
    report_id: str | None = None
    version: int = 1  # raised by every raise and escalation: concurrent workers detect each other


@dataclass(frozen=True)
class Decision:
    trigger: Trigger | None  # None: the alert stays as it was reported
    state: AlertState  # after this record
    previous: AlertState | None  # as read from the store


@dataclass(frozen=True, kw_only=True)
class TriggerSettings:
    reopen_after: timedelta = timedelta(hours=24)
    min_priority: str = "P2"  # alerts less urgent than this raise no report

    def __post_init__(self) -> None:
        if self.min_priority not in PRIORITIES:
            raise ConfigError(f"min_priority {self.min_priority!r} is not one of {', '.join(PRIORITIES)}")
        if self.reopen_after <= timedelta(0):
            raise ConfigError(f"reopen_after must be positive, not {self.reopen_after}")


DEFAULT_TRIGGERS = TriggerSettings()


def _number(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _known(value: float) -> float | None:
    return value if math.isfinite(value) else None


def record_alerts(
    record: DiagnosticRecord, *, settings: AnalyticsSettings = DEFAULT_SETTINGS
) -> list[RecordAlert]:
    """The record's alerts, as the analytics job would rank them if this were the vehicle's
    latest record: one per fault code it names (the most confident hypothesis of a code), then
    one per subsystem without a fault whose health or anomaly score crosses a limit. Drift needs
    a baseline over days and is left to the analytics job."""
    strongest: dict[str, float] = {}
    chosen = {}
    for fault in record.faults:
        if fault.code not in strongest or fault.confidence > strongest[fault.code]:
            strongest[fault.code] = fault.confidence
            chosen[fault.code] = fault
    alerts: list[RecordAlert] = []
    covered: set[str] = set()
    for code, fault in chosen.items():
        subsystem = code.split(".", 1)[0]
        covered.add(subsystem)
        state = record.subsystems.get(subsystem)
        health = state.health if state is not None else math.nan
        days, low, high = (
            _number(fault.days_to_threshold),
            _number(fault.days_low),
            _number(fault.days_high),
        )
        first = record.causes[0] if record.causes else None
        condition = fault_condition(
            code,
            fault.confidence,
            days=days,
            low=low,
            high=high,
            health=health,
            cause=(first.code, first.probability) if first is not None else None,
            settings=settings,
        )
        alerts.append(
            RecordAlert(
                vin=record.vin,
                code=code,
                kind=condition.kind,
                priority=condition.priority,
                subsystem=subsystem,
                reason=condition.reason,
                action=recommended_action(code, condition.kind, condition.priority),
                health=_known(health),
                anomaly_score=state.anomaly_score if state is not None else None,
                confidence=fault.confidence,
                days_to_threshold=_known(days),
                days_low=_known(low),
                days_high=_known(high),
            )
        )
    for subsystem, state in sorted(record.subsystems.items()):
        if subsystem in covered:
            continue
        found = subsystem_condition(subsystem, state.health, state.anomaly_score, settings=settings)
        if found is None:
            continue
        code = alert_code(subsystem, found.kind)
        alerts.append(
            RecordAlert(
                vin=record.vin,
                code=code,
                kind=found.kind,
                priority=found.priority,
                subsystem=subsystem,
                reason=found.reason,
                action=recommended_action(code, found.kind, found.priority),
                health=state.health,
                anomaly_score=state.anomaly_score,
            )
        )
    return alerts


def reportable(
    alerts: Iterable[RecordAlert], settings: TriggerSettings = DEFAULT_TRIGGERS
) -> list[RecordAlert]:
    """The alerts at least as urgent as settings.min_priority."""
    return [
        a
        for a in alerts
        if a.priority == settings.min_priority or more_urgent(a.priority, settings.min_priority)
    ]


def decide(
    state: AlertState | None,
    alert: RecordAlert,
    at: datetime,
    settings: TriggerSettings = DEFAULT_TRIGGERS,
) -> Decision:
    """What a record of time `at` carrying `alert` does to the alert's stored `state`."""
    if state is None or at - state.last_seen_at >= settings.reopen_after:
        raised = AlertState(
            vin=alert.vin,
            code=alert.code,
            priority=alert.priority,
            opened_at=at,
            last_seen_at=at,
            version=1 if state is None else state.version + 1,
        )
        return Decision("raised", raised, state)
    seen = max(state.last_seen_at, at)
    if more_urgent(alert.priority, state.priority):
        escalated = replace(state, priority=alert.priority, last_seen_at=seen, version=state.version + 1)
        return Decision("escalated", escalated, state)
    return Decision(None, replace(state, last_seen_at=seen), state)
