"""`loadgen report` in a real browser: Debian's Chromium, headless, driven by Playwright.

The page is opened from a file:// URL in an offline context, as someone would open a report
they were sent. Playwright never downloads a browser here: it drives /usr/bin/chromium
(apt-get install chromium). Needs no mesh.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from loadgen.report.html import write_report
from tests.integration.parts import missing
from tests.unit.test_html_report import make_summary, write_run

pytestmark = pytest.mark.integration

SCREENSHOT = Path(__file__).resolve().parents[2] / "reports" / "html-report-test.png"
STAGES = ("basic", "l7-router", "splitter")


def _unavailable(reason: str) -> None:
    """In CI a missing browser fails the run instead of skipping it (tests/integration/parts.py)."""
    missing(f"{reason} (apt-get install chromium; pip install playwright)")


def _chromium() -> str:
    path = os.environ.get("LOADGEN_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not os.access(path, os.X_OK):
        _unavailable(f"no Chromium at {path}")
    return path


def _playwright() -> Any:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright Python package is not installed")
    return sync_playwright


def test_report_renders_in_chromium(tmp_path):
    # Checked in the test, not in fixtures, so that a missing part FAILS the test rather than erroring it.
    chromium_path, sync_playwright = _chromium(), _playwright()
    run_dir = write_run(tmp_path / "browser-run", [
        make_summary("basic", started_at="2026-01-01T10:00:00+00:00", share_1=0.5),
        make_summary("l7-router", started_at="2026-01-01T10:01:00+00:00", base_ms=1.6, tail_ms=25, valid=False),
        make_summary("splitter", started_at="2026-01-01T10:02:00+00:00", base_ms=2.0, errors=9),
    ])
    page_path = write_report(run_dir)

    problems: list[str] = []
    requests: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path, args=["--no-sandbox"], timeout=60_000)
        try:
            context = browser.new_context(offline=True, viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.set_default_timeout(30_000)
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
                    if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(page_path.resolve().as_uri(), wait_until="load")

            assert page.title() == "loadgen report: browser-run"
            for stage in STAGES:
                section = page.locator(f'[data-stage="{stage}"]')
                assert section.count() == 1, stage
                assert section.is_visible(), stage
                assert section.locator("table").first.is_visible(), stage
                assert page.locator(f"#stage-table thead th:has-text('{stage}')").count() == 1, stage
            # The chart is drawn, inside its box, one corrected and one service line per stage.
            svg = page.locator("svg#spectrum")
            assert svg.is_visible()
            chart = svg.bounding_box()
            assert chart and chart["width"] > 400 and chart["height"] > 200
            assert page.locator("svg#spectrum g.series").count() == len(STAGES)
            for stage in STAGES:
                series = page.locator(f'svg#spectrum g.series[data-series="{stage}"]')
                for line in (series.locator("polyline.corrected"), series.locator("polyline.service")):
                    box = line.bounding_box()
                    assert box, stage
                    assert chart["x"] <= box["x"] and box["x"] + box["width"] <= chart["x"] + chart["width"]
                    assert chart["y"] <= box["y"] and box["y"] + box["height"] <= chart["y"] + chart["height"]
            assert page.get_by_text("INVALID").is_visible()

            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
        finally:
            browser.close()

    assert not problems, problems
    # Self-contained: the browser fetched the page itself and nothing else.
    assert requests == [page_path.resolve().as_uri()], requests
    assert SCREENSHOT.stat().st_size > 10_000
