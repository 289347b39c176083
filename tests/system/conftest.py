"""Browser fixtures: one chromium per module, and pages checked for script errors, CSP
violations and accessibility (axe-core) before they close."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, axe_source, axe_violations
from tests.support.catalogs import draw_image
from tests.support.servers import serve_app


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def axe() -> str:
    return axe_source()


@pytest.fixture
def new_page(browser, axe, request):
    """Open pages that fail the test on a script error, a CSP violation, or an axe violation of
    the page they end on (tests check the pages they pass through with `axe_violations`)."""
    opened = []

    def open_page(**context_options):
        options = {"viewport": {"width": 1280, "height": 900}} | context_options
        context = browser.new_context(**options)
        page = context.new_page()
        page.set_default_timeout(20_000)
        problems: list[str] = []
        page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
        page.on(
            "console",
            lambda message: (
                problems.append(message.text) if "Content Security Policy" in message.text else None
            ),
        )
        opened.append((context, page, problems, options.get("java_script_enabled", True)))
        return page

    yield open_page
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for context, page, problems, scripted in opened:
        if not failed and scripted and page.url.startswith("http"):
            problems += axe_violations(page, axe)
        context.close()
        assert problems == []


@pytest.fixture
def page(new_page):
    """A fresh desktop page (1280x900), checked as `new_page` says."""
    return new_page()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.rep_call = report
    return report


@pytest.fixture(scope="module")
def base_url(shared_app) -> Iterator[str]:
    """The shared test app on a real HTTP server."""
    with serve_app(shared_app) as url:
        yield url


@pytest.fixture
def query_image(tmp_path) -> Path:
    """A 640x480 shopper photo: a red circle."""
    path = tmp_path / "query.png"
    draw_image("red", "circle", (640, 480)).save(path)
    return path
