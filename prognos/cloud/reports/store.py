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
    attempts: int  # made so far, the one just claimed included


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """How one attempt to send a notification ended."""

    notification_id: int
    sent_at: datetime | None = None  # sent; None: failed
    error: str = ""
    retry_at: datetime | None = None  # failed: when to try again; None: given up


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

    def claim_due(
        self, *, now: datetime, channels: Collection[str], limit: int, lease: timedelta
    ) -> list[Notification]:
        """Take up to `limit` pending notifications of `channels` that are due at `now`, each
        for one more attempt: not due again before the lease ends, so another worker leaves
        them alone, and due again then if this one never says how the attempt ended."""

    def finish(self, outcomes: Sequence[Outcome]) -> None:
        """Record how the attempts ended: sent, failed (with the time of the next attempt), or
        given up (status failed), in one transaction."""

    def stored_report(self, report_id: str) -> tuple[dict[str, object], str] | None:
        """The report's JSON form and HTML."""
