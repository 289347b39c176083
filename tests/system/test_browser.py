"""The pages in a real browser (Debian's chromium through Playwright) against a live server."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from backend.config import PACKAGE_DIR
from tests.support.browser import ARTIFACTS, needs_chromium, search_address
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
    page.wait_for_url(search_address(base_url))


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
    # No round trip; only the page's icon, which the browser fetches again for the address
    # the slider gives the page (its link).
    assert [url for url in requests if not url.endswith("/static/img/logo.svg")] == []
    expect(page).to_have_url(re.compile(r"/search\?query=[\w-]+&threshold=100&k=12$"))
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
    page.wait_for_url(search_address(base_url))
    assert page.locator("[data-results] .card").count() > 0


def test_errors_show_on_the_form_and_on_friendly_pages(page, base_url):
    page.goto(f"{base_url}/")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url(search_address(base_url))
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
    # Refining keeps the shopper photo: a GET of its own address, a link to the refined results.
    page.locator("#k").select_option("6")
    page.get_by_role("button", name="Update results").click()
    page.wait_for_url(re.compile(r"/examples/[^/?]+\?.*k=6"))
    expect(page.get_by_role("heading", name="Shopper photo")).to_be_visible()
    assert page.locator("[data-results] .card").count() == 6


PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}


def document_width(page) -> int:
    return page.evaluate("() => document.documentElement.scrollWidth")


def test_on_a_phone_the_pages_fit_the_screen_and_search_is_near_the_photo(new_page, demo_url):
    """390 px: no sideways scrolling (the shopper photos' row scrolls within itself), and the
    Search button within a screen of the upload control, not two screens below it."""
    ARTIFACTS.mkdir(exist_ok=True)
    page = new_page(**PHONE)
    page.goto(f"{demo_url}/")
    page.screenshot(path=str(ARTIFACTS / "home-phone.png"))
    page.screenshot(path=str(ARTIFACTS / "home-phone-full.png"), full_page=True)
    assert document_width(page) <= 390
    upload = page.locator("[data-dropzone]").bounding_box()
    button = page.get_by_role("button", name="Search").bounding_box()
    assert button["y"] >= upload["y"] + upload["height"]  # after it, as the form reads
    assert button["y"] + button["height"] <= upload["y"] + 844, (upload, button)
    photo = PACKAGE_DIR / "static" / "shoppers"
    page.locator("#file").set_input_files(str(next(photo.glob("*.jpg"))))
    page.get_by_role("button", name="Search").click()
    page.wait_for_url(search_address(demo_url))
    page.screenshot(path=str(ARTIFACTS / "results-phone-demo.png"), full_page=True)
    assert document_width(page) <= 390
    desktop = new_page()
    desktop.goto(f"{demo_url}/")
    desktop.screenshot(path=str(ARTIFACTS / "home-desktop.png"), full_page=True)
    assert document_width(desktop) <= 1280
