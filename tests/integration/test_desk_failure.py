"""Seeding the desk and failing a dealer end to end, on SQLite and PostgreSQL: customers and
appointments move to other centers, their entitlements follow as signed transfers, the ledger
still verifies, the contact list names everyone affected, and nothing is written twice."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, func, select

from prognos.cli import main
from prognos.cloud.dealers.kpis import TICKET_COLUMNS
from prognos.desk import complaints, customers, ledger, schema
from prognos.desk.failure import fail_dealer
from prognos.desk.store import connect
from prognos.errors import ConfigError
from prognos.sim.dealers import make_dms
from prognos.sim.desk_seed import seed_desk

NOW = datetime(2026, 11, 16, 10, tzinfo=UTC)  # a Monday
FAILING = "DLR-05"


@pytest.fixture
def seeded(desk_url: str) -> tuple[Engine, Ed25519PrivateKey]:
    engine = connect(desk_url)
    key = Ed25519PrivateKey.generate()
    dms = make_dms(seed=3, months=3, end=NOW.date().replace(day=1), vehicles=30, order_scale=0.1)
    seed_desk(engine, customers=80, seed=3, key=key, now=NOW, dms=dms)
    return engine, key


def _count(engine: Engine, table: object) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def test_seed_fills_an_empty_desk_once(seeded: tuple[Engine, Ed25519PrivateKey]) -> None:
    engine, key = seeded
    assert _count(engine, schema.customer) == 80
    assert _count(engine, schema.complaint) > 0 and _count(engine, schema.ledger) > 80
    assert ledger.verify_ledger(engine, key.public_key()).holds
    with engine.connect() as connection:
        failing = connection.execute(
            select(schema.dealer.c.status).where(schema.dealer.c.dealer_id == FAILING)
        )
        assert failing.scalar_one() == "at_risk"
    metrics = complaints.ticket_metrics(engine, "month", now=NOW)  # what the dealer KPIs take
    assert set(TICKET_COLUMNS) <= set(metrics.columns) and metrics["opened"].sum() > 0
    with pytest.raises(ConfigError, match="already holds 80 customers"):
        seed_desk(engine, customers=5, seed=4, key=key, now=NOW)
    engine.dispose()


def test_a_failing_dealers_customers_appointments_and_entitlements_move(
    seeded: tuple[Engine, Ed25519PrivateKey],
) -> None:
    engine, key = seeded
    c, a = schema.customer, schema.appointment
    with engine.connect() as connection:
        closing = set(
            connection.execute(
                select(schema.service_center.c.center_id).where(schema.service_center.c.dealer_id == FAILING)
            ).scalars()
        )
        affected = set(
            connection.execute(select(c.c.customer_id).where(c.c.home_center.in_(closing))).scalars()
        )
        booked = set(
            connection.execute(
                select(a.c.appointment_id).where(a.c.center_id.in_(closing), a.c.status == "booked")
            ).scalars()
        )
        held_there = {
            e.entitlement_id
            for e in ledger.current_entitlements(connection, now=NOW, customer_ids=affected).values()
            if e.status == "active" and e.center_id in closing
        }
        open_there = connection.execute(
            select(func.count())
            .select_from(schema.complaint)
            .where(
                schema.complaint.c.dealer_id == FAILING,
                schema.complaint.c.state.not_in(["resolved", "closed"]),
            )
        ).scalar_one()
    assert affected and held_there
    entries_before = _count(engine, schema.ledger)

    failure = fail_dealer(engine, FAILING, reason="insolvent", key=key, now=NOW, actor="brand")

    assert {contact.customer_id for contact in failure.contacts} >= affected
    with engine.connect() as connection:
        status = connection.execute(
            select(schema.dealer.c.status).where(schema.dealer.c.dealer_id == FAILING)
        )
        assert status.scalar_one() == "failed"
        homes = dict(
            connection.execute(
                select(c.c.customer_id, c.c.home_center).where(c.c.customer_id.in_(affected))
            ).all()
        )
        placed = {x.customer_id for x in failure.contacts if x.status == "placed"}
        assert placed and all(homes[customer] not in closing for customer in placed & affected)
        still = set(
            connection.execute(
                select(a.c.appointment_id).where(a.c.center_id.in_(closing), a.c.status == "booked")
            ).scalars()
        )
        assert (
            len(still) == failure.appointments_unplaced
            and len(booked) == len(still) + failure.appointments_moved
        )
        moved = ledger.current_entitlements(connection, now=NOW, customer_ids=placed)
        for entitlement_id in held_there:
            if entitlement_id in moved:
                assert moved[entitlement_id].center_id == homes[moved[entitlement_id].customer_id]
        recorded = connection.execute(
            select(func.count())
            .select_from(schema.reassignment)
            .where(schema.reassignment.c.dealer_id == FAILING)
        ).scalar_one()
        assert recorded == len(affected) + len(booked)
    assert failure.transfers > 0 and _count(engine, schema.ledger) == entries_before + failure.transfers
    assert ledger.verify_ledger(engine, key.public_key()).holds
    # first the customers who paid for a car they never got
    waiting = [x for x in failure.contacts if x.not_delivered]
    assert failure.contacts[: len(waiting)] == tuple(waiting)
    lines = failure.contacts_csv().splitlines()
    assert (
        lines[0].startswith("customer_id,name,email,phone,from_center,to_center")
        and len(lines) == len(failure.contacts) + 1
    )

    # its open complaints are the brand's now, none is left with the failed dealer
    with engine.connect() as connection:
        left = connection.execute(
            select(func.count())
            .select_from(schema.complaint)
            .where(schema.complaint.c.dealer_id == FAILING, schema.complaint.c.level != "brand")
            .where(schema.complaint.c.state.not_in(["resolved", "closed"]))
        ).scalar_one()
    assert left == 0 and failure.complaints_rerouted == open_there

    # the customers it moved keep the failed dealer's risk tag, in their view and in the call list
    someone = next(x.customer_id for x in failure.contacts if x.status == "placed")
    with engine.connect() as connection:
        view = customers.customer_view(connection, someone, now=NOW)
        ranked = customers.priorities(connection, now=NOW, limit=10_000)
    assert "dealer_failed" in {tag.code for tag in view.tags}
    assert any(
        tag.code == "dealer_failed" for row in ranked if row.customer_id == someone for tag in row.tags
    )

    with pytest.raises(ConfigError, match="failed already"):
        fail_dealer(engine, FAILING, reason="again", key=key, now=NOW, actor="brand")
    assert _count(engine, schema.ledger) == entries_before + failure.transfers
    engine.dispose()


def test_the_command_refuses_an_unknown_dealer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = f"sqlite:///{tmp_path / 'desk.db'}"
    assert (
        main(["desk", "seed", "--db", db, "--customers", "20", "--seed", "2", "--home", str(tmp_path)]) == 0
    )
    assert (tmp_path / "brand.pem").exists() and (tmp_path / "brand.pub").exists()
    capsys.readouterr()
    assert main(["desk", "dealer-failed", "DLR-99", "--db", db, "--home", str(tmp_path)]) == 2
    assert "no dealer 'DLR-99'" in capsys.readouterr().err
    out = tmp_path / "contacts.csv"
    assert (
        main(["desk", "dealer-failed", FAILING, "--db", db, "--home", str(tmp_path), "--out", str(out)]) == 0
    )
    assert out.read_text().startswith("customer_id,")
