"""The owner's insights page in a real browser, after real searches through the page and the API."""

from __future__ import annotations

import csv
import io
import re
import urllib.request
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from backend import create_app
from backend.extensions import get_service
from tests.support.browser import ARTIFACTS, needs_chromium
from tests.support.catalogs import draw_image, image_bytes, make_app_config, write_catalog
from tests.support.servers import serve_app
from tests.system.test_browser import search_with_file_chooser

ADMIN_TOKEN = "owner-token-0123456789"

pytestmark = [pytest.mark.slow, needs_chromium]


@pytest.fixture(scope="module")
def base_url(tmp_path_factory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("insights-browser")
    config = make_app_config(root, write_catalog(root / "shop"))
    app = create_app(config | {"SECRET_KEY": "test-secret", "admin_token": ADMIN_TOKEN})
    get_service(app).sync()
    with serve_app(app) as url:
        yield url


@pytest.fixture
def page(new_page):
    """The owner's browser: signed in with the admin token (checked like every browser page)."""
    return new_page(
        http_credentials={"username": "owner", "password": ADMIN_TOKEN}, accept_downloads=True
    )


def api_search(base_url: str, colour: str, **fields: str) -> None:
    boundary = "browser-test"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in fields.items()
    ]
    body = (
        "".join(parts).encode()
        + f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="q.png"\r\n'
        f"Content-Type: image/png\r\n\r\n".encode()
        + image_bytes(draw_image(colour, "square"))
        + f"\r\n--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(
        f"{base_url}/api/search",
        data=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.status == 200


def test_the_insights_page_shows_the_searches_just_made(page, base_url, tmp_path):
    query = tmp_path / "query.png"
    draw_image("red", "circle", (640, 480)).save(query)
    search_with_file_chooser(page, base_url, query, threshold="0")
    with page.expect_download() as download:  # the results page's CSV of what it shows
        page.get_by_role("button", name="Download results (CSV)").click()
    rows = list(csv.DictReader(io.StringIO(download.value.path().read_text())))
    assert len(rows) == 7 and rows[0]["name"] == "Red ball"
    page.locator("[data-results] .card").first.get_by_role("link", name="More like this").click()
    page.wait_for_url("**/products/p1/similar*")
    other = tmp_path / "other.png"  # like no product exactly: nothing is shown at 100 %
    draw_image("cyan", "triangle", (640, 480)).save(other)
    search_with_file_chooser(page, base_url, other, threshold="100")
    api_search(base_url, "blue", category="clothes")
    api_search(base_url, "yellow", category="outdoor", threshold="0.99")

    page.goto(f"{base_url}/insights")
    expect(page.get_by_role("heading", name="Shop insights")).to_be_visible()
    # The page's own searches (upload, CSV refine, more like this, upload) and two API ones.
    assert page.locator('[data-stat="searches"]').inner_text() == "6"
    assert page.get_by_text("page 4 · API 2").is_visible()
    for name in (
        "Searches per day",
        "Products most often shown first",
        "Categories shoppers filter by",
        "Similarity of the best match",
    ):
        expect(page.get_by_role("img", name=re.compile(name))).to_be_visible()
    demand = page.locator("[data-unserved] tbody tr")
    assert demand.count() >= 1
    assert "Uploaded photo" in demand.first.inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "insights.png"), full_page=True)
    page.get_by_text("The figures as a table").first.click()  # the charts' table alternative
    expect(page.locator("table").first).to_be_visible()
