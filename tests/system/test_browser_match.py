"""The figure on a card in a real browser, with the calibrated model on the demo catalog: the
chance wording, a slider that speaks match, desktop and phone screenshots, no axe violation."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from tests.support.browser import ARTIFACTS, axe_violations, needs_chromium
from tests.support.catalogs import demo_config
from tests.support.servers import serve_app

pytestmark = [pytest.mark.slow, needs_chromium]

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
EXAMPLE = "100083"  # a shopper photo of a Golden Delicious apple (backend/data/examples.csv)


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory) -> Iterator[str]:
    from backend import create_app
    from backend.extensions import get_service

    app = create_app(demo_config(tmp_path_factory.mktemp("demo")) | {"SECRET_KEY": "test"})
    get_service(app).sync()
    with serve_app(app) as url:
        yield url


def test_cards_show_the_chance_and_the_slider_filters_by_it(new_page, axe, demo_url):
    page = new_page()
    page.goto(f"{demo_url}/examples/{EXAMPLE}")
    expect(page.get_by_text("Minimum chance it's the product")).to_be_visible()
    cards = page.locator("[data-results] .card")
    first = cards.first.locator(".score")
    expect(first).to_have_text(
        f"{cards.first.get_attribute('data-percent')}% chance it's this product"
    )
    page.screenshot(path=str(ARTIFACTS / "match-desktop.png"), full_page=True)
    best = int(cards.first.get_attribute("data-percent"))
    page.locator("#threshold").fill(str(best))
    for card in cards.all():
        assert card.is_visible() == (int(card.get_attribute("data-percent")) >= best)
    expect(page.locator("[data-threshold-text]")).to_have_text(f"{best}%")
    assert axe_violations(page, axe) == []


def test_on_a_phone_the_chance_reads_on_the_first_screen(new_page, axe, demo_url):
    page = new_page(**PHONE)
    page.goto(f"{demo_url}/examples/{EXAMPLE}")
    score = page.locator("[data-results] .card .score").first
    expect(score).to_contain_text("chance it's this product")
    box = score.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390  # not cut off at the edge
    page.screenshot(path=str(ARTIFACTS / "match-phone.png"))
    page.screenshot(path=str(ARTIFACTS / "match-phone-full.png"), full_page=True)
    assert axe_violations(page, axe) == []
