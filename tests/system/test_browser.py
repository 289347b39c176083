"""The pages in a real browser (Debian's chromium through Playwright) against a live server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.support.browser import ARTIFACTS, needs_chromium
from tests.support.catalogs import demo_config
from tests.support.servers import serve_app

pytestmark = [pytest.mark.slow, needs_chromium]


def visible_cards(page) -> int:
    return page.locator("[data-results] .card:visible").count()


def search_with_file_chooser(page, base_url: str, image: Path, threshold: str = "0") -> None:
    page.goto(f"{base_url}/")
    page.locator("#threshold").fill(threshold)
    with page.expect_file_chooser() as chooser:
        page.locator("[data-dropzone]").click()
    chooser.value.set_files(str(image))
    expect(page.locator("[data-preview]")).to_be_visible()  # once the image has loaded
    page.get_by_role("button", name="Search").click()
    page.wait_for_url(f"{base_url}/search")


def test_upload_through_the_file_chooser_shows_result_cards(page, base_url, query_image):
    search_with_file_chooser(page, base_url, query_image)
    expect(page.get_by_role("heading", name="Your image")).to_be_visible()
    assert visible_cards(page) == 7
    assert page.locator(".card-title").first.inner_text() == "Red ball"
    assert page.locator(".query-image").evaluate("img => img.naturalWidth") > 0
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "results.png"), full_page=True)


def test_the_slider_refilters_the_cards_instantly(page, base_url, query_image):
    search_with_file_chooser(page, base_url, query_image)
    before = visible_cards(page)
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    slider = page.locator("#threshold")
    slider.focus()
    page.keyboard.press("End")  # 100 %: only identical images remain
    after = visible_cards(page)
    assert after < before
    assert page.locator("[data-shown-count]").inner_text() == str(after)
    assert page.locator("[data-below-count]").inner_text() == str(before - after)
    assert page.locator("#threshold-value").inner_text() == "100%"
    assert requests == []  # no round trip
    page.keyboard.press("Home")
    assert visible_cards(page) == before


def test_refining_the_results_round_trips_with_the_same_image(page, base_url, query_image):
    search_with_file_chooser(page, base_url, query_image)
    page.locator("#k").select_option("6")
    page.get_by_role("button", name="Update results").click()
    page.wait_for_load_state()
    assert page.locator("[data-results] .card").count() == 6
    assert page.locator(".query-image").evaluate("img => img.naturalWidth") > 0


def test_more_like_this_is_followed_and_shareable(page, base_url, query_image):
    search_with_file_chooser(page, base_url, query_image)
    first = page.locator("[data-results] .card").first
    first.get_by_role("link", name="More like this").click()
    page.wait_for_url("**/products/p1/similar?threshold=0&k=12")
    expect(page.get_by_role("heading", name="More like this")).to_be_visible()
    assert page.locator(".query-caption").inner_text().startswith("Red ball")
    assert visible_cards(page) == 6  # every other product, itself excluded


def test_browsing_the_catalog_and_filtering_by_category(page, base_url):
    page.goto(f"{base_url}/products")
    assert page.locator(".grid .card").count() == 7
    page.locator("#category").select_option("clothes")  # applies at once with JavaScript
    page.wait_for_url("**/products?category=clothes")
    assert page.locator(".card-title").all_inner_texts() == ["Blue scarf", "Purple scarf"]
    page.locator(".card").first.get_by_role("link", name="More like this").click()
    page.wait_for_url("**/products/p4/similar")


def test_dropping_or_pasting_an_image_fills_the_form(page, base_url, query_image):
    page.goto(f"{base_url}/")
    data = list(query_image.read_bytes())
    for event in ("drop", "paste"):
        page.evaluate(
            """([bytes, kind]) => {
                const file = new File([new Uint8Array(bytes)], `${kind}.png`, {type: "image/png"});
                const transfer = new DataTransfer();
                transfer.items.add(file);
                const target = kind === "drop" ? document.querySelector("[data-dropzone]") : document;
                const init = kind === "drop" ? {dataTransfer: transfer} : {clipboardData: transfer};
                const Event = kind === "drop" ? DragEvent : ClipboardEvent;
                target.dispatchEvent(new Event(kind, {bubbles: true, cancelable: true, ...init}));
            }""",
            [data, event],
        )
        assert page.locator("#file").evaluate("input => input.files[0].name") == f"{event}.png"
        assert page.locator("[data-file-name]").inner_text().startswith(f"Selected: {event}.png")
        expect(page.locator("[data-preview]")).to_be_visible()
    page.get_by_role("button", name="Search").click()
    page.wait_for_url(f"{base_url}/search")
    assert page.locator("[data-results] .card").count() > 0


def test_errors_show_on_the_form_and_on_friendly_pages(page, base_url):
    page.goto(f"{base_url}/")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url(f"{base_url}/search")
    assert "Choose an image" in page.get_by_role("alert").inner_text()
    response = page.goto(f"{base_url}/no/such/page")
    assert response.status == 404
    expect(page.get_by_role("heading", name="Page not found")).to_be_visible()


def test_the_random_weights_banner_is_shown(page, base_url):
    page.goto(f"{base_url}/products")
    assert "random weights" in page.get_by_role("status").inner_text()


# ---- the demo: real features ---------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory) -> Iterator[str]:
    """The bundled demo catalog served as ./scripts/demo.sh serves it: efficientnet_lite0."""
    from backend import create_app
    from backend.extensions import get_service

    root = tmp_path_factory.mktemp("demo")
    app = create_app(demo_config(root) | {"SECRET_KEY": "test-secret"})
    get_service(app).sync()
    with serve_app(app) as url:
        yield url


def test_a_shopper_photo_on_the_home_page_finds_its_product_first(page, demo_url):
    page.goto(f"{demo_url}/")
    expect(
        page.get_by_role("heading", name="No photo at hand? Try one taken in a shop")
    ).to_be_visible()
    assert page.locator(".banner").count() == 0  # real weights: no random-weights banner
    assert "EfficientNet-Lite0" in page.locator(".site-footer").inner_text()
    examples = page.locator(".example-row .example")
    assert examples.count() == 8
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "demo-home.png"))
    photo = examples.filter(has_text="Golden Delicious")
    photo.click()
    page.wait_for_url("**/examples/*")
    expect(page.get_by_role("heading", name="Shopper photo")).to_be_visible()
    first = page.locator("[data-results] .card:visible").first
    assert first.locator(".card-title").inner_text() == "Golden Delicious"
    assert "100%" not in first.locator(".score").inner_text()  # not the same photo
    page.screenshot(path=str(ARTIFACTS / "demo-results.png"), full_page=True)
    # Refining keeps the shopper photo (a signed token, as for an upload).
    page.locator("#k").select_option("6")
    page.get_by_role("button", name="Update results").click()
    page.wait_for_url(f"{demo_url}/search")
    assert page.locator("[data-results] .card").count() == 6
