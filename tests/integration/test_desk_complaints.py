"""Complaint tickets in the desk's store, on SQLite and on a real PostgreSQL: moves with their
audit rows, illegal moves and conflicts that write nothing, the escalation job and the DMS
import run twice without changing anything the second time, and the CLI's exit codes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, insert, select

from prognos.cli import main
from prognos.desk import complaints, schema
from prognos.desk.complaints import (
    BadComplaintFilesError,
    ConflictError,
    IllegalTransitionError,
    UnknownCustomerError,
    UnknownTicketError,
    audit_trail,
    escalate,
    get_ticket,
    import_dms_complaints,
    list_tickets,
    move,
    open_complaint,
    ticket_metrics,
    ticket_view,
)
from prognos.desk.store import connect
from prognos.desk.tickets import METRIC_COLUMNS

VIN = "WPRG0000000000001"
MONDAY_9 = datetime(2026, 1, 5, 8, tzinfo=UTC)  # 09:00 in Berlin


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@pytest.fixture
def engine(desk_url: str) -> Iterator[Engine]:
    """The store with two dealers (D01 in Berlin, Tuesday 2026-01-06 a holiday), a service
    center, a customer at home there and the customer's vehicle."""
    engine = connect(desk_url)
    with engine.begin() as connection:
        connection.execute(
            insert(schema.dealer),
            [
                {"dealer_id": "D01", "name": "Autohaus Eins", "region": "North", "timezone": "Europe/Berlin"},
                {"dealer_id": "D02", "name": "Garage Two", "region": "South", "timezone": "UTC"},
            ],
        )
        connection.execute(
            insert(schema.holiday).values(dealer_id="D01", day=date(2026, 1, 6), name="Epiphany")
        )
        connection.execute(
            insert(schema.service_center).values(
                center_id="SC-01", dealer_id="D01", name="Eins Nord", lat=53.5, lon=10.0
            )
        )
        connection.execute(
            insert(schema.customer).values(
                customer_id="C1",
                name="Ann Smith",
                name_key="ann smith",
                home_center="SC-01",
                created_at=MONDAY_9,
            )
        )
        connection.execute(insert(schema.vehicle).values(vin=VIN, customer_id="C1", model="EV-1"))
    yield engine
    engine.dispose()


def counts(engine: Engine) -> tuple[int, int]:
    """(tickets, audit rows)"""
    with engine.connect() as connection:
        tickets = connection.execute(select(func.count()).select_from(schema.complaint)).scalar_one()
        audits = connection.execute(select(func.count()).select_from(schema.audit)).scalar_one()
    return tickets, audits


def snapshot(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        rows = connection.execute(select(schema.complaint).order_by(schema.complaint.c.complaint_id))
        return [dict(row._mapping) for row in rows]


def test_open_move_and_the_audit_trail(engine: Engine) -> None:
    ticket = open_complaint(
        engine, customer_id="C1", category="safety", actor="ann", vin=VIN, complaint_id="CP-1", now=MONDAY_9
    )
    assert (ticket.dealer_id, ticket.team, ticket.state, ticket.level, ticket.version) == (
        "D01",
        "brand-safety",
        "new",
        "dealer",
        1,
    )
    # 2 h and 16 h of Berlin business time from Monday 09:00; Tuesday is a holiday
    assert ticket.response_due_at == utc(2026, 1, 5, 10)
    assert ticket.resolution_due_at == utc(2026, 1, 7, 14)
    moved = move(engine, "CP-1", "acknowledged", actor="bob", expected_version=1, now=utc(2026, 1, 5, 9))
    assert (moved.state, moved.version, moved.responded_at, moved.contacts) == (
        "acknowledged",
        2,
        utc(2026, 1, 5, 9),
        1,
    )
    move(
        engine, "CP-1", "resolved", actor="bob", expected_version=2, note="new pads", now=utc(2026, 1, 5, 11)
    )
    assert get_ticket(engine, "CP-1").version == 3
    trail = audit_trail(engine, "CP-1")
    assert [(e.actor, e.action) for e in trail] == [("ann", "open"), ("bob", "move"), ("bob", "move")]
    assert trail[0].before is None and trail[0].after is not None and trail[0].after["state"] == "new"
    assert trail[1].before == {"state": "new", "responded_at": None, "contacts": 0}
    assert trail[1].after == {
        "state": "acknowledged",
        "responded_at": "2026-01-05T09:00:00+00:00",
        "contacts": 1,
    }
    assert trail[2].after is not None and trail[2].after["note"] == "new pads"
    assert trail[2].at == utc(2026, 1, 5, 11)
    view = ticket_view(engine, "CP-1", utc(2026, 1, 5, 12))
    assert view.next_states == ("closed", "reopened")
    assert "met" in view.clocks[0].text and "met" in view.clocks[1].text
    assert [t.complaint_id for t in list_tickets(engine, state="resolved")] == ["CP-1"]
    assert list_tickets(engine, open_only=True) == []


def test_routing_to_the_dealer_named(engine: Engine) -> None:
    ticket = open_complaint(
        engine, customer_id="C1", category="Billing", actor="ann", dealer_id="D02", now=MONDAY_9
    )
    assert (ticket.dealer_id, ticket.team, ticket.category) == ("D02", "accounts", "billing")
    assert ticket.complaint_id.startswith("CP-20260105-")


def test_bad_input_writes_nothing(engine: Engine) -> None:
    open_complaint(
        engine, customer_id="C1", category="quality", actor="ann", complaint_id="CP-1", now=MONDAY_9
    )
    before = snapshot(engine), counts(engine)
    with pytest.raises(IllegalTransitionError, match="cannot move from new to closed"):
        move(engine, "CP-1", "closed", actor="bob", expected_version=1)
    with pytest.raises(UnknownTicketError, match="no complaint 'CP-9'"):
        move(engine, "CP-9", "resolved", actor="bob", expected_version=1)
    with pytest.raises(UnknownCustomerError, match="no customer 'C9'"):
        open_complaint(engine, customer_id="C9", category="quality", actor="ann")
    with pytest.raises(complaints.ConfigError, match="unknown category"):
        open_complaint(engine, customer_id="C1", category="weather", actor="ann")
    with pytest.raises(complaints.ConfigError, match="not one of customer C1's"):
        open_complaint(engine, customer_id="C1", category="quality", actor="ann", vin="WPRG0000000000009")
    with pytest.raises(complaints.ConfigError, match="1 to 40 characters"):
        open_complaint(engine, customer_id="C1", category="quality", actor="ann", complaint_id="X" * 41)
    with pytest.raises(complaints.ConfigError, match="the actor must be a name"):
        move(engine, "CP-1", "resolved", actor=" ", expected_version=1)
    with pytest.raises(complaints.ConfigError, match="exists already"):
        open_complaint(engine, customer_id="C1", category="quality", actor="ann", complaint_id="CP-1")
    assert (snapshot(engine), counts(engine)) == before


def test_two_managers_with_the_same_version(engine: Engine) -> None:
    open_complaint(
        engine, customer_id="C1", category="quality", actor="ann", complaint_id="CP-1", now=MONDAY_9
    )
    move(engine, "CP-1", "in_progress", actor="first", expected_version=1, now=utc(2026, 1, 5, 9))
    before = snapshot(engine), counts(engine)
    with pytest.raises(ConflictError, match="at version 2 \\(state in_progress\\), not 1"):
        move(engine, "CP-1", "resolved", actor="second", expected_version=1, now=utc(2026, 1, 5, 10))
    assert (snapshot(engine), counts(engine)) == before
    assert get_ticket(engine, "CP-1").state == "in_progress"
    assert [e.actor for e in audit_trail(engine, "CP-1")] == ["ann", "first"]


def test_two_managers_at_the_same_moment(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both read version 1 before either writes: one move stands, the other is a conflict."""
    open_complaint(
        engine, customer_id="C1", category="quality", actor="ann", complaint_id="CP-1", now=MONDAY_9
    )
    both_read = threading.Barrier(2, timeout=10)
    calendar_of_dealer = complaints.dealer_calendar

    def after_reading(connection: Any, dealer_id: str) -> Any:
        both_read.wait()
        return calendar_of_dealer(connection, dealer_id)

    monkeypatch.setattr(complaints, "dealer_calendar", after_reading)
    outcomes: dict[str, object] = {}

    def manager(name: str, state: str) -> None:
        try:
            outcomes[name] = move(engine, "CP-1", state, actor=name, expected_version=1).state
        except Exception as exc:  # the test looks at what each got
            outcomes[name] = exc

    threads = [
        threading.Thread(target=manager, args=("first", "in_progress")),
        threading.Thread(target=manager, args=("second", "waiting_for_customer")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    won = [name for name, outcome in outcomes.items() if isinstance(outcome, str)]
    lost = [outcome for outcome in outcomes.values() if not isinstance(outcome, str)]
    assert len(won) == 1 and len(lost) == 1, outcomes
    assert isinstance(lost[0], ConflictError), lost[0]
    ticket = get_ticket(engine, "CP-1")
    assert ticket.version == 2 and ticket.state == outcomes[won[0]]
    assert [e.actor for e in audit_trail(engine, "CP-1")] == ["ann", won[0]]


def test_reopening_restarts_the_resolution_clock(engine: Engine) -> None:
    open_complaint(
        engine, customer_id="C1", category="billing", actor="ann", complaint_id="CP-1", now=MONDAY_9
    )
    move(engine, "CP-1", "resolved", actor="bob", expected_version=1, now=utc(2026, 1, 5, 9))
    move(engine, "CP-1", "closed", actor="bob", expected_version=2, now=utc(2026, 1, 5, 10))
    reopened = move(engine, "CP-1", "reopened", actor="bob", expected_version=3, now=utc(2026, 1, 9, 16))
    # 40 h of Berlin business time from Friday 17:00: 1 + 10 + 10 + 10 + 9, to Thursday 17:00
    assert reopened.resolution_due_at == utc(2026, 1, 15, 16)
    assert (reopened.resolved_at, reopened.closed_at, reopened.reopened) == (None, None, 1)


def test_escalation_run_twice_changes_nothing_the_second_time(engine: Engine) -> None:
    open_complaint(
        engine, customer_id="C1", category="safety", actor="ann", complaint_id="CP-1", now=MONDAY_9
    )
    open_complaint(
        engine, customer_id="C1", category="billing", actor="ann", complaint_id="CP-2", now=MONDAY_9
    )
    open_complaint(
        engine, customer_id="C1", category="quality", actor="ann", complaint_id="CP-3", now=MONDAY_9
    )
    move(engine, "CP-3", "acknowledged", actor="bob", expected_version=1, now=utc(2026, 1, 5, 9))
    now = utc(2026, 1, 8, 8)  # Thursday 09:00 Berlin
    run = escalate(engine, now)
    steps = sorted((s.complaint_id, s.clock, s.level_before, s.level_after) for s in run.escalations)
    assert steps == [
        # Berlin time: answer due Monday 11:00, resolution Wednesday 15:00
        ("CP-1", "resolution", "region", "brand"),
        ("CP-1", "response", "dealer", "region"),
        # answer due Monday 17:00, resolution next Monday 09:00
        ("CP-2", "response", "dealer", "region"),
    ]
    assert run.skipped == ()
    assert get_ticket(engine, "CP-1").level == "brand" and get_ticket(engine, "CP-3").level == "dealer"
    escalations = [e for e in audit_trail(engine, "CP-1") if e.action == "escalate"]
    assert [e.actor for e in escalations] == ["escalation", "escalation"]
    assert escalations[0].after is not None and escalations[0].after["clock"] == "response"
    before = snapshot(engine), counts(engine)
    again = escalate(engine, now)
    assert again.escalations == ()
    assert (snapshot(engine), counts(engine)) == before
    assert escalate(engine, utc(2026, 1, 8, 12)).escalations == ()  # later, nothing new ran out


COMPLAINTS_CSV = f"""dealer_id,complaint_id,opened_at,closed_at,category,vin
D01,D01-C00001,2026-01-05T08:00:00Z,,waiting time,{VIN}
D01,D01-C00002,2026-01-05T09:00:00Z,2026-01-07T10:00:00Z,repair quality,
D02,D02-C00001,2026-01-05T09:30:00Z,,billing,
"""


def test_dms_import_twice_changes_nothing(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "complaints.csv"
    path.write_text(COMPLAINTS_CSV)
    now = utc(2026, 1, 8, 12)
    result = import_dms_complaints(engine, [path], now=now)
    [summary] = result.files
    assert (summary.rows, summary.created, summary.updated, summary.already_imported) == (3, 3, 0, False)
    linked = get_ticket(engine, "D01-C00001")
    assert (linked.source, linked.customer_id, linked.category, linked.team, linked.state) == (
        "dms",
        "C1",
        "waiting_time",
        "service-advisors",
        "new",
    )
    closed = get_ticket(engine, "D01-C00002")
    assert (closed.state, closed.resolved_at, closed.closed_at) == (
        "closed",
        utc(2026, 1, 7, 10),
        utc(2026, 1, 7, 10),
    )
    before = snapshot(engine), counts(engine)
    [again] = import_dms_complaints(engine, [path], now=utc(2026, 1, 9, 12)).files
    assert again.already_imported
    assert (snapshot(engine), counts(engine)) == before
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(schema.dms_file)).scalar_one() == 1

    # A later export: the open complaint is closed now; the others are as they were.
    later = tmp_path / "complaints-later.csv"
    later.write_text(
        COMPLAINTS_CSV.replace("2026-01-05T08:00:00Z,,", "2026-01-05T08:00:00Z,2026-01-08T09:00:00Z,")
    )
    [update] = import_dms_complaints(engine, [later], now=utc(2026, 1, 9, 12)).files
    assert (update.created, update.updated, update.unchanged) == (0, 1, 2)
    assert get_ticket(engine, "D01-C00001").state == "closed"
    assert [e.action for e in audit_trail(engine, "D01-C00001")] == ["import", "import"]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (
            COMPLAINTS_CSV + "D09,D09-C1,2026-01-05T09:00:00Z,,billing,\n",
            "line 5: dealer 'D09' is not a dealer",
        ),
        (COMPLAINTS_CSV + "D01,D01-C3,yesterday,,billing,\n", "line 5: opened_at"),
        (COMPLAINTS_CSV + "D02,D01-C00001,2026-01-05T09:00:00Z,,billing,\n", "is dealer D01's"),
    ],
)
def test_a_bad_dms_file_writes_nothing(engine: Engine, tmp_path: Path, text: str, reason: str) -> None:
    path = tmp_path / "complaints.csv"
    path.write_text(text)
    with pytest.raises(BadComplaintFilesError, match="nothing was imported") as caught:
        import_dms_complaints(engine, [path], now=MONDAY_9)
    assert reason in str(caught.value)
    assert counts(engine) == (0, 0)
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(schema.dms_file)).scalar_one() == 0


def test_ticket_metrics(engine: Engine, tmp_path: Path) -> None:
    open_complaint(
        engine, customer_id="C1", category="quality", actor="ann", complaint_id="CP-1", now=MONDAY_9
    )
    move(engine, "CP-1", "resolved", actor="bob", expected_version=1, now=utc(2026, 1, 5, 10))
    path = tmp_path / "complaints.csv"
    path.write_text(COMPLAINTS_CSV)
    import_dms_complaints(engine, [path], now=utc(2026, 1, 8, 12))
    frame = ticket_metrics(engine, "month", now=utc(2026, 1, 31))
    assert list(frame.columns) == list(METRIC_COLUMNS)
    d01 = frame[frame["dealer_id"] == "D01"].iloc[0]
    assert (d01["period"], d01["opened"], d01["resolved"], d01["fcr_rate"]) == ("2026-01", 3, 2, 1.0)
    # CP-1 2 h; D01-C00002 11 h (Monday 10:00-18:00 Berlin, the holiday, Wednesday 08:00-11:00)
    assert d01["handling_h_median"] == pytest.approx((2 + 11) / 2)
    assert set(frame["dealer_id"]) == {"D01", "D02"}


# --- the CLI ----------------------------------------------------------------------------------


def test_cli_exit_codes(
    desk_url: str, engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = ["--db", desk_url]
    later = (datetime.now(UTC) + timedelta(days=60)).isoformat()  # the CLI opens tickets now
    assert (
        main(["desk", "complaints", "open", "--customer", "C1", "--category", "quality", "--id", "CP-1", *db])
        == 0
    )
    assert "opened CP-1 (version 1)" in capsys.readouterr().out
    assert main(["desk", "complaints", "open", "--customer", "C9", "--category", "quality", *db]) == 2
    assert "no customer 'C9'" in capsys.readouterr().err
    before = snapshot(engine), counts(engine)
    assert main(["desk", "complaints", "move", "CP-1", "closed", "--version", "1", *db]) == 2
    assert "cannot move from new to closed" in capsys.readouterr().err
    assert main(["desk", "complaints", "move", "CP-9", "resolved", "--version", "1", *db]) == 2
    assert "no complaint 'CP-9'" in capsys.readouterr().err
    assert main(["desk", "complaints", "move", "CP-1", "sideways", "--version", "1", *db]) == 2
    assert "unknown state 'sideways'" in capsys.readouterr().err
    assert (snapshot(engine), counts(engine)) == before
    move_args = ["desk", "complaints", "move", "CP-1", "in_progress", "--version", "1", "--actor", "bob", *db]
    assert main(move_args) == 0
    assert "CP-1 is in_progress now (version 2)" in capsys.readouterr().out
    assert main(move_args) == 2
    assert "at version 2 (state in_progress), not 1" in capsys.readouterr().err
    assert main(["desk", "complaints", "show", "CP-1", "--now", later, *db]) == 0
    shown = capsys.readouterr().out
    assert "CP-1  in_progress  version 2" in shown
    assert "resolution clock: due" in shown and "overdue by" in shown
    assert "bob  move: state new -> in_progress" in shown
    assert main(["desk", "complaints", "show", "CP-9", *db]) == 2
    assert main(["desk", "complaints", "escalate", "--now", later, *db]) == 0
    assert "CP-1: resolution clock ran out" in capsys.readouterr().out
    assert main(["desk", "complaints", "escalate", "--now", later, *db]) == 0
    assert capsys.readouterr().out.strip() == "0 escalations"
    assert main(["desk", "complaints", "list", "--open", *db]) == 0
    assert "CP-1" in capsys.readouterr().out
    bad = tmp_path / "bad.csv"
    bad.write_text("dealer_id,complaint_id,opened_at,category\nD01,X1,not a time,billing\n")
    assert main(["desk", "complaints", "import", str(bad), *db]) == 2
    assert "line 2: opened_at" in capsys.readouterr().err
    good = tmp_path / "complaints.csv"
    good.write_text(COMPLAINTS_CSV)
    assert main(["desk", "complaints", "import", str(good), *db]) == 0
    assert "3 rows, 3 new" in capsys.readouterr().out
    assert main(["desk", "complaints", "import", str(good), *db]) == 0
    assert "imported before, skipped" in capsys.readouterr().out
    out = tmp_path / "metrics.csv"
    assert main(["desk", "complaints", "metrics", "--out", str(out), *db]) == 0
    assert out.read_text().startswith(",".join(METRIC_COLUMNS))
