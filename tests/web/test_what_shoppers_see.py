"""What shoppers see is true: no dead cards, labels that match the filter, honest wording."""

from __future__ import annotations

import io
import re

import pytest

from backend import create_app
from backend.catalog import Product
from backend.extensions import get_service
from backend.options import SearchOptions, match_percent
from backend.search import Hit, SearchResult
from tests.support.catalogs import draw_image, image_bytes, write_catalog

TOKEN = "shop-admin-token-for-tests"


def upload(client, data: bytes, **fields):
    form = {"file": (io.BytesIO(data), "query.png")} | fields
    return client.post("/search", data=form, content_type="multipart/form-data")


@pytest.fixture
def shop_with_a_broken_image(app_config, tmp_path):
    """The test shop plus one product whose image is missing, synced."""
    shop = write_catalog(
        tmp_path / "broken-shop", extra_rows=[["miss", "Ghost", "toys", "1", "images/none.png"]]
    )
    app = create_app(
        app_config | {"catalog_path": shop, "index_path": tmp_path / "b.csv", "admin_token": TOKEN}
    )
    get_service(app).sync()
    return app.test_client()


def test_the_catalog_shows_and_counts_only_searchable_products(shop_with_a_broken_image):
    client = shop_with_a_broken_image
    html = client.get("/products").get_data(as_text=True)
    assert "7 products" in html
    assert (
        "Ghost" not in html and "/products/miss/similar" not in html and "/images/miss" not in html
    )
    listed = client.get("/api/products").json
    assert listed["total"] == 7 and "miss" not in {p["id"] for p in listed["products"]}
    assert client.get("/products/miss/similar").status_code == 404
    failed = client.get("/readyz", headers={"Authorization": f"Bearer {TOKEN}"}).json["failed"]
    assert failed == [{"id": "miss", "reason": "image file 'images/none.png' not found"}]


def test_menus_offer_only_categories_with_searchable_products(app_config, tmp_path):
    shop = write_catalog(
        tmp_path / "shop2", extra_rows=[["miss", "Ghost", "boats", "1", "images/none.png"]]
    )
    client = create_app(
        app_config | {"catalog_path": shop, "index_path": tmp_path / "x.csv"}
    ).test_client()
    assert '<option value="boats">' not in client.get("/").get_data(as_text=True)
    # The category is in the catalog: its page is empty, not a 400.
    assert client.get("/products?category=boats").status_code == 200


def hit(similarity: float) -> Hit:
    return Hit(Product("p", "P", "c", None, "p.png"), similarity)


@pytest.mark.parametrize(
    ("similarity", "label", "shown_at_100"),
    [(0.99999994, 100, True), (1.0000001, 100, True), (0.996, 99, False), (0.6999, 69, False)],
)
def test_the_label_and_the_filter_round_alike(similarity, label, shown_at_100):
    assert match_percent(similarity) == label
    at_label = SearchResult([hit(similarity)], SearchOptions(threshold=label / 100), 1.0)
    assert at_label.shown  # "N % match" passes the N % filter...
    above = SearchResult([hit(similarity)], SearchOptions(threshold=min(label + 1, 100) / 100), 1.0)
    assert bool(above.shown) == (shown_at_100 and label == 100)  # ...and not N+1 %


def test_an_identical_image_is_similarity_1_shown_at_100(shared_client):
    html = upload(shared_client, image_bytes(draw_image("yellow", "triangle")), threshold="100")
    html = html.get_data(as_text=True)
    card = re.search(r'<li class="card result" data-similarity="[^"]+" data-percent="(\d+)">', html)
    assert card and card[1] == "100"  # the first card is shown, not hidden, at 100 %
    # The test model has no calibration: its cards say so, never a cosine as a percentage.
    assert "similarity 1.00, not calibrated" in html and "% match" not in html
    labels = re.findall(
        r'data-percent="(\d+)".*?>similarity (\d)\.(\d\d), not calibrated<', html, re.S
    )
    assert labels
    for percent, units, hundredths in labels:
        assert int(percent) == int(units) * 100 + int(hundredths)


@pytest.mark.parametrize(
    ("threshold", "percent"),
    [("0.7", 70), ("0.05", 5), ("70", 70), ("1", 1), ("1.0", 100), ("0", 0)],
)
def test_a_shared_link_threshold_is_a_percent_or_a_similarity_never_misread(
    shared_client, threshold, percent
):
    html = shared_client.get(f"/products/p1/similar?threshold={threshold}").get_data(as_text=True)
    assert f'name="threshold" min="0" max="100" step="1" value="{percent}"' in html
    assert f"<span data-threshold-text>{percent}%</span>" in html


@pytest.mark.parametrize("threshold", ["0.705", "70.5", "150", "-1"])
def test_a_threshold_that_is_not_a_whole_percent_is_refused_with_the_forms(
    shared_client, threshold
):
    response = shared_client.get(f"/products/p1/similar?threshold={threshold}")
    assert response.status_code == 400
    text = response.get_data(as_text=True)
    assert "a whole percent between 0 and 100 (e.g. 70), or a similarity between 0 and 1" in text


def test_without_javascript_the_form_promises_only_what_works(shared_client):
    html = shared_client.get("/").get_data(as_text=True)
    # Drop and paste need the script: their words are marked for it, and hidden without it.
    assert '<span class="dropzone-title js-only">Drop an image here</span>' in html
    assert re.search(
        r'<span class="dropzone-hint js-only">[^<]*<span[^>]*>choose a file</span>[^<]*paste', html
    )
    assert '<span class="dropzone-title no-js-only">Choose an image file</span>' in html
    # The threshold is a number box, whose value shown is the value sent; the slider's live
    # value label exists only for the script to fill in.
    assert re.search(r'<input type="number" id="threshold" name="threshold"', html)
    assert 'class="slider-value js-only"' in html
    with shared_client.get("/static/css/app.css") as response:
        css = response.get_data(as_text=True)
    assert "html:not(.js) .js-only { display: none !important; }" in css
    assert ".js .no-js-only { display: none !important; }" in css


def test_one_name_for_the_category_control_everywhere(shared_client):
    pages = [
        shared_client.get("/").get_data(as_text=True),
        shared_client.get("/products").get_data(as_text=True),
        shared_client.get("/products/p1/similar").get_data(as_text=True),
    ]
    for html in pages:
        assert '<label for="category">Category</label>' in html
        assert "Search in" not in html


def test_the_shopper_menu_has_no_raw_json_and_the_footer_keeps_the_api(shared_client):
    html = shared_client.get("/").get_data(as_text=True)
    nav = re.search(r'<nav aria-label="Main">(.*?)</nav>', html, re.S)[1]
    footer = re.search(r'<footer class="site-footer">(.*?)</footer>', html, re.S)[1]
    assert "/api/" not in nav and ">API<" not in nav
    assert 'href="/api/openapi.json"' in footer


@pytest.mark.parametrize(
    ("currency", "shown"), [(None, ">9.50<"), ("€", ">€9.50<"), ("CHF", ">9.50\u00a0CHF<")]
)
def test_prices_show_the_configured_currency(app_config, currency, shown):
    client = create_app(app_config | {"currency": currency}).test_client()
    html = client.get("/products").get_data(as_text=True)
    assert f'<span class="price">{shown[1:-1]}</span>' in html
    legend = (
        "<legend>Price</legend>" if currency is None else f"<legend>Price ({currency})</legend>"
    )
    assert legend in client.get("/").get_data(as_text=True)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"k": "0"}, "The number of results (0) must be a whole number from 1 to 100."),
        ({"threshold": "150"}, "The minimum similarity (150) must be a whole percent"),
        (
            {"image_url": "ftp://x.example/a.png"},
            "The image URL must be an http:// or https:// address; ftp:// addresses are not "
            "fetched.",
        ),
        (
            {"image_url": "http://images.example:8080/a.png"},
            "port 8080 is not allowed (only 80 and 443)",
        ),
        (
            {"min_price": "5", "max_price": "2"},
            "The lowest price (5) is above the highest price (2)",
        ),
    ],
)
def test_form_errors_are_worded_for_people_not_as_parameters(shared_client, fields, message):
    response = shared_client.post(
        "/search", data={"image_url": "https://shop.example/a.png"} | fields
    )
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    alert = re.search(r'<div class="alert" role="alert" id="form-error">(.*?)</div>', html, re.S)
    assert message in alert[1]
    assert not re.search(r"\b(k|threshold|image_url|min_price|max_price)\b", alert[1])


def test_refining_without_javascript_keeps_the_threshold_in_more_like_this(shared_client):
    first = upload(shared_client, image_bytes(draw_image("blue", "stripes")), threshold="0", k="6")
    token = re.search(r'name="query" value="([^"]+)"', first.get_data(as_text=True))[1]
    again = shared_client.post("/search", data={"query": token, "threshold": "35", "k": "6"})
    links = re.findall(r'href="(/products/[^"]+/similar[^"]*)"', again.get_data(as_text=True))
    assert links and all("threshold=35&amp;k=6" in link for link in links)


def test_the_upload_limit_is_on_the_form_for_the_script_to_check(app_config):
    client = create_app(app_config | {"max_upload_mb": 0.5}).test_client()
    html = client.get("/").get_data(as_text=True)
    assert 'data-max-bytes="524288" data-max-mb="0.5"' in html
    assert "up to 0.5 MB" in html
