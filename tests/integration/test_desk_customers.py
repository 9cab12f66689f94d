"""The customer 360, search and the priority call list on SQLite and on a real PostgreSQL, over a
small hand-built desk: five customers, three dealers (one failed, one at risk), vehicles,
appointments, work orders, alerts, complaints and ledger entries."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert

from prognos.cli import main
from prognos.desk import schema
from prognos.desk.customers import (
    PRIORITY_COLUMNS,
    UnknownCustomer,
    customer_view,
    priorities,
    search,
)
from prognos.desk.store import connect
from prognos.desk.tags import Settings
from prognos.errors import ConfigError

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
V1, V2, V3, V4, V5, V6 = (f"WVWZZZ1KZ6W00000{n}" for n in range(1, 7))


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def ledger_rows() -> list[dict[str, object]]:
    """Entries in the ledger's body format (prognos/desk/entitlements.py); the hashes and the
    signature are placeholders, which the read model does not check."""
    bodies: list[dict[str, object]] = [
        {  # Clara's maintenance package, 1 of 4 used, ending in 13 days
            "kind": "grant",
            "entitlement_id": "E-12",
            "customer_id": "C000003",
            "vin": V5,
            "product": "maintenance",
            "units": 4,
            "valid_from": "2024-12-20T00:00:00+00:00",
            "valid_until": "2026-12-20T00:00:00+00:00",
            "center_id": "SC-03",
            "dealer_id": "D03",
        },
        {
            "kind": "consume",
            "entitlement_id": "E-12",
            "customer_id": "C000003",
            "units": 1,
            "center_id": "SC-03",
            "reference": "D03/WO-300",
        },
        {  # Dieter's extended warranty, sold on to Eva: hers now, ending in 30 days
            "kind": "grant",
            "entitlement_id": "E-20",
            "customer_id": "C000004",
            "vin": V6,
            "product": "extended_warranty",
            "units": None,
            "valid_from": "2024-01-06T09:00:00+00:00",
            "valid_until": "2027-01-06T09:00:00+00:00",
            "center_id": "SC-01",
            "dealer_id": "D01",
        },
        {
            "kind": "transfer",
            "entitlement_id": "E-20",
            "customer_id": "C000005",
            "center_id": "SC-01",
            "from_customer_id": "C000004",
            "from_center_id": "SC-01",
            "reason": "vehicle sold",
        },
        {  # Dieter's package ends in 90 days: outside the window
            "kind": "grant",
            "entitlement_id": "E-30",
            "customer_id": "C000004",
            "vin": V4,
            "product": "maintenance",
            "units": 2,
            "valid_from": "2025-03-07T09:00:00+00:00",
            "valid_until": "2027-03-07T09:00:00+00:00",
            "center_id": "SC-01",
            "dealer_id": "D01",
        },
    ]
    rows = []
    for seq, body in enumerate(bodies, start=1):
        when = at("2026-01-01T10:00:00") + timedelta(days=seq)
        body = {"v": 1, "seq": seq, "at": when.isoformat(), "actor": "test", **body}
        rows.append(
            {
                "seq": seq,
                "at": when,
                "kind": body["kind"],
                "entitlement_id": body["entitlement_id"],
                "customer_id": body["customer_id"],
                "body": json.dumps(body, sort_keys=True, separators=(",", ":")),
                "prev_hash": f"{seq - 1:064d}",
                "hash": f"{seq:064d}",
                "signature": "placeholder",
                "key_id": "test",
            }
        )
    return rows


def seed(engine: Engine) -> None:
    def dealer(
        dealer_id: str, name: str, status: str, reason: str = "", since: datetime | None = None
    ) -> dict[str, object]:
        return {
            "dealer_id": dealer_id,
            "name": name,
            "region": "R1",
            "status": status,
            "status_reason": reason,
            "status_at": since,
        }

    def center(center_id: str, dealer_id: str, name: str) -> dict[str, object]:
        return {"center_id": center_id, "dealer_id": dealer_id, "name": name, "lat": 48.1, "lon": 11.5}

    def person(
        customer_id: str, name: str, home: str | None, email: str = "", phone: str = ""
    ) -> dict[str, object]:
        return {
            "customer_id": customer_id,
            "name": name,
            "name_key": name.lower(),
            "email": email,
            "phone": phone,
            "home_center": home,
            "created_at": at("2023-05-04T10:00:00"),
        }

    def car(vin: str, owner: str, **kwargs: object) -> dict[str, object]:
        values: dict[str, object] = {
            "vin": vin,
            "customer_id": owner,
            "plate": None,
            "model": "EV-1",
            "paid_at": at("2024-01-02T10:00:00"),
            "delivered_at": at("2024-01-05T10:00:00"),
            "warranty_until": at("2027-01-05T10:00:00") + timedelta(days=365),
        }
        values.update(kwargs)
        return values

    def visit(
        appointment_id: str, owner: str, vin: str, center_id: str, when: datetime, status: str
    ) -> dict[str, object]:
        return {
            "appointment_id": appointment_id,
            "customer_id": owner,
            "vin": vin,
            "center_id": center_id,
            "scheduled_at": when,
            "status": status,
            "purpose": "brake inspection",
            "updated_at": when + timedelta(hours=2) if status != "booked" else days_ago(20),
        }

    def order(
        dealer_id: str, order_id: str, vin: str, opened: datetime, **kwargs: object
    ) -> dict[str, object]:
        values: dict[str, object] = {
            "dealer_id": dealer_id,
            "order_id": order_id,
            "vin": vin,
            "center_id": None,
            "opened_at": opened,
            "closed_at": opened + timedelta(hours=5),
            "description": "annual service",
            "amount": 240.0,
            "repeat_of_order_id": None,
        }
        values.update(kwargs)
        return values

    def alert(
        alert_id: str, vin: str, severity: str, raised: datetime, cleared: datetime | None = None
    ) -> dict[str, object]:
        return {
            "alert_id": alert_id,
            "vin": vin,
            "code": "brake.pad_wear",
            "severity": severity,
            "summary": "front pads at 2 mm",
            "raised_at": raised,
            "cleared_at": cleared,
        }

    def complaint(
        complaint_id: str, customer_id: str | None, vin: str, state: str, **kwargs: object
    ) -> dict[str, object]:
        values: dict[str, object] = {
            "complaint_id": complaint_id,
            "source": "desk",
            "customer_id": customer_id,
            "vin": vin,
            "dealer_id": "D01",
            "category": "billing",
            "summary": "charged twice",
            "state": state,
            "opened_at": at("2026-11-20T10:00:00"),
            "responded_at": at("2026-11-20T16:00:00"),
            "response_due_at": at("2026-11-21T10:00:00"),
            "resolution_due_at": at("2026-11-30T14:00:00"),
            "updated_at": at("2026-11-20T16:00:00"),
        }
        values.update(kwargs)
        return values

    with engine.begin() as connection:
        connection.execute(
            insert(schema.dealer),
            [
                dealer("D01", "Autohaus Nord", "active"),
                dealer("D02", "Garage Rhone", "failed", "insolvency filed", at("2026-11-02T16:00:00")),
                dealer(
                    "D03", "Auto Sud", "at_risk", "cash below two months of costs", at("2026-11-20T08:00:00")
                ),
            ],
        )
        connection.execute(
            insert(schema.service_center),
            [center("SC-01", "D01", "Nord"), center("SC-02", "D02", "Rhone"), center("SC-03", "D03", "Sud")],
        )
        connection.execute(
            insert(schema.customer),
            [
                person("C000001", "Anna Schmidt", "SC-01", "anna@example.com", "+49 170 1111111"),
                person("C000002", "Bernd Anners", "SC-02", "bernd@example.com"),
                person("C000003", "Clara Weiss", "SC-03", phone="+49 170 3333333"),
                person("C000004", "Dieter Ruhig", "SC-01"),
                person("C000005", "Eva Mueller", None, "eva@example.com"),
            ],
        )
        connection.execute(
            insert(schema.vehicle),
            [
                car(
                    V1,
                    "C000001",
                    plate="B-AS 123",
                    paid_at=at("2026-09-14T11:00:00"),
                    delivered_at=None,
                    warranty_until=None,
                ),
                car(V2, "C000001", plate="B-AS 124"),
                car(V3, "C000002", plate="M-BA 300", warranty_until=at("2026-12-20T00:00:00")),
                car(V4, "C000004", plate="K-DR 4"),
                car(V5, "C000003"),
                car(V6, "C000005", plate="HH-EM 6"),
            ],
        )
        connection.execute(
            insert(schema.appointment),
            [
                visit("A-1", "C000002", V3, "SC-02", at("2026-12-10T09:00:00"), "booked"),
                visit("A-2", "C000003", V5, "SC-03", days_ago(10), "missed"),
                visit("A-3", "C000004", V4, "SC-01", days_ago(100), "missed"),
                visit("A-4", "C000004", V4, "SC-01", days_ago(30), "done"),
            ],
        )
        connection.execute(
            insert(schema.work_order),
            [
                order("D02", "WO-10", V3, at("2026-03-01T08:00:00")),
                order(
                    "D02",
                    "WO-88",
                    V3,
                    at("2026-11-19T08:00:00"),
                    closed_at=at("2026-11-20T17:00:00"),
                    description="brake.pad_wear",
                    amount=312.5,
                ),
                order(
                    "D02", "WO-95", V3, at("2026-12-02T08:00:00"), repeat_of_order_id="WO-88", amount=104.0
                ),
                order("D01", "WO-7", V4, at("2025-01-10T08:00:00")),  # a comeback long ago
                order("D01", "WO-8", V4, at("2025-01-20T08:00:00"), repeat_of_order_id="WO-7"),
            ],
        )
        connection.execute(
            insert(schema.alert),
            [
                alert("AL-1", V2, "critical", at("2026-11-30T14:00:00")),
                alert("AL-2", V3, "critical", at("2026-10-01T08:00:00"), at("2026-10-03T08:00:00")),
                alert("AL-3", V4, "warning", days_ago(2)),
            ],
        )
        connection.execute(
            insert(schema.complaint),
            [
                complaint("CP-17", "C000003", V5, "open"),
                complaint("CP-18", "C000004", V4, "resolved"),
                complaint(  # no customer on it: the vehicle's owner's; nobody answered it
                    "CP-19",
                    None,
                    V6,
                    "in_progress",
                    responded_at=None,
                    response_due_at=at("2026-12-01T10:00:00"),
                    resolution_due_at=at("2026-12-15T10:00:00"),
                ),
            ],
        )
        connection.execute(insert(schema.ledger), ledger_rows())


@pytest.fixture
def desk(desk_url: str) -> Iterator[Engine]:
    engine = connect(desk_url)
    seed(engine)
    yield engine
    engine.dispose()


def test_search_by_name_vin_plate_and_id(desk: Engine) -> None:
    with desk.connect() as connection:
        hits = search(connection, "ann")
        assert [(h.customer_id, h.matched) for h in hits] == [("C000001", "name"), ("C000002", "name")]
        assert hits[0].contact == "anna@example.com, +49 170 1111111"
        assert hits[0].home_center == "SC-01"
        [by_vin] = search(connection, V3.lower())
        assert (by_vin.customer_id, by_vin.matched) == ("C000002", f"VIN {V3}")
        assert [h.customer_id for h in search(connection, "W000003")] == ["C000002"]  # the VIN's end
        [by_plate] = search(connection, "bas123")
        assert (by_plate.customer_id, by_plate.matched) == ("C000001", "plate B-AS 123")
        [by_id] = search(connection, "c000003")
        assert (by_id.customer_id, by_id.matched, by_id.name) == ("C000003", "customer id", "Clara Weiss")
        assert search(connection, "nobody by this name") == []
        assert search(connection, "100%_") == []  # LIKE wildcards are literal
        assert len(search(connection, "e", limit=2)) == 2
        with pytest.raises(ConfigError, match="empty"):
            search(connection, "   ")


def test_the_view_holds_everything_about_a_customer(desk: Engine) -> None:
    with desk.connect() as connection:
        view = customer_view(connection, "C000002", now=NOW)
    assert (view.name, view.contact) == ("Bernd Anners", "bernd@example.com")
    assert view.home is not None
    assert (view.home.center_id, view.home.dealer.dealer_id, view.home.dealer.status) == (
        "SC-02",
        "D02",
        "failed",
    )
    assert view.home.dealer.status_at == at("2026-11-02T16:00:00")
    assert [v.vin for v in view.vehicles] == [V3]
    assert [o.order_id for o in view.service_history] == ["WO-95", "WO-88", "WO-10"]
    assert view.service_history[1].closed_at == at("2026-11-20T17:00:00")
    assert view.open_alerts == ()  # AL-2 was cleared
    assert [a.appointment_id for a in view.open_appointments] == ["A-1"]
    assert {tag.code: tag.reason for tag in view.tags} == {
        "dealer_failed": "home dealer D02 failed on 2026-11-02: insolvency filed",
        "warranty_expiring": f"warranty of VIN {V3} ends 2026-12-20, in 13 days",
        "comeback": (
            f"brake.pad_wear came back 12 days after order WO-88 ({V3}, repeat order WO-95 on 2026-12-02)"
        ),
    }
    assert view.score > 0
    assert view.as_of == NOW


def test_the_view_of_complaints_entitlements_and_alerts(desk: Engine) -> None:
    with desk.connect() as connection:
        clara = customer_view(connection, "C000003", now=NOW)
        dieter = customer_view(connection, "C000004", now=NOW)
        eva = customer_view(connection, "C000005", now=NOW)
        anna = customer_view(connection, "C000001", now=NOW)
    [open_complaint] = clara.open_complaints
    assert open_complaint.complaint.complaint_id == "CP-17" and open_complaint.overdue
    assert open_complaint.sla == "past its resolution SLA since 2026-11-30 14:00 UTC (7 days)"
    [package] = clara.entitlements
    assert (package.entitlement_id, package.used, package.remaining, package.status) == (
        "E-12",
        1,
        3,
        "active",
    )
    assert {tag.code for tag in clara.tags} == {
        "dealer_at_risk",
        "complaint_overdue",
        "missed_appointment",
        "package_expiring",
    }
    # Dieter: a resolved complaint, a warning, an old missed appointment and an old comeback;
    # the warranty he sold on is Eva's now
    assert dieter.tags == () and dieter.score == 0.0
    assert dieter.open_complaints == ()
    assert [a.alert_id for a in dieter.open_alerts] == ["AL-3"]
    assert [e.entitlement_id for e in dieter.entitlements] == ["E-30"]
    assert eva.home is None
    assert [c.complaint.complaint_id for c in eva.open_complaints] == ["CP-19"]
    assert [e.entitlement_id for e in eva.entitlements] == ["E-20"]
    assert {tag.reason for tag in eva.tags} == {
        "complaint CP-19 (billing) past its response SLA since 2026-12-01 10:00 UTC",
        f"extended warranty E-20 of VIN {V6} ends 2027-01-06, in 30 days",
    }
    assert [a.alert_id for a in anna.open_alerts] == ["AL-1"]
    assert [tag.code for tag in anna.tags] == ["critical_alert", "not_delivered"]


def test_an_unknown_customer_is_a_clear_error(desk: Engine) -> None:
    with desk.connect() as connection, pytest.raises(UnknownCustomer, match="no customer 'C999999'"):
        customer_view(connection, "C999999", now=NOW)


def test_priorities_rank_the_customers_with_the_same_tags_as_their_views(desk: Engine) -> None:
    with desk.connect() as connection:
        rows = priorities(connection, now=NOW)
        views = {
            cid: customer_view(connection, cid, now=NOW)
            for cid in ("C000001", "C000002", "C000003", "C000004", "C000005")
        }
        assert [row.rank for row in rows] == [1, 2, 3, 4]
        assert [row.customer_id for row in rows] == ["C000001", "C000003", "C000002", "C000005"]
        scores = [row.score for row in rows]
        assert scores == sorted(scores, reverse=True)
        for row in rows:
            view = views[row.customer_id]
            assert row.tags == view.tags
            assert row.score == pytest.approx(view.score)
            assert (row.name, row.contact, row.home_center) == (
                view.name,
                view.contact,
                view.home.center_id if view.home else None,
            )
        assert rows[0].labels == "open critical alert; paid, not delivered"
        assert rows[0].reasons == (
            f"critical alert brake.pad_wear on {V2} open since 2026-11-30 14:00 UTC: front pads at 2 mm; "
            f"paid 2026-09-14 for {V1} (EV-1), not delivered after 84 days"
        )
        assert [row.customer_id for row in priorities(connection, now=NOW, limit=2)] == ["C000001", "C000003"]
        # a narrower expiry window drops Bernd's warranty (13 days) and Eva's (30 days)
        narrow = {
            row.customer_id: row for row in priorities(connection, now=NOW, settings=Settings(expiry_days=10))
        }
        assert "warranty_expiring" not in {tag.code for tag in narrow["C000002"].tags}
        assert {tag.code for tag in narrow["C000005"].tags} == {"complaint_overdue"}
        for later in (
            NOW + timedelta(days=45),
            NOW - timedelta(days=60),
        ):  # other moments: still the same tags
            for row in priorities(connection, now=later):
                assert row.tags == customer_view(connection, row.customer_id, now=later).tags


def test_the_commands(
    desk_url: str, desk: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--db", desk_url, "--as-of", "2026-12-07T09:00:00Z"]
    out = tmp_path / "calls.csv"
    assert main(["desk", "priorities", *common, "--limit", "3", "--out", str(out)]) == 0
    assert "wrote 3 customers" in capsys.readouterr().out
    with out.open(encoding="utf-8", newline="") as file:
        table = list(csv.DictReader(file))
    assert tuple(table[0]) == PRIORITY_COLUMNS
    assert [row["customer_id"] for row in table] == ["C000001", "C000003", "C000002"]
    assert table[0]["rank"] == "1" and table[0]["home_center"] == "SC-01"
    assert table[0]["contact"] == "anna@example.com, +49 170 1111111"
    assert table[0]["tags"] == "open critical alert; paid, not delivered"
    assert f"paid 2026-09-14 for {V1} (EV-1), not delivered after 84 days" in table[0]["reasons"]
    assert float(table[0]["score"]) > float(table[1]["score"])

    assert main(["desk", "priorities", *common]) == 0
    text = capsys.readouterr().out
    assert "rank  customer" in text and "C000005" in text
    assert "      - home dealer D02 failed on 2026-11-02: insolvency filed" in text

    assert main(["desk", "customers", "show", "C000002", *common]) == 0
    text = capsys.readouterr().out
    for heading in (
        "Risk tags (3)",
        "Vehicles (1)",
        "Open appointments (1)",
        "Open alerts (0)",
        "Service history, newest first (3)",
    ):
        assert heading in text
    assert "its dealer:     D02 Garage Rhone (failed since 2026-11-02: insolvency filed)" in text
    assert "2026-11-19  D02/WO-88" in text and "312.50 EUR" in text
    assert "None" not in text

    assert main(["desk", "customers", "search", "bas123", "--db", desk_url]) == 0
    assert "plate B-AS 123" in capsys.readouterr().out

    assert main(["desk", "customers", "show", "C999999", *common]) == 2
    assert "no customer 'C999999'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as refused:  # argparse refuses it: usage and exit code 2
        main(["desk", "priorities", *common[:2], "--as-of", "last week"])
    assert refused.value.code == 2 and "ISO 8601" in capsys.readouterr().err
