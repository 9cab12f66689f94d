"""What the browser tests share: Debian's Chromium driven by Playwright, a dashboard served by
`streamlit run` on a free port, and the page helpers (go to a page and wait for it, screenshot
it, read a metric)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

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


def missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so the browser test may not be skipped)")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def served_dashboard(argv: list[str], env: dict[str, str], log_path: Path) -> Iterator[str]:
    """`streamlit run` started with argv and env, until it answers; yields its URL and stops it."""
    port = int(next(arg.split("=", 1)[1] for arg in argv if arg.startswith("--server.port=")))
    url = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        server = subprocess.Popen(argv, env=env, stdout=log, stderr=log, start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not healthy(url):
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"streamlit did not start:\n{log_path.read_text()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def show(page: Page, target: str, *texts: str) -> None:
    """Open a URL, or go to a page by its link in the sidebar (no reload), and wait until every
    text is on the page and the script has finished."""
    if target.startswith("http"):
        page.goto(target)
    else:
        page.locator('[data-testid="stSidebarNav"] a').filter(has_text=target).click()
    for text in texts:
        page.get_by_text(text, exact=False).first.wait_for(state="visible")
    settle(page)


def settle(page: Page) -> None:
    """Wait until the page's script has finished its run (after a widget changed, say)."""
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


def choose(page: Page, label: str, option: str, *, exact: bool = True) -> None:
    """Pick `option` in the select box labelled `label`, or without `exact` the first option
    holding that text (the keyboard opens its list when a click alone does not)."""
    box = page.get_by_role("combobox", name=label)
    box.click()
    wanted = (
        page.get_by_role("option", name=option, exact=True)
        if exact
        else page.get_by_role("option").filter(has_text=option).first
    )
    if not wanted.is_visible():
        page.keyboard.press("ArrowDown")
    wanted.click()
