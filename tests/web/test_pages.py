"""The HTML pages through Flask's test client: forms, results, errors, headers, images."""

from __future__ import annotations

import base64
import io
import re

import pytest
from PIL import Image

from backend import create_app
from backend.web.security import CONTENT_SECURITY_POLICY
from tests.support.catalogs import draw_image, image_bytes, write_catalog


@pytest.fixture
def client_of_shop(app, service, catalog_path):
    """A client of an app of its own, for tests that change the catalog."""
    service.sync()
    return app.test_client(), service, catalog_path.parent


@pytest.fixture
def client(shared_client):
    """Tests that only read share one synced app (a fresh index per test costs seconds)."""
    return shared_client


def upload(client, data: bytes | None = None, **fields):
    """POST the search form like a browser, with an image file unless data is None."""
    form = dict(fields)
    if data is not None:
        form["file"] = (io.BytesIO(data), "query.png")
    return client.post("/search", data=form, content_type="multipart/form-data")


def cards(html: str) -> list[tuple[str, bool]]:
    """(product name, visible) for every result card, in page order."""
    found = re.findall(
        r'<li class="card result"[^>]*?( hidden)?>.*?<h3 class="card-title">(.*?)</h3>', html, re.S
    )
    return [(name, not hidden) for hidden, name in found]


def test_search_page_has_every_input_labelled(client):
    response = client.get("/")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    for field in ("file", "image_url", "threshold", "k", "category", "min_price", "max_price"):
        assert f'for="{field}"' in html and f'id="{field}"' in html
    assert 'value="50"' in html  # the SIMILARITY_THRESHOLD of the test app, in percent
    assert '<option value="toys">toys</option>' in html


def test_search_shows_the_query_image_and_ranked_cards(client):
    response = upload(client, image_bytes(draw_image("yellow", "triangle")), threshold="50", k="3")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert cards(html)[0] == ("Yellow tent", True)
    assert len(cards(html)) == 3
    assert re.search(r'<img class="query-image" src="data:image/jpeg;base64,[A-Za-z0-9+/=]+"', html)
    assert 'href="/products/p5/similar?threshold=50&amp;k=3"' in html


def test_the_query_image_is_shown_as_a_small_jpeg_made_here(client):
    upload_png = image_bytes(draw_image("green", "square", (1200, 900)))
    html = upload(client, upload_png).get_data(as_text=True)
    encoded = re.search(r'class="query-image" src="data:image/jpeg;base64,([^"]+)"', html).group(1)
    thumbnail = Image.open(io.BytesIO(base64.b64decode(encoded)))
    assert thumbnail.format == "JPEG"
    assert max(thumbnail.size) == 320 and thumbnail.size == (320, 240)


def test_reloading_the_results_page_leads_back_to_the_form(client):
    response = client.get("/search")
    assert response.status_code == 303
    assert response.headers["Location"] == "/"


def test_cards_below_the_threshold_are_on_the_page_but_hidden(client):
    html = upload(client, image_bytes(draw_image("red")), threshold="100", k="4").get_data(
        as_text=True
    )
    visible = [name for name, shown in cards(html) if shown]
    assert len(cards(html)) == 4
    assert len(visible) < 4
    assert f"<span data-below-count>{4 - len(visible)}</span>" in html


def refine_query(html: str) -> str:
    return re.search(r'name="query" value="([^"]+)"', html).group(1)


def test_refining_without_javascript_is_a_get_of_the_saved_query(client):
    first = upload(client, image_bytes(draw_image("blue", "stripes")), threshold="0", k="6")
    html = first.get_data(as_text=True)
    assert (
        '<form class="refine" action="/search" method="get" data-refine data-replace-address>'
        in html
    )
    query = refine_query(html)
    assert len(query) == 22  # an id, not the image: the address stays short
    again = client.get(f"/search?query={query}&threshold=0&k=2&category=clothes")
    html = again.get_data(as_text=True)
    assert again.status_code == 200
    assert [name for name, _ in cards(html)] == ["Blue scarf", "Purple scarf"]
    assert "data:image/jpeg;base64," in html
    assert f'href="/search?query={query}&amp;threshold=0&amp;k=2&amp;category=clothes"' in html


def test_a_shared_link_shows_the_same_results_to_another_visitor(shared_app):
    first = upload(
        shared_app.test_client(), image_bytes(draw_image("blue", "stripes")), threshold="0"
    )
    link = re.search(r'href="([^"]+)" data-share-link', first.get_data(as_text=True))[1]
    link = link.replace("&amp;", "&")
    again = shared_app.test_client().get(link)  # no cookie, no session: only the address
    assert again.status_code == 200
    assert cards(again.get_data(as_text=True)) == cards(first.get_data(as_text=True))


def test_the_same_photo_gets_the_same_link_and_the_store_is_bounded(
    client, shared_app, monkeypatch
):
    from backend.web import saved_queries

    photo = image_bytes(draw_image("blue", "stripes"))
    first = refine_query(upload(client, photo).get_data(as_text=True))
    assert refine_query(upload(client, photo).get_data(as_text=True)) == first
    monkeypatch.setattr(saved_queries, "MAX_QUERIES", 2)
    for colour in ("red", "green", "yellow"):
        upload(client, image_bytes(draw_image(colour)))
    folder = shared_app.config["SETTINGS"].cache_dir / "queries"
    assert len(list(folder.glob("*.json"))) == 2  # the oldest went first
    assert client.get(f"/search?query={first}").status_code == 404


def test_an_unknown_or_tampered_link_says_so_on_the_form(client):
    query = refine_query(
        upload(client, image_bytes(draw_image("blue", "stripes"))).get_data(as_text=True)
    )
    response = client.get(f"/search?query={query[:-2]}xx&threshold=40")
    html = response.get_data(as_text=True)
    assert response.status_code == 404
    assert "This search link has expired or is not one of ours" in html
    assert 'value="40"' in html
    assert client.get("/search?query=../../etc/passwd").status_code == 400  # not an id


def test_a_get_never_fetches_an_image_url(client, monkeypatch):
    from backend.search import SearchService

    def fetch(*args):
        raise AssertionError("fetched")

    monkeypatch.setattr(SearchService, "fetch_query_image", fetch)
    response = client.get("/search?query=AAAAAAAAAAAAAAAAAAAAAA&image_url=http://a.example/x.png")
    assert response.status_code == 404


def test_without_a_writable_cache_the_refine_form_posts_a_signed_query(app_config, tmp_path):
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache folder should be")
    client = create_app(app_config | {"cache_dir": blocked}).test_client()
    first = upload(client, image_bytes(draw_image("blue", "stripes")), threshold="0")
    html = first.get_data(as_text=True)
    assert (
        '<form class="refine" action="/search" method="post" data-refine data-replace-address>'
        in html
    )
    assert "data-share-link" not in html
    again = client.post("/search", data={"query": refine_query(html), "k": "2", "threshold": "0"})
    assert [name for name, _ in cards(again.get_data(as_text=True))] == [
        "Blue scarf",
        "Purple scarf",
    ]


def test_a_tampered_signed_query_is_refused_on_the_form(client):
    token = "x" * 40 + ".y"
    response = client.post("/search", data={"query": token, "threshold": "40"})
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "can no longer be refined" in html
    assert 'value="40"' in html


def test_a_refine_error_keeps_the_photo_and_words_the_error_for_people(client):
    first = upload(client, image_bytes(draw_image("blue", "stripes")), threshold="0")
    query = refine_query(first.get_data(as_text=True))
    response = client.get(f"/search?query={query}&threshold=20&min_price=50&max_price=10")
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "The lowest price (50) is above the highest price (10)" in html
    assert "min_price=" not in html and "max_price=" not in html
    # The photo stays, shown and carried: "Search" again needs no new upload.
    assert 'alt="Your photo, kept" src="data:image/jpeg;base64,' in html
    assert f'<input type="hidden" name="query" value="{query}">' in html
    assert 'value="50"' in html and 'value="10"' in html and 'value="20"' in html
    again = client.post("/search", data={"query": query, "min_price": "", "max_price": "10"})
    assert again.status_code == 200 and "Your image" in again.get_data(as_text=True)


@pytest.mark.parametrize(
    ("data", "fields", "status", "message"),
    [
        (None, {}, 400, "Choose an image"),
        (b"%PDF-1.4 not an image", {}, 400, "Unsupported image format: PDF"),
        (b"\x89PNG\r\n\x1a\n broken", {}, 400, "Image data is truncated or corrupt"),
        (None, {"image_url": "ftp://shop.example/x.png"}, 400, "must be an http:// or https://"),
        (None, {"image_url": "http://10.0.0.1/x.png"}, 400, "Image URL refused"),
        (
            None,
            {"image_url": "https://shop.example/x.png", "threshold": "150"},
            400,
            "between 0 and 100",
        ),
        (None, {"image_url": "https://shop.example/x.png", "k": "zero"}, 400, "is not a number"),
        (None, {"k": "\u00b2"}, 400, "is not a number"),  # a superscript digit, not 2
        (
            None,
            {"image_url": "https://shop.example/x.png", "category": "cars"},
            400,
            "There is no category “cars” in the catalog",
        ),
    ],
)
def test_form_errors_come_back_inline_with_the_inputs_kept(client, data, fields, status, message):
    form = {"threshold": "35", "k": "24", "category": "toys"} | fields
    response = upload(client, data, **form)
    html = response.get_data(as_text=True)
    assert response.status_code == status
    assert '<div class="alert" role="alert"' in html
    assert message in html
    assert (
        f'name="image_url" placeholder="https://shop.example/photo.jpg"\n               value="{form.get("image_url", "")}"'
        in html
    )
    assert f'value="{form["threshold"]}"' in html


@pytest.mark.parametrize(
    ("filename", "message"),
    [("", "Choose an image"), ("empty.png", "The uploaded file is empty.")],  # "": no file chosen
)
def test_an_empty_file_part(client, filename, message):
    response = client.post(
        "/search", data={"file": (io.BytesIO(b""), filename)}, content_type="multipart/form-data"
    )
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)


def test_an_upload_over_the_limit_is_413_on_the_form(app_config):
    client = create_app(app_config | {"max_upload_mb": 0.01}).test_client()
    noise = Image.frombytes("RGB", (120, 120), bytes(range(256)) * 168 + bytes(192))
    response = upload(client, image_bytes(noise, "BMP"), threshold="42")
    html = response.get_data(as_text=True)
    assert response.status_code == 413
    assert "larger than the 0.01 MB limit" in html
    assert 'value="42"' in html
    assert "data-search-form" in html


def test_a_body_over_the_request_limit_is_413_on_the_form(app_config):
    client = create_app(app_config | {"max_upload_mb": 0.01}).test_client()
    response = upload(client, b"\xff" * (400 * 1024))
    assert response.status_code == 413
    assert "larger than the 0.01 MB limit" in response.get_data(as_text=True)


def test_more_like_this_is_shareable_with_its_options(client):
    response = client.get("/products/p1/similar?threshold=0&k=2&category=toys")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert [name for name, _ in cards(html)] == ["Red box", "Green ball"]
    assert re.search(
        r'<img class="query-image" src="/images/p1\?v=[0-9a-f]{16}" alt="Red ball">', html
    )
    assert 'action="/products/p1/similar" method="get"' in html


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("/products/nope/similar", 404),
        ("/products/p1/similar?k=500", 400),
        ("/products/p1/similar?threshold=x", 400),
    ],
)
def test_more_like_this_errors_are_pages(client, url, status):
    response = client.get(url)
    assert response.status_code == status
    assert response.mimetype == "text/html"
    assert 'class="error-page panel"' in response.get_data(as_text=True)


def test_catalog_pages_and_category_filter(client):
    first = client.get("/products?per_page=3").get_data(as_text=True)
    assert "Page 1 of 3" in first
    assert re.findall(r'<h2 class="card-title">(.*?)</h2>', first) == [
        "Red ball",
        "Red box",
        "Green ball",
    ]
    last = client.get("/products?per_page=3&page=99").get_data(as_text=True)
    assert "Page 3 of 3" in last
    clothes = client.get("/products?category=clothes").get_data(as_text=True)
    assert re.findall(r'<h2 class="card-title">(.*?)</h2>', clothes) == [
        "Blue scarf",
        "Purple scarf",
    ]
    assert client.get("/products?category=cars").status_code == 400


def test_catalog_images_are_served_with_caching_headers(client, shared_app):
    catalog_path = shared_app.config["SETTINGS"].catalog_path
    html = client.get("/products").get_data(as_text=True)
    versioned = re.search(r'src="(/images/p1\?v=[0-9a-f]{16})"', html).group(1)
    with client.get(versioned) as response:
        assert response.get_data() == (catalog_path.parent / "images" / "p1.png").read_bytes()
    assert response.status_code == 200
    assert response.mimetype == "image/png"
    # The URL names the content: it may be cached for good.
    assert response.cache_control.immutable and response.cache_control.max_age == 31536000
    # Without the version (or with an outdated one) the browser must ask again, cheaply.
    for url in ("/images/p1", "/images/p1?v=0123456789abcdef"):
        with client.get(url) as unversioned:
            assert unversioned.cache_control.no_cache and not unversioned.cache_control.immutable
        etag = {"If-None-Match": unversioned.headers["ETag"]}
        with client.get(url, headers=etag) as again:
            assert again.status_code == 304
    assert client.get("/images/nope").status_code == 404


def test_a_replaced_photo_gets_a_new_url_and_is_never_cached_under_the_old_one(client_of_shop):
    client, service, shop = client_of_shop
    old = re.search(r'src="(/images/p1\?v=\w+)"', client.get("/products").get_data(as_text=True))[1]
    draw_image("green", "triangle").save(shop / "images" / "p1.png")  # the owner's new photo
    with client.get(old) as before_reindex:  # the file no longer holds that version
        assert before_reindex.cache_control.no_cache and not before_reindex.cache_control.immutable
    service.sync()
    new = re.search(r'src="(/images/p1\?v=\w+)"', client.get("/products").get_data(as_text=True))[1]
    assert new != old
    with client.get(new) as response:
        assert response.cache_control.immutable
        assert response.get_data() == (shop / "images" / "p1.png").read_bytes()


def test_every_response_carries_the_security_headers(client):
    for url in ("/", "/missing", "/healthz", "/images/p1"):
        with client.get(url) as response:
            response.get_data()
        assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Referrer-Policy"] == "same-origin"


def test_pages_have_no_inline_scripts_or_styles(client):
    pages = [
        client.get("/"),
        client.get("/products"),
        client.get("/products/p1/similar"),
        client.get("/x"),
    ]
    pages.append(upload(client, image_bytes(draw_image("red"))))
    for response in pages:
        html = response.get_data(as_text=True)
        assert not re.search(r"<script(?![^>]*\bsrc=)", html)
        assert "<style" not in html and " style=" not in html and " on" + "click=" not in html


def test_random_weights_banner_only_in_random_mode(client, app_config, tmp_path):
    assert "MODEL_WEIGHTS=random" in client.get("/products").get_data(as_text=True)
    assert "MODEL_WEIGHTS=random" in client.get("/missing").get_data(as_text=True)
    weights = tmp_path / "resnet18.pth"
    weights.write_bytes(b"never loaded: the error page needs no model")
    real = create_app(app_config | {"model_weights": str(weights)}).test_client()
    assert "MODEL_WEIGHTS=random" not in real.get("/missing").get_data(as_text=True)


def test_product_ids_with_slashes_have_pages_and_images(app_config, tmp_path):
    shelf = write_catalog(
        tmp_path / "shelf", extra_rows=[["aisle/8", "Twin ball", "toys", "", "images/p1.png"]]
    )
    client = create_app(app_config | {"catalog_path": shelf}).test_client()
    similar = client.get("/products/aisle/8/similar?threshold=0&k=1")
    assert similar.status_code == 200
    assert [name for name, _ in cards(similar.get_data(as_text=True))] == ["Red ball"]
    with client.get("/images/aisle/8") as image:
        assert image.status_code == 200 and image.mimetype == "image/png"


@pytest.mark.parametrize(
    ("method", "url", "status"), [("get", "/nope", 404), ("post", "/products", 405)]
)
def test_http_errors_are_pages_or_json_by_accept(client, method, url, status):
    page = getattr(client, method)(url)
    assert page.status_code == status and page.mimetype == "text/html"
    assert f'<p class="error-status">{status}</p>' in page.get_data(as_text=True)
    data = getattr(client, method)(url, headers={"Accept": "application/json"})
    assert data.status_code == status and set(data.json) == {"error", "message"}


def test_an_unexpected_failure_is_a_500_page_without_details(app_config):
    app = create_app(app_config | {"TESTING": False})  # testing mode re-raises instead

    def broken():
        raise RuntimeError("secret internals")

    app.add_url_rule("/broken", view_func=broken)
    app.add_url_rule("/api/broken", endpoint="api_broken", view_func=broken)
    client = app.test_client()
    response = client.get("/broken")
    html = response.get_data(as_text=True)
    assert response.status_code == 500
    assert "Something went wrong" in html and "secret internals" not in html
    assert client.get("/api/broken").json == {
        "error": "internal_error",
        "message": "something went wrong on our side; please try again",
    }


def test_the_form_takes_a_price_range_and_the_refine_form_keeps_it(client):
    query = image_bytes(draw_image("yellow", "triangle"))
    response = upload(client, query, threshold="0", k="12", min_price="11", max_price="15")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert sorted(name for name, _ in cards(html)) == [
        "Blue scarf",
        "Green ball",
        "Purple scarf",
        "Yellow tent",
    ]
    assert 'id="min_price" name="min_price"' in html and 'value="11"' in html
    assert (
        'href="/products/p5/similar?threshold=0&amp;k=12&amp;min_price=11&amp;max_price=15"' in html
    )


def test_a_bad_price_comes_back_on_the_form_with_the_inputs_kept(client):
    query = image_bytes(draw_image("yellow", "triangle"))
    response = upload(client, query, min_price="5", max_price="2")
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    # Worded for people: the API's message names the parameters ("min_price=5 must not...").
    assert "The lowest price (5) is above the highest price (2)" in html
    assert "min_price=" not in html
    assert 'name="max_price"' in html and 'value="2"' in html
