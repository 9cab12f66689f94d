"""The report worker's store, as an interface: the alert states it decides by, what the service
desk knows for a report, the reports with their notifications, and the notifications' outbox.
prognos.desk.reports.DeskReports implements it on the desk's database; tests may use a fake."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from prognos.cloud.dealers.reassign import ServiceCenter
from prognos.cloud.reports.alerting import AlertState, Decision
from prognos.cloud.reports.report import Contact, Report

Key = tuple[str, str]  # vin, code


@dataclass(frozen=True)
class DeskContext:
    """What the service desk knows for a report: the owner (None: not a desk customer), the
    home center, the capable centers ranked (report.rank_centers) and their next free slots."""

    contact: Contact | None
    home_center: str | None
    centers: Sequence[tuple[ServiceCenter, float | None]]
    slots: Mapping[str, Sequence[datetime]]


@dataclass(frozen=True, kw_only=True)
class Notification:
    notification_id: int
    report_id: str
    channel: str  # webhook | email
    target: str  # the URL, or the recipients with commas between
    attempts: int  # made so far


class ReportStore(Protocol):
    """Where reports, alert states and notifications live (prognos.desk.reports.DeskReports).
    Methods raise TransientError (or a subclass of PrognosError the worker retries) when the
    store cannot be reached."""

    def alert_id(self, vin: str, code: str) -> str: ...

    def states(self, keys: Collection[Key]) -> dict[Key, AlertState]: ...

    def touch(self, seen: Mapping[Key, datetime]) -> None:
        """Move each alert's last-seen time on to the given time (never back)."""

    def context(
        self, vin: str, subsystem: str, *, home: str | None, now: datetime, centers: int, slots: int
    ) -> DeskContext: ...

    def save(
        self,
        report: Report,
        body: dict[str, object],
        html: str,
        decision: Decision,
        channels: Sequence[tuple[str, str]],
    ) -> bool:
        """Store the report, the alert's new state and a pending notification per channel
        (channel, target), in one transaction; False (nothing written) when the stored state is
        not (or no longer) the version of decision.previous: another worker decided first."""

    def due_notifications(
        self, *, now: datetime, channels: Collection[str], limit: int
    ) -> list[Notification]: ...

    def claim(self, notification: Notification, *, now: datetime, lease: timedelta) -> bool:
        """Take the notification for one attempt (attempts + 1, not due again before the lease
        ends); False when another worker took it first."""

    def delivered(self, notification_id: int, *, at: datetime) -> None: ...

    def failed(self, notification_id: int, *, error: str, retry_at: datetime | None) -> None:
        """Record a failed attempt; retry_at None: give up (status failed)."""

    def stored_report(self, report_id: str) -> tuple[dict[str, object], str] | None:
        """The report's JSON form and HTML."""
