"""The parts page as a planner uses it, in a real browser: `streamlit run` (the command
`prognos dashboard` runs) against a database seeded as production fills it (ingest's records,
the DMS import, the analytics job), opened in Debian's Chromium through Playwright. The page
opens on this week's decisions; the order list downloads as CSV and as XLSX, and both hold
one row per order line in the purchasing layout, with part names and whole packs. Screenshots
go to a temp dir, and to PROGNOS_SCREENSHOTS when set."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pytest
from openpyxl import load_workbook

from prognos.cloud.parts.decisions import ORDER_LIST_HEADINGS
from prognos.cloud.storage.client import InfluxClient, quote_identifier
from prognos.dashboard.cli import dashboard_command
from prognos.ops.state import StackInfo
from prognos.sim.dealers import MASTER
from tests.browser.test_dashboard_browser import Served
from tests.integration.test_dashboard_pages import seed_fleet
from tests.support.browser import free_port, metric, save, served_dashboard, show

if TYPE_CHECKING:
    from playwright.sync_api import Page

PACKS = {part: m.pack_size for part, m in MASTER.items()}
NAMES = {part: m.name for part, m in MASTER.items()}


@pytest.fixture(scope="module")
def served(
    browser_available: None, stack: StackInfo, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    client = InfluxClient(stack.influx_url, timeout_s=30.0)
    name = f"parts_{uuid.uuid4().hex[:12]}"
    client.create_database(name)
    work = tmp_path_factory.mktemp("parts-browser")
    try:
        fleet = seed_fleet(client, name, work)
        argv, env = dashboard_command(Path(stack.home), name, free_port())
        env.pop("PROGNOS_INFLUX_URL", None)
        with served_dashboard(argv, env, work / "streamlit.log") as url:
            yield Served(url, fleet)
    finally:
        client.query("DROP DATABASE " + quote_identifier(name), database=None, method="POST")
        client.close()


def check_order_list(table: pd.DataFrame, lines: int) -> None:
    """One row per order line, the purchasing columns, names from the parts master, whole packs."""
    assert list(table.columns) == list(ORDER_LIST_HEADINGS.values())
    assert len(table) == lines > 0
    assert set(table["Part name"]) <= set(NAMES.values())
    assert (table["Part name"] == table["Part number"].map(NAMES)).all()
    assert (table["Quantity"] % table["Part number"].map(PACKS) == 0).all() and (table["Quantity"] > 0).all()
    assert set(table["Unit"]) == {"EA"} and set(table["Currency"]) == {"EUR"}
    assert (table["Line cost"] - table["Quantity"] * table["Unit cost"]).abs().max() < 0.01
    assert table["Deliver to"].str.startswith("SC-").all()


def test_the_planner_sees_the_orders_with_names_and_downloads_the_order_list(
    browser_page: Page, served: Served, screenshot_dirs: list[Path]
) -> None:
    page = browser_page
    show(page, f"{served.url}/parts", "To decide this week", "Order list for purchasing")
    lines = int(metric(page, "Order lines to place"))
    assert lines > 0 and int(metric(page, "Transfers to make")) > 0
    decisions = page.locator('[data-testid="stTable"]').first
    text = decisions.inner_text()
    assert "Order from " in text and "Transfer from SC-" in text
    assert any(name in text for name in NAMES.values())
    assert "None" not in text and "nan" not in text
    save(page, "parts-1-decisions", screenshot_dirs)

    with page.expect_download() as csv_download:
        page.get_by_text("Download the order list (CSV)").click()
    assert csv_download.value.suggested_filename == "parts-orders.csv"
    check_order_list(pd.read_csv(csv_download.value.path()), lines)

    with page.expect_download() as xlsx_download:
        page.get_by_text("Download the order list (XLSX)").click()
    assert xlsx_download.value.suggested_filename == "parts-orders.xlsx"
    sheet = load_workbook(io.BytesIO(Path(xlsx_download.value.path()).read_bytes())).active
    rows = [[cell.value for cell in row] for row in sheet.iter_rows()]
    check_order_list(pd.DataFrame(rows[1:], columns=rows[0]), lines)

    page.get_by_text("largest value first").click()
    page.wait_for_timeout(1500)  # the script runs again with the decisions sorted by value
    page.get_by_text("Weekly forecast per service center and part").click()
    page.wait_for_timeout(500)
    save(page, "parts-2-whole-page", screenshot_dirs)
