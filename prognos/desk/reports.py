"""Diagnosis reports in the service desk (docs/desk.md, "Diagnosis reports"): the store the
report worker (prognos.cloud.reports.worker) writes through, and the reads of the `prognos desk
reports` commands and the vehicle page.

`DeskReports` is the worker's ReportStore: the alert states it decides raise or escalate by,
what the desk knows for a report (the owner, the capable centers ranked from the vehicle's home
center, their next free slots by the booking rules), the report stored with its alert's new
state and its notifications in one transaction, and the notifications' outbox. A database that
cannot be reached raises ReportStoreUnavailable, a TransientError: the worker waits and retries.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, insert, select, tuple_, update
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from prognos.cloud.dealers.reassign import ServiceCenter
from prognos.cloud.reports.alerting import AlertState, Decision
from prognos.cloud.reports.report import Contact, Report, rank_centers
from prognos.cloud.reports.store import DeskContext, Notification, Outcome
from prognos.desk import schema
from prognos.desk.alerts import alert_id as desk_alert_id
from prognos.desk.booking import center_of, next_slots
from prognos.desk.store import StoreError, transaction
from prognos.errors import ConfigError, TransientError

CHUNK = 500  # keys per IN (...) list
CENTERS_CACHE_S = 60.0  # service centers and dealer states change with imports, not per report
SLOTS_CACHE_S = 15.0  # a center's free slots, read again after this: a burst of alerts reads them once
STATUSES = ("pending", "sent", "failed")


class ReportStoreUnavailable(StoreError, TransientError):
    """The desk's database cannot be reached: retry later."""


class UnknownReport(ConfigError, LookupError):
    """No report has this id."""


@contextmanager
def _reachable() -> Iterator[None]:
    try:
        yield
    except ReportStoreUnavailable:
        raise
    except StoreError as exc:
        raise ReportStoreUnavailable(str(exc)) from exc
    except OperationalError as exc:
        raise ReportStoreUnavailable(f"the desk database failed: {exc.orig}") from exc
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise ReportStoreUnavailable(f"the desk database connection was lost: {exc.orig}") from exc
        raise


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _maybe_utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else _utc(moment)


class _Lost(Exception):
    """Another worker changed the alert's state first."""


class DeskReports:
    """The report worker's store on the desk's database."""

    def __init__(self, engine: Engine, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.engine = engine
        self._clock = clock
        self._lock = threading.Lock()
        self._centers: tuple[float, list[ServiceCenter], frozenset[str]] | None = None
        self._slots: dict[tuple[str, int], tuple[float, list[datetime]]] = {}

    def alert_id(self, vin: str, code: str) -> str:
        return desk_alert_id(vin, code)

    def states(self, keys: Collection[tuple[str, str]]) -> dict[tuple[str, str], AlertState]:
        state = schema.report_state
        ordered = sorted(keys)
        found: dict[tuple[str, str], AlertState] = {}
        with _reachable(), self.engine.connect() as connection:
            for start in range(0, len(ordered), CHUNK):
                chunk = ordered[start : start + CHUNK]
                for row in connection.execute(
                    select(state).where(tuple_(state.c.vin, state.c.code).in_(chunk))
                ):
                    found[(row.vin, row.code)] = AlertState(
                        vin=row.vin,
                        code=row.code,
                        priority=row.priority,
                        opened_at=_utc(row.opened_at),
                        last_seen_at=_utc(row.last_seen_at),
                        report_id=row.report_id,
                        version=row.version,
                    )
        return found

    def touch(self, seen: Mapping[tuple[str, str], datetime]) -> None:
        if not seen:
            return
        state = schema.report_state
        statement = (
            update(state)
            .where(
                state.c.vin == bindparam("key_vin"),
                state.c.code == bindparam("key_code"),
                state.c.last_seen_at < bindparam("seen"),
            )
            .values(last_seen_at=bindparam("seen"))
        )
        rows = [{"key_vin": vin, "key_code": code, "seen": at} for (vin, code), at in sorted(seen.items())]
        with _reachable(), transaction(self.engine) as connection:
            connection.execute(statement, rows)

    def _center_table(self, connection: Connection) -> tuple[list[ServiceCenter], frozenset[str]]:
        with self._lock:
            if self._centers is not None and self._clock() - self._centers[0] < CENTERS_CACHE_S:
                return self._centers[1], self._centers[2]
        centers = [center_of(row) for row in connection.execute(select(schema.service_center))]
        closed = frozenset(
            connection.execute(
                select(schema.dealer.c.dealer_id).where(schema.dealer.c.status == "failed")
            ).scalars()
        )
        with self._lock:
            self._centers = (self._clock(), centers, closed)
        return centers, closed

    def context(
        self, vin: str, subsystem: str, *, home: str | None, now: datetime, centers: int, slots: int
    ) -> DeskContext:
        """The owner of `vin` (None when no desk customer owns it), the home center (theirs, else
        `home`), the `centers` nearest capable centers and each one's next `slots` free slots."""
        customer, vehicle = schema.customer, schema.vehicle
        with _reachable(), self.engine.connect() as connection:
            row = connection.execute(
                select(
                    customer.c.customer_id,
                    customer.c.name,
                    customer.c.email,
                    customer.c.phone,
                    customer.c.home_center,
                )
                .select_from(vehicle.join(customer, customer.c.customer_id == vehicle.c.customer_id))
                .where(vehicle.c.vin == vin)
            ).first()
            home_center = (row.home_center if row is not None else None) or home
            contact = (
                Contact(
                    source="desk",
                    customer_id=row.customer_id,
                    name=row.name,
                    email=row.email,
                    phone=row.phone,
                    home_center=home_center,
                )
                if row is not None
                else None
            )
            table, closed = self._center_table(connection)
            ranked = rank_centers(
                table, subsystem=subsystem, home=home_center, closed_dealers=closed, limit=centers
            )
            free = {center.id: self._free_slots(connection, center.id, now, slots) for center, _ in ranked}
        return DeskContext(contact=contact, home_center=home_center, centers=ranked, slots=free)

    def _free_slots(
        self, connection: Connection, center_id: str, now: datetime, count: int
    ) -> list[datetime]:
        """The center's next free slots (prognos.desk.booking.next_slots), read at most
        SLOTS_CACHE_S ago; a slot booked since is refused when someone books it, never taken twice."""
        key = (center_id, count)
        with self._lock:
            cached = self._slots.get(key)
        if cached is not None and self._clock() - cached[0] < SLOTS_CACHE_S:
            return cached[1]
        try:
            found = [s.start for s in next_slots(connection, center_id, now=now, count=count)]
        except ConfigError:  # a center or dealer removed since the centers were read
            found = []
        with self._lock:
            self._slots[key] = (self._clock(), found)
        return found

    def save(
        self,
        report: Report,
        body: dict[str, object],
        html: str,
        decision: Decision,
        channels: Sequence[tuple[str, str]],
    ) -> bool:
        state, previous = schema.report_state, decision.previous
        after = decision.state
        values = {
            "priority": after.priority,
            "opened_at": after.opened_at,
            "last_seen_at": after.last_seen_at,
            "report_id": report.report_id,
            "version": after.version,
        }
        try:
            with _reachable(), transaction(self.engine) as connection:
                if previous is None:
                    connection.execute(insert(state).values(vin=after.vin, code=after.code, **values))
                else:
                    changed = connection.execute(
                        update(state)
                        .where(
                            state.c.vin == after.vin,
                            state.c.code == after.code,
                            state.c.version == previous.version,
                        )
                        .values(**values)
                    )
                    if changed.rowcount != 1:
                        raise _Lost()
                connection.execute(
                    insert(schema.diagnosis_report).values(
                        report_id=report.report_id,
                        alert_id=report.alert_id,
                        vin=report.vin,
                        code=report.code,
                        priority=report.priority,
                        event=report.trigger,
                        center_id=report.center_id,
                        summary=report.summary[: schema.NAME],
                        created_at=report.created_at,
                        published_at=report.published_at,
                        received_at=report.received_at,
                        body=body,
                        html=html,
                    )
                )
                if channels:
                    connection.execute(
                        insert(schema.report_notification),
                        [
                            {
                                "report_id": report.report_id,
                                "channel": channel,
                                "target": target,
                                "status": "pending",
                                "attempts": 0,
                                "next_attempt_at": report.created_at,
                                "last_error": "",
                                "created_at": report.created_at,
                            }
                            for channel, target in channels
                        ],
                    )
        except (_Lost, IntegrityError):
            return False
        return True

    def claim_due(
        self, *, now: datetime, channels: Collection[str], limit: int, lease: timedelta
    ) -> list[Notification]:
        """One UPDATE takes the due rows that are still pending and due, marked with a token of
        this call, then they are read back by it: two workers never take the same row. The
        transaction writes first, so on SQLite it waits for the write lock instead of failing."""
        n = schema.report_notification
        token = uuid.uuid4().hex
        due = (n.c.status == "pending", n.c.next_attempt_at <= now, n.c.channel.in_(sorted(channels)))
        first = (
            select(n.c.notification_id)
            .where(*due)
            .order_by(n.c.next_attempt_at, n.c.notification_id)
            .limit(limit)
            .scalar_subquery()
        )
        with _reachable(), transaction(self.engine) as connection:
            connection.execute(
                update(n)
                .where(n.c.notification_id.in_(first), *due)
                .values(claim=token, attempts=n.c.attempts + 1, next_attempt_at=now + lease)
            )
            rows = connection.execute(select(n).where(n.c.claim == token).order_by(n.c.notification_id))
            return [
                Notification(
                    notification_id=row.notification_id,
                    report_id=row.report_id,
                    channel=row.channel,
                    target=row.target,
                    attempts=row.attempts,
                )
                for row in rows
            ]

    def finish(self, outcomes: Sequence[Outcome]) -> None:
        n = schema.report_notification
        sent = [{"key": o.notification_id, "at": o.sent_at} for o in outcomes if o.sent_at is not None]
        again = [
            {"key": o.notification_id, "error": o.error[:2000], "at": o.retry_at}
            for o in outcomes
            if o.sent_at is None and o.retry_at is not None
        ]
        given_up = [
            {"key": o.notification_id, "error": o.error[:2000]}
            for o in outcomes
            if o.sent_at is None and o.retry_at is None
        ]
        row = n.c.notification_id == bindparam("key")
        with _reachable(), transaction(self.engine) as connection:
            if sent:
                connection.execute(
                    update(n).where(row).values(status="sent", sent_at=bindparam("at"), last_error=""), sent
                )
            if again:
                connection.execute(
                    update(n)
                    .where(row)
                    .values(next_attempt_at=bindparam("at"), last_error=bindparam("error")),
                    again,
                )
            if given_up:
                connection.execute(
                    update(n).where(row).values(status="failed", last_error=bindparam("error")), given_up
                )

    def stored_report(self, report_id: str) -> tuple[dict[str, object], str] | None:
        r = schema.diagnosis_report
        with _reachable(), self.engine.connect() as connection:
            row = connection.execute(select(r.c.body, r.c.html).where(r.c.report_id == report_id)).first()
        return None if row is None else (dict(row.body), str(row.html))


# ---- reads for the commands and the vehicle page


@dataclass(frozen=True, kw_only=True)
class StoredReport:
    report_id: str
    alert_id: str
    vin: str
    code: str
    priority: str
    event: str  # raised | escalated
    center_id: str | None
    summary: str
    created_at: datetime
    published_at: datetime
    received_at: datetime


@dataclass(frozen=True, kw_only=True)
class NotificationRow:
    notification_id: int
    channel: str
    target: str
    status: str  # pending | sent | failed
    attempts: int
    next_attempt_at: datetime
    last_error: str
    sent_at: datetime | None


@dataclass(frozen=True, kw_only=True)
class ReportDetail:
    report: StoredReport
    body: dict[str, Any]
    html: str
    notifications: tuple[NotificationRow, ...]


def _stored(row: Any) -> StoredReport:
    return StoredReport(
        report_id=row.report_id,
        alert_id=row.alert_id,
        vin=row.vin,
        code=row.code,
        priority=row.priority,
        event=row.event,
        center_id=row.center_id,
        summary=row.summary,
        created_at=_utc(row.created_at),
        published_at=_utc(row.published_at),
        received_at=_utc(row.received_at),
    )


_LISTED = tuple(c for c in schema.diagnosis_report.c if c.name not in ("body", "html"))


def list_reports(
    connection: Connection, *, vin: str | None = None, since: datetime | None = None, limit: int = 50
) -> list[StoredReport]:
    """Reports newest first; of one vehicle, or created at `since` or later."""
    r = schema.diagnosis_report
    query = select(*_LISTED)
    if vin is not None:
        query = query.where(r.c.vin == vin)
    if since is not None:
        query = query.where(r.c.created_at >= since)
    query = query.order_by(r.c.created_at.desc(), r.c.report_id).limit(limit)
    return [_stored(row) for row in connection.execute(query)]


def report_detail(connection: Connection, report_id: str) -> ReportDetail:
    """The report with its body, HTML and notifications; UnknownReport for an unknown id."""
    r, n = schema.diagnosis_report, schema.report_notification
    row = connection.execute(select(r).where(r.c.report_id == report_id)).first()
    if row is None:
        raise UnknownReport(f"no diagnosis report {report_id!r}; `prognos desk reports list` shows them")
    notifications = tuple(
        NotificationRow(
            notification_id=x.notification_id,
            channel=x.channel,
            target=x.target,
            status=x.status,
            attempts=x.attempts,
            next_attempt_at=_utc(x.next_attempt_at),
            last_error=x.last_error,
            sent_at=_maybe_utc(x.sent_at),
        )
        for x in connection.execute(select(n).where(n.c.report_id == report_id).order_by(n.c.notification_id))
    )
    return ReportDetail(
        report=_stored(row), body=dict(row.body), html=str(row.html), notifications=notifications
    )


def resend(engine: Engine, report_id: str, *, now: datetime) -> int:
    """Make the report's given-up notifications pending again, due now, with their attempts
    counted from 0; returns how many. UnknownReport for an unknown id."""
    r, n = schema.diagnosis_report, schema.report_notification
    with transaction(engine) as connection:
        if connection.execute(select(r.c.report_id).where(r.c.report_id == report_id)).first() is None:
            raise UnknownReport(f"no diagnosis report {report_id!r}; `prognos desk reports list` shows them")
        changed = connection.execute(
            update(n)
            .where(n.c.report_id == report_id, n.c.status == "failed")
            .values(status="pending", attempts=0, next_attempt_at=now)
        )
        return int(changed.rowcount)
