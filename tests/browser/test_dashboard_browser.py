"""Every dashboard page in a real browser: `streamlit run` (the command `prognos dashboard`
runs) on a free port against the seeded database, opened with Debian's Chromium through
Playwright, each page checked for its key content and saved as a screenshot (in a temp dir,
and in PROGNOS_SCREENSHOTS when set).

Without Chromium or the playwright package the test is skipped with the reason, except when
CI is set: then it fails, so a CI machine cannot pass without the browser test."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
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

if TYPE_CHECKING:
    from playwright.sync_api import Page, ViewportSize

CHROMIUM = os.environ.get("PROGNOS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
START_TIMEOUT_S = 30.0
PAGE_TIMEOUT_MS = 30_000
VIEWPORT: ViewportSize = {"width": 1400, "height": 1000}


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so the browser test may not be skipped)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser_available() -> None:
    """Skip (or, under CI, fail) before anything is seeded when the browser cannot run."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _missing("the playwright package is not installed: pip install -e '.[dev]'")
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        _missing(f"no Chromium at {CHROMIUM}: install the Debian package chromium (scripts/setup.sh)")


@pytest.fixture
def browser_page(browser_available: None) -> Iterator[Page]:
    from playwright.sync_api import Error, sync_playwright

    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        except Error as exc:
            _missing(f"Chromium at {CHROMIUM} does not start: {str(exc).splitlines()[0]}")
        page = browser.new_page(viewport=VIEWPORT)
        page.set_default_timeout(PAGE_TIMEOUT_MS)
        yield page
        browser.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


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
    log_path = work / "streamlit.log"
    server: subprocess.Popen[bytes] | None = None
    try:
        fleet = seed_fleet(client, name, work)
        port = _free_port()
        argv, env = dashboard_command(Path(stack.home), name, port)
        env.pop("PROGNOS_INFLUX_URL", None)  # the stack in PROGNOS_HOME, as `prognos dashboard` finds it
        with log_path.open("wb") as log:
            server = subprocess.Popen(argv, env=env, stdout=log, stderr=log, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _healthy(url):
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"streamlit did not start:\n{log_path.read_text()[-2000:]}")
            time.sleep(0.2)
        yield Served(url, fleet)
    finally:
        if server is not None:
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
        client.query("DROP DATABASE " + quote_identifier(name), database=None, method="POST")
        client.close()


@pytest.fixture(scope="module")
def screenshot_dirs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    dirs = [tmp_path_factory.mktemp("screenshots")]
    if os.environ.get("PROGNOS_SCREENSHOTS"):
        extra = Path(os.environ["PROGNOS_SCREENSHOTS"])
        extra.mkdir(parents=True, exist_ok=True)
        dirs.append(extra)
    return dirs


def show(page: Page, target: str, *texts: str) -> None:
    """Open a URL, or go to a page by its link in the sidebar (no reload), and wait until every
    text is on the page and the script has finished."""
    if target.startswith("http"):
        page.goto(target)
    else:
        page.locator('[data-testid="stSidebarNav"] a').filter(has_text=target).click()
    for text in texts:
        page.get_by_text(text, exact=False).first.wait_for(state="visible")
    page.wait_for_function(
        '() => !document.querySelector(\'[data-testid="stStatusWidget"] [data-testid="stSpinner"]\')'
        " && document.querySelectorAll('[data-testid=\"stSkeleton\"]').length === 0",
        polling=100,
    )
    page.wait_for_timeout(300)  # Plotly draws after the elements arrive


def save(page: Page, name: str, dirs: list[Path]) -> None:
    """Screenshot the whole page: the viewport grows to the content (Streamlit scrolls inside
    its main block, so a full-page screenshot alone would cut it off)."""
    first = dirs[0] / f"{name}.png"
    height = page.evaluate(
        "() => document.querySelector('[data-testid=\"stMainBlockContainer\"]').scrollHeight"
    )
    page.set_viewport_size({"width": VIEWPORT["width"], "height": max(VIEWPORT["height"], int(height) + 120)})
    page.wait_for_timeout(300)
    page.screenshot(path=str(first), full_page=True)
    page.set_viewport_size(VIEWPORT)
    assert first.stat().st_size > 10_000
    for extra in dirs[1:]:
        shutil.copyfile(first, extra / first.name)


def metric(page: Page, label: str) -> str:
    box = page.locator('[data-testid="stMetric"]').filter(has_text=label).first
    return box.locator('[data-testid="stMetricValue"]').inner_text().strip()


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
    assert page.locator('[data-testid="stDataFrame"]').count() == 1  # the alerts
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

    show(page, "Parts demand", "Reorder recommendations", "Stock against need")
    assert int(metric(page, "Units to order now")) >= 1
    assert page.locator(".js-plotly-plot").count() == 3
    save(page, "5-parts-demand", screenshot_dirs)

    show(page, "System", "Dead letters", "Gateways")
    assert metric(page, "Online") == "30" and metric(page, "Offline") == "2"
    assert metric(page, "Records stored per second") == "6.0"
    save(page, "6-system", screenshot_dirs)
