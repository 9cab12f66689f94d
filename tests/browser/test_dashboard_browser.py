"""Every dashboard page in a real browser: `streamlit run` (the command `prognos dashboard`
runs) on a free port against the seeded database, opened with Debian's Chromium through
Playwright, each page checked for its key content and saved as a screenshot (in a temp dir,
and in PROGNOS_SCREENSHOTS when set).

Without Chromium or the playwright package the test is skipped with the reason, except when
CI is set: then it fails, so a CI machine cannot pass without the browser test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from prognos.cloud.storage.client import InfluxClient, quote_identifier
from prognos.dashboard.cli import dashboard_command
from prognos.ops.state import StackInfo
from tests.integration.test_dashboard_pages import BAD_LOT, DRIFT, PAD_WEAR, SeededFleet, seed_fleet
from tests.support.browser import free_port, metric, save, served_dashboard, show

if TYPE_CHECKING:
    from playwright.sync_api import Page


@dataclass(frozen=True)
class Served:
    url: str
    fleet: SeededFleet


@pytest.fixture(scope="module")
def served(
    browser_available: None, stack: StackInfo, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """A seeded database and `streamlit run` serving the dashboard against it."""
    client = InfluxClient(stack.influx_url, timeout_s=30.0)
    name = f"browser_{uuid.uuid4().hex[:12]}"
    client.create_database(name)
    work = tmp_path_factory.mktemp("browser")
    try:
        fleet = seed_fleet(client, name, work)
        argv, env = dashboard_command(Path(stack.home), name, free_port())
        env.pop("PROGNOS_INFLUX_URL", None)  # the stack in PROGNOS_HOME, as `prognos dashboard` finds it
        with served_dashboard(argv, env, work / "streamlit.log") as url:
            yield Served(url, fleet)
    finally:
        client.query("DROP DATABASE " + quote_identifier(name), database=None, method="POST")
        client.close()


def test_every_page_renders_its_key_content_in_chromium(
    browser_page: Page, served: Served, screenshot_dirs: list[Path]
) -> None:
    page, url, fleet = browser_page, served.url, served.fleet
    counts = fleet.summary.counts

    show(page, f"{url}/", "Vehicles monitored", "Alerts, most urgent first")
    assert metric(page, "Vehicles monitored") == "40"
    assert metric(page, "Act") == str(int(counts["vehicles_act"]))
    assert metric(page, "Open alerts") == str(int(counts["alerts"]))
    assert page.locator(".js-plotly-plot").count() == 2
    alerts = page.locator('[data-testid="stTable"]')
    assert alerts.count() == 1 and fleet.urgent in alerts.inner_text()  # the alerts, nothing cut off
    assert alerts.get_by_role("link", name=fleet.urgent).count() == 1  # each vehicle links to its page
    save(page, "1-fleet-health", screenshot_dirs)

    show(page, f"{url}/vehicle?vin={fleet.urgent}", "Recommended action", "Fault hypotheses")
    assert page.get_by_text("Replace the brake pads").count() >= 1
    assert page.get_by_text(f"P1 · {PAD_WEAR}").count() >= 1
    assert page.locator(".js-plotly-plot").count() == 3
    save(page, "2-vehicle-detail", screenshot_dirs)

    show(page, "Campaigns and cohorts", "Campaign vehicles", f"lot={BAD_LOT}:{DRIFT}")
    assert metric(page, "Campaigns") == "1"
    assert page.get_by_text("Download this campaign's vehicles (CSV)").count() == 1
    save(page, "3-campaigns", screenshot_dirs)

    show(page, "Dealer KPIs", "Dealer risk early warning", "complaints are rising")
    risky = page.locator('[data-testid="stAlert"]').filter(has_text="DLR-05")
    assert "at risk" in risky.first.inner_text()
    with page.expect_download() as download:
        page.get_by_text("Download the dealer ranking (CSV)").click()
    ranking = Path(download.value.path()).read_text(encoding="utf-8").splitlines()
    assert ranking[0].startswith("Rank,Dealer,Region,Orders opened,Orders closed,SLA compliance (%)")
    assert len(ranking) == 1 + 5  # the five dealers
    assert page.get_by_text("Deploy", exact=True).count() == 0  # the toolbar in viewer mode
    save(page, "4-dealer-kpis", screenshot_dirs)

    show(page, "Parts demand", "To decide this week", "Stock against need")
    assert int(metric(page, "Order lines to place")) >= 1
    assert page.locator(".js-plotly-plot").count() == 4
    save(page, "5-parts-demand", screenshot_dirs)

    show(page, "System", "Dead letters", "Gateways")
    assert metric(page, "Online") == "30" and metric(page, "Offline") == "2"
    assert metric(page, "Records stored per second") == "6.0"
    save(page, "6-system", screenshot_dirs)
