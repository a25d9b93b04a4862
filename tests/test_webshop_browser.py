"""A person shops in headless Chromium: search, open a product, pick options, buy, see the score.

Drives the human shop of a real server (waitress on 127.0.0.1, port 0) through the same session
state machine the agents use; requests to other hosts (product images) are blocked.
"""

from __future__ import annotations

import pytest

from environments.core.server import RunningServer, ServerSettings, create_app
from environments.webshop.spec import SPEC

CHROMIUM = "/usr/bin/chromium"
SHIRT_GOAL = 580
SHIRT_QUERY = "amazon essentials men's slim-fit long-sleeve solid pocket oxford shirt"


@pytest.fixture(scope="module")
def server_url():
    settings = ServerSettings(port=0, max_sessions=4, threads=4)
    factory = SPEC.make_factory()
    with RunningServer(create_app("webshop", factory, settings, SPEC.blueprints(factory)), settings) as running:
        yield running.url


@pytest.fixture(scope="module")
def browser():
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.mark.browser
def test_a_person_buys_the_target_product(server_url, browser):
    page = browser.new_page()
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(server_url) else route.abort())
    page.set_default_timeout(20_000)

    page.goto(f"{server_url}/?goal_index={SHIRT_GOAL}")
    assert page.inner_text("h2") == "WebShop"
    assert "slim fit, machine wash men's casual button-down shirts" in page.inner_text("#instruction-text")

    page.fill("#search_input", SHIRT_QUERY)
    with page.expect_navigation():
        page.get_by_role("button", name="Search").click()
    assert "/search_results/" in page.url
    assert "Total results: 50" in page.content()

    with page.expect_navigation():
        page.get_by_role("link", name="B07F2G93BJ").click()
    assert "/item_page/" in page.url
    assert "Amazon Essentials Men's Slim-fit Long-Sleeve Solid Pocket Oxford Shirt" in page.inner_text("h2")

    for value in ("lavender", "x-small"):
        with page.expect_navigation():
            page.get_by_text(value, exact=True).click()
        assert page.locator(f'input[type="radio"][value="{value}"]').is_checked()
    assert page.locator('input[type="radio"][value="lavender"]').is_checked()  # the first choice is kept

    with page.expect_navigation():
        page.get_by_role("button", name="Description").click()
    assert "/item_sub_page/" in page.url
    with page.expect_navigation():
        page.get_by_role("button", name="< Prev").click()
    assert "/item_page/" in page.url

    with page.expect_navigation():
        page.get_by_role("button", name="Buy Now").click()
    assert "/done/" in page.url
    score = page.inner_text("#reward")
    assert "Your score (min 0.0, max 1.0)" in score and "1.0" in score
    assert "B07F2G93BJ" in page.inner_text("#asin")
    page.close()
