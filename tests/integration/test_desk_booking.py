"""Booking on SQLite and PostgreSQL: a free slot is booked and shows in the customer's view; a
bad customer, vehicle or slot is refused with nothing written; two managers racing for the
last bay of a slot: exactly one gets it."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, insert, select

from prognos.cli import main
from prognos.desk import customers, schema
from prognos.desk.booking import SlotTakenError, book, next_slots
from prognos.desk.store import connect
from prognos.errors import ConfigError

NOW = datetime(2026, 12, 4, 9, tzinfo=UTC)  # a Friday


def _desk(url: str) -> Engine:
    engine = connect(url)
    with engine.begin() as c:
        c.execute(
            insert(schema.dealer).values(dealer_id="D1", name="Autohaus", region="north", timezone="UTC")
        )
        c.execute(
            insert(schema.service_center).values(
                center_id="SC-1",
                dealer_id="D1",
                name="Workshop",
                lat=53.5,
                lon=10.0,
                capacity_per_week=40,
                technicians=1,
            )
        )
        for n in (1, 2):
            c.execute(
                insert(schema.customer).values(
                    customer_id=f"C{n}",
                    name=f"Owner {n}",
                    name_key=f"owner {n}",
                    home_center="SC-1",
                    created_at=NOW,
                )
            )
            c.execute(insert(schema.vehicle).values(vin=f"VIN{n}", customer_id=f"C{n}", model="EV-1"))
    return engine


def _count(engine: Engine) -> int:
    with engine.connect() as c:
        return int(c.execute(select(func.count()).select_from(schema.appointment)).scalar_one())


def test_a_free_slot_is_booked_and_shows_in_the_customer_view(desk_url: str) -> None:
    engine = _desk(desk_url)
    with engine.connect() as c:
        slots = next_slots(c, "SC-1", now=NOW, count=3)
    assert slots[0].start == datetime(2026, 12, 4, 11, tzinfo=UTC)  # two hours' lead
    booking = book(
        engine,
        customer_id="C1",
        vin="VIN1",
        center_id="SC-1",
        at=slots[0].start,
        purpose="brake pads",
        actor="manager",
        now=NOW,
    )
    with engine.connect() as c:
        view = customers.customer_view(c, "C1", now=NOW)
        again = next_slots(c, "SC-1", now=NOW, count=1)
        trail = c.execute(
            select(schema.audit.c.action).where(schema.audit.c.entity_id == booking.appointment_id)
        )
        assert list(trail.scalars()) == ["booked"]
    assert [(a.appointment_id, a.scheduled_at, a.purpose) for a in view.open_appointments] == [
        (booking.appointment_id, slots[0].start, "brake pads")
    ]
    assert again[0].start == slots[1].start  # one technician: that hour is full now
    engine.dispose()


@pytest.mark.parametrize(
    ("customer", "vin", "center", "hour", "message"),
    [
        ("C9", "VIN1", "SC-1", 11, "no customer"),
        ("C1", "VIN2", "SC-1", 11, "not one of customer C1"),
        ("C1", "VIN1", "SC-9", 11, "no service center"),
        ("C1", "VIN1", "SC-1", 10, "not a free slot"),  # under the two hours' lead
        ("C1", "VIN1", "SC-1", 19, "not a free slot"),  # closed
    ],
)
def test_bad_bookings_write_nothing(
    desk_url: str, customer: str, vin: str, center: str, hour: int, message: str
) -> None:
    engine = _desk(desk_url)
    at = NOW.replace(hour=hour)
    with pytest.raises(ConfigError, match=message):
        book(engine, customer_id=customer, vin=vin, center_id=center, at=at, purpose="", actor="m", now=NOW)
    assert _count(engine) == 0
    engine.dispose()


def test_two_managers_racing_for_the_last_bay(desk_url: str) -> None:
    engine = _desk(desk_url)
    at = datetime(2026, 12, 7, 9, tzinfo=UTC)
    results: list[object] = []
    start = threading.Barrier(2)

    def attempt(n: int) -> None:
        start.wait()
        try:
            results.append(
                book(
                    engine,
                    customer_id=f"C{n}",
                    vin=f"VIN{n}",
                    center_id="SC-1",
                    at=at,
                    purpose="",
                    actor=f"m{n}",
                    now=NOW,
                )
            )
        except SlotTakenError as exc:
            results.append(exc)

    threads = [threading.Thread(target=attempt, args=(n,)) for n in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(isinstance(r, SlotTakenError) for r in results) == 1
    assert _count(engine) == 1
    engine.dispose()


def test_the_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = f"sqlite:///{tmp_path / 'desk.db'}"
    _desk(db).dispose()
    assert main(["desk", "slots", "SC-1", "--db", db, "--count", "2"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    when = datetime.strptime(first[4:20], "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
    assert when > datetime.now(UTC) + timedelta(hours=2) - timedelta(minutes=1)
    assert (
        main(
            [
                "desk",
                "book",
                "--db",
                db,
                "--customer",
                "C1",
                "--vin",
                "VIN1",
                "--center",
                "SC-1",
                "--at",
                when.isoformat(),
            ]
        )
        == 0
    )
    assert "booked AP-" in capsys.readouterr().out
    assert (
        main(
            [
                "desk",
                "book",
                "--db",
                db,
                "--customer",
                "C2",
                "--vin",
                "VIN2",
                "--center",
                "SC-1",
                "--at",
                when.isoformat(),
            ]
        )
        == 2
    )
    assert "not a free slot" in capsys.readouterr().err
