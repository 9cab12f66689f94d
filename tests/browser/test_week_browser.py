"""The This week page in Chromium, doing a service manager's job on a seeded fleet (InfluxDB,
analytics snapshot) and a desk seeded with the same vehicles: see whom to call and why, take the
call list away as CSV, book the proposed slot for the most urgent vehicle, and find that booking
on its owner's page."""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, select

from prognos.cloud.storage.client import InfluxClient, quote_identifier
from prognos.dashboard.cli import dashboard_command
from prognos.desk import schema
from prognos.desk.store import connect
from prognos.ops.state import StackInfo
from prognos.sim.dealers import make_dms
from prognos.sim.desk_seed import seed_desk
from tests.integration.test_dashboard_pages import DMS_ARGS, PAD_WEAR, SeededFleet, seed_fleet
from tests.support.browser import choose, free_port, metric, save, served_dashboard, settle, show

if TYPE_CHECKING:
    from playwright.sync_api import Page

# A booking clears the page's caches, so the run after it reads everything again: on a loaded
# machine that takes longer than a page's first paint.
SLOW_MS = 90_000


@dataclass(frozen=True)
class Week:
    url: str
    fleet: SeededFleet
    engine: Engine
    owner: tuple[str, str]  # customer id and name of the urgent vehicle's owner
    report_id: str  # the urgent vehicle's diagnosis report


@pytest.fixture(scope="module")
def week(
    browser_available: None, stack: StackInfo, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Week]:
    client = InfluxClient(stack.influx_url, timeout_s=30.0)
    name = f"week_{uuid.uuid4().hex[:12]}"
    client.create_database(name)
    work = tmp_path_factory.mktemp("week-browser")
    db = f"sqlite:///{work / 'desk.db'}"
    engine = connect(db)
    try:
        fleet = seed_fleet(client, name, work)
        now = datetime.now(UTC)
        seed_desk(
            engine, customers=80, seed=11, key=Ed25519PrivateKey.generate(), now=now, dms=make_dms(**DMS_ARGS)
        )
        v, c = schema.vehicle, schema.customer
        with engine.connect() as connection:
            owner = connection.execute(
                select(c.c.customer_id, c.c.name)
                .join(v, v.c.customer_id == c.c.customer_id)
                .where(v.c.vin == fleet.urgent)
            ).one()
            connection.execute(  # no open appointment yet, so the page proposes one
                schema.appointment.delete().where(schema.appointment.c.vin == fleet.urgent)
            )
            connection.commit()
        report_id = _store_report(engine, fleet.urgent, now)
        argv, env = dashboard_command(Path(stack.home), name, free_port(), desk_db=db)
        env.pop("PROGNOS_INFLUX_URL", None)
        with served_dashboard(argv, env, work / "streamlit.log") as url:
            yield Week(url, fleet, engine, (owner.customer_id, owner.name), report_id)
    finally:
        engine.dispose()
        client.query("DROP DATABASE " + quote_identifier(name), database=None, method="POST")
        client.close()


def test_a_service_manager_calls_the_urgent_owner_and_books_the_proposed_slot(
    browser_page: Page, week: Week, screenshot_dirs: list[Path]
) -> None:
    page, urgent = browser_page, week.fleet.urgent
    customer_id, name = week.owner
    show(page, f"{week.url}/week", "Vehicles due", "Proposed slot")
    assert int(metric(page, "To call")) >= 1
    calls = page.locator('[data-testid="stTable"]').filter(has_text="Proposed slot")
    assert calls.count() == 1
    row = calls.locator("tr").filter(has_text=urgent)
    assert row.get_by_role("link", name=name).count() == 1  # the owner opens their page
    assert row.get_by_role("link", name=urgent).count() == 1  # the vehicle opens its page
    assert "Brake pads near their wear limit" in row.inner_text() and "None" not in calls.inner_text()
    save(page, "10-this-week", screenshot_dirs)

    with page.expect_download() as download:
        page.get_by_text("Download the call list (CSV)").click()
    lines = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text(encoding="utf-8"))))
    mine = [line for line in lines if line["Vehicle"].startswith(urgent)]
    assert len(mine) == 1 and mine[0]["Customer"] == customer_id and mine[0]["Owner"] == name
    slot = mine[0]["Proposed slot"]
    assert slot.endswith("UTC") and "booked" not in slot

    page.get_by_text("Book a proposed slot").click()
    if urgent not in (page.get_by_role("combobox", name="Vehicle to book").get_attribute("value") or ""):
        choose(page, "Vehicle to book", urgent, exact=False)
        settle(page)  # the choice reruns the page: book once it has finished
    page.get_by_role("button", name="Book this slot").click()
    outcome = page.locator('[data-testid="stAlert"]').filter(has_text=re.compile("Booked AP-|slot"))
    outcome.first.wait_for(timeout=SLOW_MS)
    assert "Booked AP-" in outcome.first.inner_text(), outcome.first.inner_text()
    a = schema.appointment
    with week.engine.connect() as connection:
        booked = connection.execute(
            select(a.c.appointment_id, a.c.scheduled_at, a.c.parts).where(
                a.c.vin == urgent, a.c.status == "booked"
            )
        ).one()
    assert f"{booked.scheduled_at:%a %Y-%m-%d %H:%M} UTC" == slot  # the slot the list proposed
    assert booked.parts == "PG-BRK-3100"  # the brake pads, so the center can have them ready
    assert metric(page, "Already booked") != "0"

    link = page.get_by_role("link", name=f"{name}'s page")
    assert link.get_attribute("href") == f"customers?customer={customer_id}"
    show(page, f"{week.url}/customers?customer={customer_id}", f"{name} ({customer_id})", "Open appointments")
    page.locator('[data-testid="stTable"]').filter(has_text=booked.appointment_id).first.wait_for()
    save(page, "11-booked-on-customer", screenshot_dirs)

    # The center's plan lists the visit with the brake pads to have ready.
    sc = schema.service_center
    with week.engine.connect() as connection:
        center_id, center_name = connection.execute(
            select(sc.c.center_id, sc.c.name)
            .join(a, a.c.center_id == sc.c.center_id)
            .where(a.c.appointment_id == booked.appointment_id)
        ).one()
    show(page, f"{week.url}/week", "Vehicles due", "Center plan")
    page.get_by_role("tab", name="Center plan").click()
    choose(page, "Center", f"{center_name} ({center_id})")
    visit = page.locator('[data-testid="stTable"]').filter(has_text=booked.appointment_id)
    visit.first.wait_for()
    assert "brake pad set, one axle (PG-BRK-3100)" in visit.first.inner_text()


def _store_report(engine: Engine, vin: str, now: datetime) -> str:
    """A diagnosis report on the vehicle's pad wear, built and stored as the report worker does."""
    from prognos.cloud.reports.alerting import decide, record_alerts
    from prognos.cloud.reports.render import render_html
    from prognos.cloud.reports.report import Contact, build_report, to_dict
    from prognos.desk.reports import DeskReports
    from prognos.record import DiagnosticRecord, FaultHypothesis, SubsystemState

    store = DeskReports(engine)
    end_ms = int(now.timestamp() * 1000) - 60_000
    record = DiagnosticRecord(
        vin=vin,
        seq=99,
        window_start_ms=end_ms - 600_000,
        window_end_ms=end_ms,
        model_id="bundle",
        model_version="1",
        subsystems={"brakes": SubsystemState(0.35, 0.9)},
        faults=(FaultHypothesis(PAD_WEAR, 0.8, 9.0, 6.0, 14.0),),
    )
    found = record_alerts(record)[0]
    at = datetime.fromtimestamp(end_ms / 1000, UTC)
    decision = decide(store.states([(vin, found.code)]).get((vin, found.code)), found, at)
    context = store.context(vin, "brakes", home=None, now=now, centers=3, slots=3)
    report = build_report(
        fleet="demo",
        record=record,
        alert=found,
        trigger=decision.trigger or "raised",
        previous_priority=None,
        alert_id=store.alert_id(vin, found.code),
        created_at=now,
        received_at=now,
        causes=[(PAD_WEAR, 0.82)],
        centers=context.centers,
        slots=context.slots,
        contact=context.contact or Contact(source="none"),
    )
    assert store.save(report, to_dict(report), render_html(report), decision, [])
    return report.report_id


def test_a_service_manager_opens_the_report_and_books_a_slot_it_offers(
    browser_page: Page, week: Week, screenshot_dirs: list[Path]
) -> None:
    page, urgent = browser_page, week.fleet.urgent
    customer_id, name = week.owner
    a = schema.appointment
    with week.engine.begin() as connection:  # the visit booked before was cancelled
        connection.execute(a.delete().where(a.c.vin == urgent))
    show(page, f"{week.url}/week", "Vehicles due", "Show booked")
    page.get_by_text("Show booked").click()  # the page may still hold the booking for its cache's 30 s
    link = page.locator('[data-testid="stTable"]').get_by_role("link", name=week.report_id)
    assert link.get_attribute("href") == f"vehicle?vin={urgent}"

    show(page, f"{week.url}/vehicle?vin={urgent}", "Diagnosis reports", "Nearest capable service centers")
    body = page.locator('[data-testid="stMain"]').inner_text()
    assert "Likely causes" in body and name in body
    page.get_by_role("button", name="Book this slot").click()
    page.get_by_text("Booked AP-").wait_for(timeout=SLOW_MS)
    with week.engine.connect() as connection:
        booked = connection.execute(
            select(a.c.appointment_id, a.c.parts).where(a.c.vin == urgent, a.c.status == "booked")
        ).one()
    assert booked.parts == "PG-BRK-3100"
    save(page, "12-report-booked", screenshot_dirs)

    show(page, f"{week.url}/customers?customer={customer_id}", f"{name} ({customer_id})", "Open appointments")
    page.locator('[data-testid="stTable"]').filter(has_text=booked.appointment_id).first.wait_for()
