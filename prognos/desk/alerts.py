"""The fleet's alerts in the desk: the analytics job's latest snapshot (docs/analytics.md, the
`alert` measurement) brought into the desk's `alert` table, so a customer whose car raises a real
alert gets its risk tag (docs/desk.md, "Alerts from the fleet").

`decide` is pure: the snapshot's alerts and the desk's fleet alerts in, the rows to insert,
update and clear out. `sync_alerts` applies them in one transaction. A fleet alert's id comes
from its VIN and code (`alert_id`), so the same alert in the next snapshot is the same row, and
syncing one snapshot twice changes nothing. Alerts the desk holds from elsewhere (the seed's,
ids without FLEET_PREFIX) are never touched.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, and_, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from prognos.cloud.analytics.alerts import days_text
from prognos.cloud.analytics.common import DEFAULT_SETTINGS, FAULT_WORDS, SUBSYSTEM_WORDS
from prognos.cloud.analytics.fleet_health import ACT_HEALTH, WATCH_HEALTH, WATCH_SCORE
from prognos.desk import schema
from prognos.desk.customers import SEVERITY_ORDER
from prognos.desk.store import StoreError, transaction
from prognos.errors import ConfigError

log = logging.getLogger(__name__)

FLEET_PREFIX = "FLEET-"  # the ids of the alerts this module owns
VIN_CHARS = 17  # the desk's vin column (schema.vehicle, schema.alert)
DIGEST_BYTES = 6  # 12 hex characters: FLEET- + VIN + - + 12 <= schema.ID
CHUNK = 500  # ids or VINs per IN (...) query

# The alert's own priority (docs/analytics.md, "Alert priorities"): P1 holds the act band's
# conditions for that alert, P2 the watch band's, P3 a drift that is still healthy. The `band`
# field is the vehicle's (its worst subsystem), so it only serves when a point lacks a priority.
PRIORITY_SEVERITY = {"P1": "critical", "P2": "warning", "P3": "info"}
BAND_SEVERITY = {"act": "critical", "watch": "warning", "healthy": "info"}

# What a classified cause is, as the summary names it ("likely cause: worn brake pads (82 %)").
CAUSE_WORDS: dict[str, str] = {
    "battery.module_temperature_drift": "a battery module's temperature drifting",
    "tires.pressure_loss": "a slow tire leak",
    "brakes.pad_wear": "worn brake pads",
    "bearings.wheel_bearing_wear": "a worn wheel bearing",
    "motor.noise": "a drive motor bearing or winding fault",
}
LIKELY = 0.5  # a cause at least this probable is "likely", a less probable one "possible"


@dataclass(frozen=True, kw_only=True, slots=True)
class FleetAlert:
    """One `alert` point of an analytics snapshot: what the desk takes from it."""

    vin: str
    code: str  # a fault code or SUBSYSTEM.low_health | .anomaly | .drift
    priority: str | None = None  # P1 | P2 | P3
    kind: str | None = None  # fault | low_health | anomaly | drift
    band: str | None = None  # the vehicle's band: act | watch | healthy
    rank: int | None = None  # 1 = most urgent in the snapshot
    days_left: float | None = None  # to the predicted failure, from the snapshot's time
    days_low_left: float | None = None  # the 80 % interval's ends
    days_high_left: float | None = None
    cause_code: str | None = None  # the fault's classified cause, its probability 0-1
    cause_probability: float | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class DeskAlert:
    """A row of the desk's `alert` table."""

    alert_id: str
    vin: str
    code: str
    severity: str  # critical | warning | info
    summary: str
    raised_at: datetime
    cleared_at: datetime | None = None

    def row(self) -> dict[str, object]:
        return {
            "alert_id": self.alert_id,
            "vin": self.vin,
            "code": self.code,
            "severity": self.severity,
            "summary": self.summary,
            "raised_at": self.raised_at,
            "cleared_at": self.cleared_at,
        }


@dataclass(frozen=True, kw_only=True)
class AlertChanges:
    """What one sync does: rows to insert, rows to write again whole (a changed severity or
    summary, or an alert raised again after it cleared), rows to clear."""

    at: datetime  # the snapshot's time
    inserts: tuple[DeskAlert, ...] = ()
    updates: tuple[DeskAlert, ...] = ()
    clears: tuple[DeskAlert, ...] = ()  # cleared_at = at
    reopened: int = 0  # of the updates, alerts raised again
    open: int = 0  # fleet alerts open in the desk afterwards
    not_linked: int = 0  # of those, on a VIN no customer of the desk owns
    left_out: tuple[FleetAlert, ...] = ()  # alerts whose VIN or code the desk's columns cannot hold

    @property
    def new(self) -> int:
        return len(self.inserts) + self.reopened

    @property
    def changed(self) -> int:
        return len(self.updates) - self.reopened

    @property
    def cleared(self) -> int:
        return len(self.clears)

    @property
    def empty(self) -> bool:
        return not (self.inserts or self.updates or self.clears)

    def text(self) -> str:
        """E.g. `3 new, 1 changed, 2 cleared (14 open); 1 not linked to a customer`."""
        text = f"{self.new} new, {self.changed} changed, {self.cleared} cleared ({self.open} open)"
        if self.not_linked:
            text += f"; {self.not_linked} not linked to a customer"
        if self.left_out:
            text += (
                f"; {len(self.left_out)} left out (VIN over {VIN_CHARS} or code over {schema.ID} characters)"
            )
        return text


def alert_id(vin: str, code: str) -> str:
    """The desk's id of the fleet alert `code` on `vin`: FLEET-VIN-DIGEST, the same in every
    snapshot, at most schema.ID characters for a VIN of up to VIN_CHARS."""
    digest = hashlib.blake2b(f"{vin}\n{code}".encode(), digest_size=DIGEST_BYTES).hexdigest()
    return f"{FLEET_PREFIX}{vin}-{digest}"


def severity_of(alert: FleetAlert) -> str:
    """P1 critical, P2 warning, P3 info; without a priority, by the vehicle's band."""
    if alert.priority in PRIORITY_SEVERITY:
        return PRIORITY_SEVERITY[alert.priority]
    return BAND_SEVERITY.get(alert.band or "", "info")


def _when(alert: FleetAlert) -> str:
    if alert.days_left is None:
        return "time to failure not estimated yet"
    low, high = alert.days_low_left, alert.days_high_left
    return days_text(alert.days_left, math.nan if low is None else low, math.nan if high is None else high)


def _cause(alert: FleetAlert) -> str | None:
    """E.g. `likely cause: worn brake pads (82 %)`; None without a classified cause. A
    probability shows as whole percent, at most 99: a classifier is never certain."""
    if alert.cause_code is None or alert.cause_probability is None:
        return None
    words = CAUSE_WORDS.get(alert.cause_code, alert.cause_code)
    percent = min(max(round(100 * alert.cause_probability), 0), 99)
    return f"{'likely' if alert.cause_probability >= LIKELY else 'possible'} cause: {words} ({percent} %)"


def summary_of(alert: FleetAlert) -> str:
    """The alert in words: the fault, its classified cause when the gateway named one, and,
    when the snapshot estimates it, the days to failure."""
    subsystem = alert.code.split(".", 1)[0]
    what = SUBSYSTEM_WORDS.get(subsystem, f"the {subsystem}")
    scale = "(1 = as new, 0 = failure threshold)"
    kind = alert.kind or alert.code.rsplit(".", 1)[-1]
    if kind == "low_health" and alert.priority == "P1":
        text = f"{what} near failure: health below {ACT_HEALTH} {scale}"
    elif kind == "low_health":
        text = f"{what} wearing: health below {WATCH_HEALTH} {scale}"
    elif kind == "anomaly":
        text = (
            f"unusual readings from {what}: anomaly score at or above {WATCH_SCORE} "
            "(1 = alert level), no fault named yet"
        )
    elif kind == "drift":
        drop = DEFAULT_SETTINGS.drift_drop
        text = f"health of {what} falling: down {drop} or more over the analytics window {scale}"
    else:
        words = FAULT_WORDS.get(alert.code, f"fault {alert.code} on {what}")
        cause = _cause(alert)
        text = f"{words}; {_when(alert)}" if cause is None else f"{words}; {cause}; {_when(alert)}"
    text = text[:1].upper() + text[1:]
    return text if len(text) <= schema.NAME else text[: schema.NAME - 3] + "..."


def fits(alert: FleetAlert) -> bool:
    """Whether the desk's columns hold the alert's VIN and code."""
    return 0 < len(alert.vin) <= VIN_CHARS and 0 < len(alert.code) <= schema.ID


def desired(alerts: Iterable[FleetAlert], *, at: datetime) -> dict[str, DeskAlert]:
    """The desk rows the snapshot's alerts call for, by id; of two alerts with the same VIN and
    code (two fleets), the more severe, then the more urgent."""
    chosen: dict[str, tuple[tuple[int, float], DeskAlert]] = {}
    for alert in alerts:
        row = DeskAlert(
            alert_id=alert_id(alert.vin, alert.code),
            vin=alert.vin,
            code=alert.code,
            severity=severity_of(alert),
            summary=summary_of(alert),
            raised_at=at,
        )
        order = (SEVERITY_ORDER.get(row.severity, 3), math.inf if alert.rank is None else float(alert.rank))
        if row.alert_id not in chosen or order < chosen[row.alert_id][0]:
            chosen[row.alert_id] = (order, row)
    return {key: row for key, (_, row) in chosen.items()}


def decide(
    alerts: Iterable[FleetAlert],
    stored: Iterable[DeskAlert],
    *,
    at: datetime,
    known_vins: Collection[str],
) -> AlertChanges:
    """The changes that bring the desk's fleet alerts to the snapshot at `at`.

    stored: the desk's fleet alerts that are open, and any cleared ones with the id of a current
    alert (rows without FLEET_PREFIX are ignored). A current alert not stored is inserted; one
    stored open is updated when its severity or summary changed; one stored cleared is raised
    again (raised_at = at, cleared_at empty). An open one the snapshot no longer has is cleared
    at `at`. known_vins: the VINs the desk has a vehicle for (the others are counted as not
    linked to a customer)."""
    alerts = list(alerts)
    left_out = tuple(a for a in alerts if not fits(a))
    wanted = desired((a for a in alerts if fits(a)), at=at)
    rows = {row.alert_id: row for row in stored if row.alert_id.startswith(FLEET_PREFIX)}
    inserts: list[DeskAlert] = []
    updates: list[DeskAlert] = []
    reopened = 0
    for key, row in sorted(wanted.items()):
        before = rows.get(key)
        if before is None:
            inserts.append(row)
        elif before.cleared_at is not None:
            updates.append(row)
            reopened += 1
        elif (before.severity, before.summary) != (row.severity, row.summary):
            updates.append(replace(row, raised_at=before.raised_at))
    clears = tuple(
        replace(row, cleared_at=at)
        for key, row in sorted(rows.items())
        if row.cleared_at is None and key not in wanted
    )
    return AlertChanges(
        at=at,
        inserts=tuple(inserts),
        updates=tuple(updates),
        clears=clears,
        reopened=reopened,
        open=len(wanted),
        not_linked=sum(1 for row in wanted.values() if row.vin not in known_vins),
        left_out=left_out,
    )


def _number(value: object) -> float | None:
    """A finite number, else None (a field the point lacks comes back as NaN or None)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def fleet_alerts(rows: Iterable[Mapping[str, object]]) -> list[FleetAlert]:
    """The snapshot's alert rows (prognos.cloud.analytics.reading.snapshot_alerts, as records)
    as FleetAlerts; rows without a VIN or code are skipped."""
    out = []
    for row in rows:
        vin, code = _text(row.get("vin")), _text(row.get("code"))
        if vin is None or code is None:
            continue
        rank = _number(row.get("rank"))
        out.append(
            FleetAlert(
                vin=vin,
                code=code,
                priority=_text(row.get("priority")),
                kind=_text(row.get("kind")),
                band=_text(row.get("band")),
                rank=None if rank is None else int(rank),
                days_left=_number(row.get("days_left")),
                days_low_left=_number(row.get("days_low_left")),
                days_high_left=_number(row.get("days_high_left")),
                cause_code=_text(row.get("cause_code")),
                cause_probability=_number(row.get("cause_probability")),
            )
        )
    return out


# ---- the store


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def _stored(connection: Connection, ids: Sequence[str]) -> list[DeskAlert]:
    """The desk's open fleet alerts and the rows of `ids`."""
    alert = schema.alert
    found = list(
        connection.execute(
            select(alert).where(and_(alert.c.alert_id.startswith(FLEET_PREFIX), alert.c.cleared_at.is_(None)))
        )
    )
    seen = {row.alert_id for row in found}
    for chunk in _chunks([key for key in ids if key not in seen]):
        found.extend(connection.execute(select(alert).where(alert.c.alert_id.in_(chunk))))
    return [
        DeskAlert(
            alert_id=row.alert_id,
            vin=row.vin,
            code=row.code,
            severity=row.severity,
            summary=row.summary,
            raised_at=_utc(row.raised_at),
            cleared_at=None if row.cleared_at is None else _utc(row.cleared_at),
        )
        for row in found
    ]


def _known_vins(connection: Connection, vins: Sequence[str]) -> set[str]:
    vehicle = schema.vehicle
    known: set[str] = set()
    for chunk in _chunks(sorted(set(vins))):
        known.update(connection.execute(select(vehicle.c.vin).where(vehicle.c.vin.in_(chunk))).scalars())
    return known


def _apply(connection: Connection, alerts: Sequence[FleetAlert], at: datetime) -> AlertChanges:
    ids = sorted({alert_id(a.vin, a.code) for a in alerts if fits(a)})
    changes = decide(
        alerts,
        _stored(connection, ids),
        at=at,
        known_vins=_known_vins(connection, [a.vin for a in alerts if fits(a)]),
    )
    alert = schema.alert
    if changes.inserts:
        connection.execute(insert(alert), [row.row() for row in changes.inserts])
    rewritten = [*changes.updates, *changes.clears]
    if rewritten:
        connection.execute(
            update(alert)
            .where(alert.c.alert_id == bindparam("key"))
            .values(
                severity=bindparam("new_severity"),
                summary=bindparam("new_summary"),
                raised_at=bindparam("new_raised_at"),
                cleared_at=bindparam("new_cleared_at"),
            ),
            [
                {
                    "key": row.alert_id,
                    "new_severity": row.severity,
                    "new_summary": row.summary,
                    "new_raised_at": row.raised_at,
                    "new_cleared_at": row.cleared_at,
                }
                for row in rewritten
            ],
        )
    return changes


def sync_alerts(engine: Engine, alerts: Iterable[FleetAlert], *, at: datetime) -> AlertChanges:
    """Bring the desk's fleet alerts to the snapshot taken at `at` (aware UTC), in one
    transaction; syncing the same snapshot again changes nothing. A sync running at the same
    time that inserted an alert first makes this one read again and retry once."""
    if at.tzinfo is None:
        raise ConfigError(f"the snapshot time {at.isoformat()} has no time zone")
    at, current = at.astimezone(UTC), list(alerts)
    try:
        changes = _synced(engine, current, at)
    except IntegrityError:
        log.info("another sync wrote the same alerts first; reading them again")
        try:
            changes = _synced(engine, current, at)
        except IntegrityError as exc:
            raise StoreError(f"the desk's alerts changed while syncing them: {exc.orig}") from exc
    if changes.left_out:
        log.warning(
            "%d alerts left out: the desk holds VINs of up to %d and codes of up to %d characters",
            len(changes.left_out),
            VIN_CHARS,
            schema.ID,
        )
    return changes


def _synced(engine: Engine, alerts: Sequence[FleetAlert], at: datetime) -> AlertChanges:
    with transaction(engine) as connection:
        return _apply(connection, alerts, at)
