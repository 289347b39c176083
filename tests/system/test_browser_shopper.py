"""What shoppers see, in a real browser: new photos at once, results first on a phone, links
that keep the slider, limits checked before uploading, honest pages without JavaScript, and no
accessibility violation (axe-core) on any page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from backend import create_app
from backend.extensions import get_service
from tests.support.browser import ARTIFACTS, axe_violations, needs_chromium, search_address
from tests.support.catalogs import draw_image, make_app_config, write_catalog
from tests.support.servers import serve_app

pytestmark = [pytest.mark.slow, needs_chromium]

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}


def search(page, base_url: str, image: Path, threshold: str = "0") -> None:
    page.goto(f"{base_url}/")
    page.locator("#threshold").fill(threshold)
    page.locator("#file").set_input_files(str(image))
    page.get_by_role("button", name="Search").click()
    page.wait_for_url(search_address(base_url))


def centre_colour(page, selector: str) -> list[int]:
    """The RGB of the middle pixel of an image on the page, once it has loaded."""
    image = page.locator(selector).first
    image.scroll_into_view_if_needed()
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=image.element_handle()
    )
    return image.evaluate(
        """img => {
            const canvas = document.createElement("canvas");
            canvas.width = img.naturalWidth;
            canvas.height = img.naturalHeight;
            const context = canvas.getContext("2d");
            context.drawImage(img, 0, 0);
            const x = Math.floor(img.naturalWidth / 2), y = Math.floor(img.naturalHeight * 0.6);
            return Array.from(context.getImageData(x, y, 1, 1).data.slice(0, 3));
        }"""
    )


def test_a_replaced_photo_shows_at_once_after_a_re_index(page, tmp_path):
    shop = write_catalog(tmp_path / "shop")
    app = create_app(make_app_config(tmp_path, shop))
    service = get_service(app)
    service.sync()
    with serve_app(app) as url:
        page.goto(f"{url}/products")
        red = centre_colour(page, "img[src^='/images/p1']")
        assert red[0] > 150 and red[1] < 100  # the red ball
        draw_image("green", "square").save(shop.parent / "images" / "p1.png")  # the new photo
        service.sync()
        page.goto(f"{url}/")  # browse on, then come back, as a shopper would
        page.goto(f"{url}/products")
        green = centre_colour(page, "img[src^='/images/p1']")
        assert green[1] > 150 and green[0] < 100, green
        page.get_by_role("link", name="More like this: Red ball", exact=True).click()
        page.wait_for_url("**/products/p1/similar")
        assert centre_colour(page, ".query-image")[1] > 150


def test_on_a_phone_the_first_results_are_on_the_first_screen(new_page, base_url, query_image):
    page = new_page(**PHONE)
    search(page, base_url, query_image)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "results-phone.png"))
    page.screenshot(path=str(ARTIFACTS / "results-phone-full.png"), full_page=True)
    first_two = page.locator("[data-results] .card .card-image")
    for index in (0, 1):
        box = first_two.nth(index).bounding_box()
        assert box["y"] + box["height"] <= 844, box  # the photo of each, wholly visible
    assert page.locator(".card-title").first.bounding_box()["y"] < 844
    # The refine controls are one tap away and work.
    page.get_by_role("link", name="Refine results").click()
    slider = page.locator("#threshold")
    expect(slider).to_be_in_viewport()
    page.locator("#k").select_option("6")
    page.get_by_role("button", name="Update results").click()
    page.wait_for_load_state()
    assert page.locator("[data-results] .card").count() == 6


def test_desktop_results_screenshot(page, base_url, query_image):
    search(page, base_url, query_image)
    first = page.locator("[data-results] .card").first.bounding_box()
    assert first["y"] < 400 and first["x"] > 300  # beside the query, at the top
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "results-desktop.png"))


def test_more_like_this_keeps_the_sliders_current_value(page, base_url, query_image):
    search(page, base_url, query_image)
    slider = page.locator("#threshold")
    assert slider.get_attribute("type") == "range"  # the script made the number box a slider
    slider.fill("35")
    expect(page.locator("#threshold-value")).to_have_text("35%")
    expect(page.locator("#threshold-value")).to_be_visible()
    page.locator("[data-results] .card").first.get_by_role("link", name="More like this").click()
    page.wait_for_url("**/products/p1/similar?threshold=35&k=12")
    assert page.locator("#threshold").input_value() == "35"


def test_the_100_percent_position_keeps_what_is_labelled_100_percent(page, base_url, tmp_path):
    image = tmp_path / "tent.png"
    draw_image("yellow", "triangle").save(image)  # the tent's own picture
    search(page, base_url, image)
    page.locator("#threshold").fill("100")
    visible = page.locator("[data-results] .card:visible")
    expect(visible).to_have_count(1)
    assert visible.locator(".score").inner_text() == "similarity 1.00, not calibrated"
    for card in page.locator("[data-results] .card").all():
        label = int(card.get_attribute("data-percent"))
        assert card.is_visible() == (label >= 100)


def test_an_oversized_upload_is_refused_before_it_is_sent(page, base_url, tmp_path):
    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(11 * 1024 * 1024))  # over the 10 MB limit
    page.goto(f"{base_url}/")
    page.locator("#file").set_input_files(str(big))
    alert = page.locator("[data-size-error]")
    expect(alert).to_have_text(
        "That file is 11.0 MB, over the 10 MB limit; choose a smaller image."
    )
    posted: list[str] = []
    page.on(
        "request", lambda request: posted.append(request.url) if request.method == "POST" else None
    )
    page.get_by_role("button", name="Search").click()
    page.wait_for_timeout(300)
    assert posted == [] and page.url == f"{base_url}/"


def test_with_javascript_drop_and_paste_are_offered(page, base_url):
    page.goto(f"{base_url}/")
    expect(page.get_by_text("Drop an image here")).to_be_visible()
    expect(page.get_by_text("you can also paste one")).to_be_visible()
    expect(page.get_by_text("Choose an image file")).to_be_hidden()
    expect(page.locator("#threshold-value")).to_be_visible()


def test_without_javascript_the_pages_promise_only_what_works(new_page, base_url, query_image):
    page = new_page(java_script_enabled=False)
    page.goto(f"{base_url}/")
    expect(page.get_by_text("Drop an image here")).to_be_hidden()
    expect(page.get_by_text("paste one")).to_be_hidden()
    expect(page.get_by_text("Choose an image file")).to_be_visible()
    threshold = page.locator("#threshold")
    assert threshold.get_attribute("type") == "number"  # what it shows is what is sent
    expect(page.locator("#threshold-value")).to_be_hidden()
    threshold.fill("42")
    page.locator("#file").set_input_files(str(query_image))
    page.get_by_role("button", name="Search").click()
    page.wait_for_url(search_address(base_url))
    expect(page.locator("[data-threshold-text]")).to_have_text("42%")
    link = page.locator("[data-results] .card-link").first.get_attribute("href")
    assert "threshold=42" in link


def test_no_page_has_an_accessibility_violation(new_page, axe, base_url, query_image):
    """axe-core on every page and state: desktop and phone, forms with errors, results, empty."""
    problems: list[str] = []
    for options in ({}, PHONE):
        page = new_page(**options)
        for path in (
            "/",
            "/products",
            "/products?category=clothes",
            "/products/p1/similar",
            "/products/p1/similar?threshold=100",
            "/no/such/page",
        ):
            page.goto(f"{base_url}{path}")
            problems += axe_violations(page, axe)
        page.get_by_role("link", name="Search", exact=True).click()
        page.get_by_role("button", name="Search").click()  # no image: the form's error
        page.wait_for_url(search_address(base_url))
        problems += axe_violations(page, axe)
        search(page, base_url, query_image)
        problems += axe_violations(page, axe)
        page.locator("#threshold").fill("100")  # cards hidden, the "below" note shown
        problems += axe_violations(page, axe)
    assert problems == []


def visible_titles(page) -> list[str]:
    return page.locator("[data-results] .card:visible .card-title").all_inner_texts()


def test_refined_results_are_a_link_that_shows_them_again(new_page, base_url, query_image):
    """The address follows the slider as it filters; opened elsewhere, it shows the same."""
    page = new_page()
    search(page, base_url, query_image)
    assert "query=" in page.url  # a POSTed search's address became its link at once
    page.locator("#k").select_option("6")
    page.get_by_role("button", name="Update results").click()  # a GET, without uploading again
    page.wait_for_url("**/search?query=*&k=6*")
    slider = page.locator("#threshold")
    slider.fill("40")
    expect(page.locator("[data-threshold-text]")).to_have_text("40%")
    expect(page).to_have_url(re.compile(r"/search\?query=[\w-]+&threshold=40&k=6$"))
    assert page.locator("[data-share-link]").get_attribute("href") in page.url
    shown = visible_titles(page)
    other = new_page(**PHONE)  # another visitor: no cookie, no history, only the address
    other.goto(page.url)
    assert visible_titles(other) == shown and shown
    expect(other.locator("[data-threshold-text]")).to_have_text("40%")
    assert other.locator(".query-image").get_attribute("src").startswith("data:image/jpeg")
    other.reload()  # and a reload shows them again, no "resend the form?"
    assert visible_titles(other) == shown


def test_a_refine_error_keeps_the_photo_and_says_what_is_wrong(
    new_page, axe, base_url, query_image
):
    page = new_page()
    search(page, base_url, query_image)
    page.locator("#min_price").fill("50")
    page.locator("#max_price").fill("10")
    page.get_by_role("button", name="Update results").click()
    alert = page.locator("#form-error")
    expect(alert).to_contain_text("The lowest price (50) is above the highest price (10)")
    assert "min_price" not in alert.inner_text()
    preview = page.locator("[data-preview]")
    expect(preview).to_be_visible()  # the photo searched with, not an empty drop zone
    assert preview.get_attribute("src").startswith("data:image/jpeg")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "refine-error-desktop.png"), full_page=True)
    assert axe_violations(page, axe) == []
    page.locator("#min_price").fill("")
    page.get_by_role("button", name="Search").click()  # no new upload needed
    page.wait_for_url(search_address(base_url))
    expect(page.get_by_role("heading", name="Your image")).to_be_visible()
    assert page.locator("[data-results] .card").count() > 0


def test_without_javascript_refining_is_a_link_too(new_page, base_url, query_image):
    page = new_page(java_script_enabled=False)
    page.goto(f"{base_url}/")
    page.locator("#file").set_input_files(str(query_image))
    page.locator("#threshold").fill("0")
    page.get_by_role("button", name="Search").click()
    page.locator("#k").select_option("6")
    page.get_by_role("button", name="Update results").click()
    page.wait_for_url("**/search?query=*")
    assert page.locator("[data-results] .card").count() == 6
    share = page.locator("[data-share-link]").get_attribute("href")
    assert "k=6" in share
