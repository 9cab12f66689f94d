"""Browser fixtures: Chromium through Playwright (skipped with the reason when missing, failed
under CI), one page per test, and where screenshots go (a temp dir, and PROGNOS_SCREENSHOTS when
set)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, PAGE_TIMEOUT_MS, VIEWPORT, missing

if TYPE_CHECKING:
    from playwright.sync_api import Page


@pytest.fixture(scope="module")
def browser_available() -> None:
    """Skip (or, under CI, fail) before anything is seeded when the browser cannot run."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing("the playwright package is not installed: pip install -e '.[dev]'")
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        missing(f"no Chromium at {CHROMIUM}: install the Debian package chromium (scripts/setup.sh)")


@pytest.fixture
def browser_page(browser_available: None) -> Iterator[Page]:
    from playwright.sync_api import Error, sync_playwright

    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        except Error as exc:
            missing(f"Chromium at {CHROMIUM} does not start: {str(exc).splitlines()[0]}")
        page = browser.new_page(viewport=VIEWPORT)
        page.set_default_timeout(PAGE_TIMEOUT_MS)
        yield page
        browser.close()


@pytest.fixture(scope="module")
def screenshot_dirs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    dirs = [tmp_path_factory.mktemp("screenshots")]
    if os.environ.get("PROGNOS_SCREENSHOTS"):
        extra = Path(os.environ["PROGNOS_SCREENSHOTS"])
        extra.mkdir(parents=True, exist_ok=True)
        dirs.append(extra)
    return dirs
