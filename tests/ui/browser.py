"""Headless Chromium for the dashboard's tests: find the system browser, and open a page
once it has settled (Streamlit renders over a websocket, in several passes)."""

from __future__ import annotations

import shutil
import time

from playwright.sync_api import Page

RENDER_TIMEOUT_MS = 60_000
SETTLE_MS = 750


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def rendered(page: Page, url: str, expected: list[str]) -> str:
    """Opens ``url`` and waits until ``expected`` texts are shown and the page has settled:
    no script running, no placeholder left, and the same content twice in a row."""
    page.goto(url)
    for text in expected:
        page.get_by_text(text).first.wait_for(timeout=RENDER_TIMEOUT_MS)
    deadline = time.monotonic() + RENDER_TIMEOUT_MS / 1000
    previous = None
    while time.monotonic() < deadline:
        page.wait_for_timeout(SETTLE_MS)
        busy = page.query_selector_all(
            "[data-testid=stStatusWidget], [data-testid=stSkeleton], .stSpinner"
        )
        content = page.content()
        if not busy and content == previous:
            return page.inner_text("body")
        previous = content
    raise AssertionError(f"{url} did not settle in {RENDER_TIMEOUT_MS / 1000:.0f} s")
