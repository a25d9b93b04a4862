"""The report in headless Chromium: no console errors, plots and tables rendered, hover and sort work."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from leaderboard.report import write_report
from tests.helpers.runs import build_main_run, build_second_run

CHROMIUM = "/usr/bin/chromium"

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"needs headless Chromium at {CHROMIUM}")]


def _save_artifact(screenshot: Path) -> None:
    """Keep the screenshot where CI collects artifacts, when it says where."""
    target = os.environ.get("HARNESS_TEST_ARTIFACTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(screenshot, Path(target) / screenshot.name)


def test_report_renders_in_chromium(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    page_path = write_report([build_main_run(tmp_path / "main"), build_second_run(tmp_path / "second")],
                             tmp_path / "report", compare=True)
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("requestfailed", lambda request: errors.append(f"request failed: {request.url}"))
            page.goto(page_path.as_uri())

            # plots: one per (environment, plotted metric), with a circle per measured row and a frontier line
            assert page.locator("svg.pareto").count() == 3
            assert page.locator("#pareto_webshop_score .point circle").count() == 8  # 5 tiny + 3 smollm2 rows
            assert page.locator("#pareto_alfworld_success .point circle").count() == 4
            # frontier: smollm2 untrained, tiny sft-only, tiny random, both prism-gini, smollm2 rl-only
            assert page.locator("#pareto_webshop_score .frontier-point").count() == 6
            assert page.locator("#pareto_webshop_score polyline.frontier").get_attribute("points").count(",") == 6
            box = page.locator("#pareto_webshop_score").bounding_box()
            assert box["width"] > 300 and box["height"] > 200

            # tables: rows per (run, strategy); unfinished cells listed; published rows in their own table
            assert page.locator("#webshop-results tbody tr").count() == 8
            assert page.locator("#alfworld-results tbody tr").count() == 4
            assert page.locator("#not-counted tbody tr").count() == 2
            assert page.locator("#webshop-published tbody tr").count() == 12
            assert page.locator("#webshop-results td.best").count() == 3  # score, success %, Δ score vs untrained
            assert page.locator("#webshop-results th", has_text="Δ score vs untrained").count() == 1
            assert page.locator("#warnings li").count() == 3

            # hover shows the point's strategy, seeds, score ± interval and compute
            tooltip = page.locator("#tooltip")
            assert tooltip.is_hidden()
            page.locator('#pareto_webshop_score .point[data-strategy="rl-only"]').first.hover()
            assert tooltip.is_visible()
            text = tooltip.inner_text()
            assert "rl-only" in text and "seeds:" in text and "score:" in text and "FLOPs per seed:" in text

            # clicking a header sorts: strategy A to Z first
            page.locator("#webshop-results th", has_text="strategy").click()
            first_column = page.locator("#webshop-results tbody tr td:nth-child(2)").all_inner_texts()
            assert first_column == sorted(first_column)

            screenshot = tmp_path / "leaderboard-report.png"
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    assert errors == []
    assert screenshot.stat().st_size > 50_000
    _save_artifact(screenshot)
