"""The service desk's pages in Chromium, doing a service manager's job on a seeded desk whose
failing dealer has failed: find a customer by name, open them, read their risk tags,
entitlements and complaints, take their entitlement proof and check it offline; download the
call list; open a complaint, move it on, and be refused when someone else moved it first."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine

from prognos.dashboard.cli import dashboard_command
from prognos.desk import complaints, customers, ledger
from prognos.desk.failure import fail_dealer
from prognos.desk.store import connect
from prognos.sim.dealers import make_dms
from prognos.sim.desk_seed import seed_desk
from tests.support.browser import choose, free_port, save, served_dashboard, show

if TYPE_CHECKING:
    from playwright.sync_api import Page


@dataclass(frozen=True)
class Desk:
    url: str
    engine: Engine
    key: Ed25519PrivateKey
    customer: customers.CustomerView  # one with tags, entitlements and an open complaint


@pytest.fixture(scope="module")
def desk(browser_available: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    work = tmp_path_factory.mktemp("desk-browser")
    db = f"sqlite:///{work / 'desk.db'}"
    engine = connect(db)
    key = Ed25519PrivateKey.generate()
    now = datetime.now(UTC)
    dms = make_dms(seed=5, months=3, vehicles=20, order_scale=0.1)
    seed_desk(engine, customers=150, seed=5, key=key, now=now - timedelta(hours=1), dms=dms)
    fail_dealer(engine, "DLR-05", reason="insolvent", key=key, now=now - timedelta(minutes=30), actor="brand")
    with engine.connect() as connection:
        ranked = customers.priorities(connection, now=now, limit=1000)
        chosen = None
        for row in ranked:
            view = customers.customer_view(connection, row.customer_id, now=now)
            if view.tags and view.entitlements and view.open_complaints:
                chosen = view
                break
    assert chosen is not None, "the seed has no customer with tags, entitlements and an open complaint"
    argv, env = dashboard_command(work, "none", free_port(), desk_db=db)
    with served_dashboard(argv, env, work / "streamlit.log") as url:
        yield Desk(url, engine, key, chosen)
    engine.dispose()


def test_a_service_manager_finds_a_customer_and_sees_everything_about_them(
    browser_page: Page, desk: Desk, screenshot_dirs: list[Path]
) -> None:
    page, view = browser_page, desk.customer
    show(page, f"{desk.url}/customers", "Find a customer", "Name, VIN, plate or customer id")
    surname = view.name.split()[-1]
    page.get_by_label("Name, VIN, plate or customer id").fill(surname)
    page.keyboard.press("Enter")
    page.get_by_text("Matched on").first.wait_for()
    choose(page, "Open", f"{view.name} ({view.customer_id})")
    show(
        page,
        f"{desk.url}/customers?customer={view.customer_id}",
        f"{view.name} ({view.customer_id})",
        "Call priority",
    )
    body = page.locator('[data-testid="stMain"]').inner_text()
    for tag in view.tags:
        assert tag.label in body
    assert "Entitlements" in body and "Open complaints" in body
    assert re.search(r"\bNone\b", body) is None  # never a literal None

    assert page.locator('[data-testid="stTable"]').count() >= 4  # vehicles, complaints, entitlements, history
    assert view.open_complaints[0].complaint.complaint_id in body
    with page.expect_download() as download:
        page.get_by_text("Download the entitlement proof (JSON)").click()
    proof = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
    holds = ledger.verify_proof(proof, desk.key.public_key())
    assert {e.entitlement_id for e in holds} == {e.entitlement_id for e in view.entitlements}
    assert page.locator('[data-testid="stImage"] img').count() == 1  # the proof's QR code
    save(page, "7-customer", screenshot_dirs)

    # book a visit at the first free slot of their home center; it shows among their appointments
    page.get_by_text("Book a visit").click()
    page.get_by_role("button", name="Book this slot").click()
    page.get_by_text("Booked AP-").wait_for()
    before = {a.appointment_id for a in view.open_appointments}
    with desk.engine.connect() as connection:
        after = customers.customer_view(connection, view.customer_id, now=datetime.now(UTC)).open_appointments
    new = [a for a in after if a.appointment_id not in before]
    assert len(new) == 1 and len(after) == len(before) + 1
    assert page.locator('[data-testid="stTable"]').filter(has_text=new[0].appointment_id).count() == 1

    page.get_by_role("tab", name="Call list").click()
    page.get_by_text("Ranked by score").wait_for()
    with page.expect_download() as download:
        page.get_by_text("Download the call list (CSV)").click()
    lines = Path(download.value.path()).read_text(encoding="utf-8").splitlines()
    assert lines[0] == "Rank,Customer,Name,Contact,Home center,Score (points),Risk tags,Why call"
    assert len(lines) > 10 and "home dealer failed" in "\n".join(lines)
    save(page, "8-call-list", screenshot_dirs)


def test_a_complaint_is_moved_on_and_a_concurrent_change_is_refused(
    browser_page: Page, desk: Desk, screenshot_dirs: list[Path]
) -> None:
    page = browser_page
    ticket = next(t for t in complaints.list_tickets(desk.engine, open_only=True) if t.state == "new")
    show(page, f"{desk.url}/complaints?complaint={ticket.complaint_id}", "SLA", "Audit trail")
    body = page.locator('[data-testid="stMain"]').inner_text()
    assert ticket.complaint_id in body and "Response SLA" in body and "Resolution SLA" in body

    choose(page, "Move to", "in progress")
    page.get_by_label("Note").fill("workshop has the car")
    page.get_by_role("button", name="Move").click()
    page.get_by_text(f"{ticket.complaint_id} is now in progress.").wait_for()
    moved = complaints.get_ticket(desk.engine, ticket.complaint_id)
    assert moved.state == "in_progress" and moved.version == ticket.version + 1
    trail = complaints.audit_trail(desk.engine, ticket.complaint_id)
    assert trail[-1].after is not None and trail[-1].after.get("note") == "workshop has the car"

    # Another manager answers the customer meanwhile; this page still shows the version before.
    complaints.move(
        desk.engine,
        ticket.complaint_id,
        "waiting_for_customer",
        actor="other",
        expected_version=moved.version,
    )
    choose(page, "Move to", "resolved")
    page.get_by_role("button", name="Move").click()
    page.locator('[data-testid="stAlert"]').filter(has_text="version").first.wait_for()
    assert complaints.get_ticket(desk.engine, ticket.complaint_id).state == "waiting_for_customer"
    save(page, "9-complaint", screenshot_dirs)
