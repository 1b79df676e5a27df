"""The dashboard as a user sees it: ``inferwatch ui`` as a process, every page in headless Chromium.

Needs the ``chromium`` browser (Debian package ``chromium``), driven through
Playwright. Without it the test is skipped, unless ``INFERWATCH_BROWSER=required``
(as in CI), where a missing browser fails. Screenshots go to
``$INFERWATCH_ARTIFACTS/screenshots`` (default: the test's temporary directory).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from bench.ports import free_port
from inferwatch.process import healthy
from tests.ui.browser import chromium, rendered
from tests.ui.conftest import Seeded
from tests.ui.seeding import ANSWER

READY_TIMEOUT_S = 90
# Each page: its path and texts that must be on it once it has rendered.
PAGES = {
    "overview": ("", ["Request rate", "2.67 req/min", "7.5 %", "Firing alerts"]),
    "latency": ("latency", ["Where the time goes", "Distribution"]),
    "cost": ("cost", ["Cost in range", "By model", "Token volumes"]),
    "quality": ("quality", ["Worst-scored answers", "Thumbs down", "Feedback against"]),
    "gpu": ("gpu", ["GPU & engine", "vLLM engine"]),
    "traces": ("traces", ["The newest 160 matching requests"]),
    "alerts": ("alerts", ["Pending and firing", "Rules", "Silences"]),
}


@pytest.fixture(scope="module")
def browser_path() -> str:
    found = chromium()
    if found is None:
        if os.environ.get("INFERWATCH_BROWSER") == "required":
            pytest.fail("INFERWATCH_BROWSER=required but no chromium on PATH")
        pytest.skip("no chromium on PATH (apt-get install chromium)")
    return found


@pytest.fixture(scope="module")
def dashboard(seeded: Seeded, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "INFERWATCH_DATABASE_URL": seeded.url,
        "INFERWATCH_HOME": str(tmp_path_factory.mktemp("home")),
        "INFERWATCH_ALERTING__PORT": "9",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "inferwatch.cli", "ui", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not healthy(f"{url}/_stcore/health"):
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            assert time.monotonic() < deadline, "the dashboard did not start"
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0
        # The dashboard's Streamlit child went with it.
        assert subprocess.run(["pgrep", "-f", f"server.port {port}"], check=False).returncode == 1


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = os.environ.get("INFERWATCH_ARTIFACTS")
    path = Path(root) / "screenshots" if root else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_every_page_in_a_real_browser(
    browser_path: str, dashboard: str, seeded: Seeded, screenshots: Path
) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1400})
            for name, (path, expected) in PAGES.items():
                body = rendered(page, f"{dashboard}/{path}", expected)
                assert "Traceback" not in body, name
                assert not page.query_selector_all("[data-testid=stException]"), name
                page.screenshot(path=screenshots / f"{name}.png", full_page=True)
            if "No GPU" in rendered(page, f"{dashboard}/gpu", ["vLLM engine"]):
                pytest.fail("the GPU page says there is no GPU, yet samples were seeded")
            url = f"{dashboard}/traces?trace={seeded.known_trace}"
            body = rendered(page, url, ["Evaluations", ANSWER])
            assert seeded.known_trace in body
            page.screenshot(path=screenshots / "trace.png", full_page=True)
        finally:
            browser.close()
    assert sorted(p.name for p in screenshots.glob("*.png")) == sorted(
        [f"{name}.png" for name in PAGES] + ["trace.png"]
    )
