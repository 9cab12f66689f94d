"""The service desk's queries and actions for the Customers, Complaints and This week pages.

The desk's database is the one `prognos desk` uses (prognos.ops.state.desk_url: PROGNOS_DESK_DB,
else the stack's PostgreSQL, else desk.db in PROGNOS_HOME). Reads are cached for a short while;
every action (a ticket opened or moved) clears the cache so the page shows it at once.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ParamSpec, TypeVar

import pandas as pd
import streamlit as st
from sqlalchemy import Engine, select
from sqlalchemy.engine import make_url

from prognos.dashboard.data import DataUnavailableError
from prognos.desk import complaints, customers, ledger, schema, week
from prognos.desk.booking import Booking, Slot, book, next_slots
from prognos.desk.customers import CustomerView, PriorityRow, SearchHit
from prognos.desk.reports import ReportDetail, list_reports, report_detail
from prognos.desk.store import StoreError, connect
from prognos.desk.tags import Settings
from prognos.desk.tickets import Ticket
from prognos.desk.week import Call, Due, Visit
from prognos.errors import ConfigError
from prognos.ops.state import default_home, desk_url

TTL_S = 30
P = ParamSpec("P")
T = TypeVar("T")


@st.cache_resource
def engine() -> Engine:
    try:
        return connect(desk_url(default_home()))
    except (StoreError, ConfigError) as exc:
        raise DataUnavailableError(f"the service desk's database: {exc}") from exc


def _reached(read: Callable[P, T]) -> Callable[P, T]:
    """A read whose store errors become DataUnavailableError (the page explains and stops).
    Outside st.cache_data, which keys its cache by the function it wraps."""

    @functools.wraps(read)
    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return read(*args, **kwargs)
        except StoreError as exc:
            raise DataUnavailableError(f"the service desk's database: {exc}") from exc

    return run


def now() -> datetime:
    return datetime.now(UTC)


@_reached
@st.cache_data(ttl=TTL_S, show_spinner="Ranking customers…")
def call_list(limit: int, expiry_days: int) -> list[PriorityRow]:
    settings = Settings(expiry_days=expiry_days)
    with engine().connect() as connection:
        return customers.priorities(connection, now=now(), settings=settings, limit=limit)


@_reached
@st.cache_data(ttl=TTL_S, show_spinner=False)
def search(text: str) -> list[SearchHit]:
    with engine().connect() as connection:
        return customers.search(connection, text, limit=50)


@_reached
@st.cache_data(ttl=TTL_S, show_spinner=False)
def customer(customer_id: str, expiry_days: int) -> CustomerView | None:
    """The customer's 360 view, or None for an unknown id."""
    settings = Settings(expiry_days=expiry_days)
    with engine().connect() as connection:
        try:
            return customers.customer_view(connection, customer_id, now=now(), settings=settings)
        except customers.UnknownCustomer:
            return None


@_reached
@st.cache_data(ttl=TTL_S, show_spinner=False)
def moves(customer_id: str) -> list[dict[str, object]]:
    """What a dealer's failure moved for this customer (prognos.desk.failure), newest first."""
    r = schema.reassignment
    query = select(r).where(r.c.customer_id == customer_id).order_by(r.c.at.desc(), r.c.reassignment_id)
    with engine().connect() as connection:
        return [dict(row._mapping) for row in connection.execute(query)]


@_reached
@st.cache_data(ttl=TTL_S, show_spinner=False)
def proof(customer_id: str) -> tuple[bytes, bytes, str]:
    """The customer's entitlement proof (JSON), its QR code (PNG) and what the code carries
    ("proof", or "digest" when the whole proof does not fit)."""
    with engine().connect() as connection:
        made = ledger.customer_proof(connection, customer_id, now=now())
    png, carries = ledger.proof_qr(made, kind="png", scale=4)
    return json.dumps(made, indent=2).encode("utf-8"), png, carries


@_reached
@st.cache_data(ttl=TTL_S, show_spinner=False)
def tickets(open_only: bool, dealer_id: str | None, limit: int = 2000) -> list[Ticket]:
    return complaints.list_tickets(engine(), open_only=open_only, dealer_id=dealer_id, limit=limit)


@_reached
@st.cache_data(ttl=TTL_S, show_spinner=False)
def dealers() -> list[str]:
    with engine().connect() as connection:
        return list(
            connection.execute(
                select(schema.dealer.c.dealer_id).order_by(schema.dealer.c.dealer_id)
            ).scalars()
        )


@_reached
def ticket(complaint_id: str) -> complaints.TicketView | None:
    try:
        return complaints.ticket_view(engine(), complaint_id, now())
    except complaints.UnknownTicketError:
        return None


@_reached
def move_ticket(complaint_id: str, to_state: str, *, actor: str, version: int, note: str) -> Ticket:
    """Move a ticket (ConfigError: illegal, or someone else changed it first)."""
    moved = complaints.move(
        engine(), complaint_id, to_state, actor=actor, expected_version=version, note=note
    )
    st.cache_data.clear()
    return moved


@_reached
def open_ticket(*, customer_id: str, category: str, summary: str, actor: str, vin: str | None) -> Ticket:
    opened = complaints.open_complaint(
        engine(), customer_id=customer_id, category=category, summary=summary, actor=actor, vin=vin
    )
    st.cache_data.clear()
    return opened


@st.cache_data(ttl=TTL_S, show_spinner=False)
def ticket_metrics(period: str) -> pd.DataFrame | None:
    """The complaint tickets' metrics per dealer and period for the dealer KPIs, or None when
    the desk cannot be read or has no tickets (the KPIs then come from the work orders)."""
    try:
        frame = complaints.ticket_metrics(engine(), period)
    except (DataUnavailableError, StoreError):
        return None
    return frame if not frame.empty else None


@_reached
@st.cache_data(ttl=TTL_S, show_spinner=False)
def centers() -> list[tuple[str, str]]:
    """(center id, name) of every service center."""
    c = schema.service_center
    with engine().connect() as connection:
        return [
            (row.center_id, row.name)
            for row in connection.execute(select(c.c.center_id, c.c.name).order_by(c.c.center_id))
        ]


@_reached
def slots(center_id: str, count: int = 12) -> list[Slot]:
    with engine().connect() as connection:
        return next_slots(connection, center_id, now=now(), count=count)


@_reached
def book_visit(
    *,
    customer_id: str,
    vin: str,
    center_id: str,
    at: datetime,
    purpose: str,
    actor: str,
    parts: tuple[str, ...] = (),
) -> Booking:
    """Book a slot (ConfigError: not free any more, or a bad choice)."""
    booked = book(
        engine(),
        customer_id=customer_id,
        vin=vin,
        center_id=center_id,
        at=at,
        purpose=purpose,
        actor=actor,
        now=now(),
        parts=parts,
    )
    st.cache_data.clear()
    return booked


@_reached
@st.cache_data(ttl=TTL_S, show_spinner=False)
def center_plan(center_id: str) -> list[Visit]:
    with engine().connect() as connection:
        return week.center_plan(connection, center_id, since=now() - timedelta(hours=1))


@_reached
@st.cache_data(ttl=TTL_S, show_spinner="Finding owners, centers and free slots…")
def week_calls(dues: tuple[Due, ...]) -> list[Call]:
    with engine().connect() as connection:
        return week.week_calls(connection, dues, now=now())


@st.cache_data(ttl=TTL_S, show_spinner=False)
def vehicle_reports(vin: str, limit: int = 5) -> list[ReportDetail]:
    """The vehicle's latest diagnosis reports, newest first, with their bodies, HTML and
    notifications (prognos.desk.reports); none without a desk: a vehicle page does not create
    an empty SQLite desk where there is none."""
    url = make_url(desk_url(default_home()))
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
        return []
    with engine().connect() as connection:
        return [
            report_detail(connection, found.report_id)
            for found in list_reports(connection, vin=vin, limit=limit)
        ]
