"""The JSON API, health checks and the OpenAPI document, through Flask's test client."""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from backend import create_app
from backend.extensions import get_service
from tests.support.catalogs import RANDOM_TEST_MODEL, draw_image, image_bytes, write_catalog

RESULT_KEYS = {"id", "name", "category", "price", "image_url", "similarity", "match"}
SEARCH_KEYS = {
    "results",
    "threshold",
    "threshold_unit",
    "k",
    "category",
    "min_price",
    "max_price",
    "hidden_below_threshold",
    "took_ms",
}
TENT_PNG = image_bytes(draw_image("yellow", "triangle"))


@pytest.fixture
def client(shared_client):
    """Tests that only read share one synced app (a fresh index per test costs seconds)."""
    return shared_client


class _OneImage(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        found = self.path == "/tent.png"
        self.send_response(200 if found else 404)
        self.send_header("Content-Type", "image/png" if found else "text/plain")
        body = TENT_PNG if found else b"missing"
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def image_server() -> Iterator[str]:
    """A shop's image server on 127.0.0.1; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OneImage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def loopback_client(app_config):
    return create_app(app_config | {"fetch_allow_loopback": True}).test_client()


def post_file(client, data: bytes, query: str = "", **fields):
    form = {"file": (io.BytesIO(data), "query.png")} | fields
    return client.post(f"/api/search{query}", data=form, content_type="multipart/form-data")


ADMIN_TOKEN = "readyz-admin-token-for-tests"


def test_search_with_a_file_returns_the_documented_shape(client):
    response = post_file(client, TENT_PNG, threshold="0.5", k="3")
    body = response.json
    assert response.status_code == 200
    assert set(body) == SEARCH_KEYS
    assert body["threshold"] == 0.5 and body["k"] == 3 and body["category"] is None
    assert len(body["results"]) + body["hidden_below_threshold"] == 3
    best = body["results"][0]
    assert set(best) == RESULT_KEYS
    assert best["id"] == "p5" and best["name"] == "Yellow tent" and best["price"] == 13.5
    # The image's URL carries its content version, so browsers may cache it for good; it is a
    # path (never built from the request's Host).
    assert re.fullmatch(r"/images/p5\?v=[0-9a-f]{16}", best["image_url"])
    assert best["similarity"] == pytest.approx(1.0, abs=1e-3)
    # Random weights have no calibration: no match, and the threshold is a similarity.
    assert best["match"] is None and body["threshold_unit"] == "similarity"
    similarities = [hit["similarity"] for hit in body["results"]]
    assert similarities == sorted(similarities, reverse=True)


def test_search_options_from_the_query_string(client):
    body = post_file(client, TENT_PNG, "?k=2&threshold=0&category=clothes").json
    assert {hit["id"] for hit in body["results"]} == {"p4", "p6"}  # the only clothes
    assert body["category"] == "clothes" and body["k"] == 2


def test_a_threshold_of_one_hides_all_but_exact_matches(client):
    body = post_file(client, image_bytes(draw_image("cyan", "circle")), threshold="1", k="5").json
    assert body["results"] == []
    assert body["hidden_below_threshold"] == 5


def test_search_with_an_image_url_as_json(loopback_client, image_server):
    response = loopback_client.post(
        "/api/search", json={"image_url": f"{image_server}/tent.png", "k": 1}
    )
    assert response.status_code == 200, response.json
    assert [hit["id"] for hit in response.json["results"]] == ["p5"]


def test_search_with_an_image_url_as_a_form_field(loopback_client, image_server):
    response = loopback_client.post(
        "/api/search", data={"image_url": f"{image_server}/tent.png", "k": "1"}
    )
    assert response.status_code == 200
    assert response.json["results"][0]["id"] == "p5"


# fmt: off
@pytest.mark.parametrize(
    ("request_kwargs", "status", "code", "message"),
    [
        ({"json": {}}, 400, "invalid_input", "send an image"),
        ({"json": [1, 2]}, 400, "invalid_input", "must be an object"),
        ({"data": "{not json", "content_type": "application/json"}, 400, "invalid_input", "could not be read"),
        ({"json": {"image_url": "file:///etc/passwd"}}, 400, "invalid_input", "http:// or https://"),
        ({"json": {"image_url": "http://169.254.169.254/latest"}}, 400, "fetch_failed", "refused"),
        ({"json": {"image_url": 7}}, 400, "invalid_input", "must be a string"),
        ({"json": {"image_url": "https://x.example/a.png", "k": 0}}, 400, "invalid_input", "from 1 to 100"),
        ({"json": {"image_url": "https://x.example/a.png", "k": 2.5}}, 400, "invalid_input", "whole number"),
        ({"json": {"image_url": "https://x.example/a.png", "k": True}}, 400, "invalid_input", "must be a number"),
        ({"json": {"image_url": "https://x.example/a.png", "threshold": 70}}, 400, "invalid_input", "between 0 and 1"),
        ({"json": {"image_url": "https://x.example/a.png", "threshold": "nan"}}, 400, "invalid_input", "finite"),
        ({"json": {"image_url": "https://x.example/a.png", "category": "cars"}}, 400, "invalid_input", "not in the catalog"),
        ({"data": {"file": (io.BytesIO(b"GIF89a"), "x.gif")}}, 400, "bad_image", "truncated or corrupt"),
        ({"data": {"file": (io.BytesIO(b"hello"), "x.txt")}}, 400, "bad_image", "not a recognised image"),
    ],
)
# fmt: on
def test_search_errors_are_json_with_their_status(client, request_kwargs, status, code, message):
    response = client.post("/api/search", **request_kwargs)
    assert response.status_code == status
    assert response.json["error"] == code
    assert message in response.json["message"]


def test_remote_catalog_images_are_served_from_the_cache(app_config, image_server, tmp_path):
    shop = write_catalog(
        tmp_path / "remote",
        extra_rows=[["r1", "Far tent", "outdoor", "", f"{image_server}/tent.png"]],
    )
    client = create_app(
        app_config | {"catalog_path": shop, "fetch_allow_loopback": True}
    ).test_client()
    hit = client.get("/api/products/r1/similar?k=1&threshold=0").json["results"][0]
    assert hit["id"] == "p5"  # the same picture, fetched from the shop's server
    with client.get("/images/r1") as response:
        assert response.status_code == 200 and response.mimetype == "image/png"
        assert response.get_data() == TENT_PNG
    cached = list((app_config["cache_dir"] / "images").rglob("*"))
    assert TENT_PNG in [path.read_bytes() for path in cached if path.is_file()]


def test_an_image_url_that_is_not_found_is_a_fetch_error(loopback_client, image_server):
    response = loopback_client.post("/api/search", json={"image_url": f"{image_server}/gone.png"})
    assert response.status_code == 400
    assert response.json == {"error": "fetch_failed", "message": "image URL answered HTTP 404"}


def test_uploads_over_the_limit_are_413_json(app_config):
    client = create_app(app_config | {"max_upload_mb": 0.01}).test_client()
    small_body = post_file(client, b"\xff" * 20_000)
    large_body = post_file(client, b"\xff" * 400_000)
    for response in (small_body, large_body):
        assert response.status_code == 413
        assert response.json["error"] == "too_large"
        assert "0.01 MB" in response.json["message"]


def test_similar_products(client):
    body = client.get("/api/products/p1/similar?k=2&threshold=0&category=toys").json
    assert set(body) == SEARCH_KEYS
    assert [hit["id"] for hit in body["results"]] == ["p2", "p3"]


@pytest.mark.parametrize(
    ("url", "status", "code"),
    [
        ("/api/products/nope/similar", 404, "not_found"),
        ("/api/products/p1/similar?k=-1", 400, "invalid_input"),
        ("/api/products?category=cars", 400, "invalid_input"),
        ("/api/nothing-here", 404, "not_found"),
    ],
)
def test_get_errors_are_json(client, url, status, code):
    response = client.get(url)
    assert response.status_code == status
    assert response.json["error"] == code


def test_method_not_allowed_is_json_with_allow(client):
    response = client.get("/api/search")
    assert response.status_code == 405
    assert response.json["error"] == "method_not_allowed"
    assert "POST" in response.headers["Allow"]


def test_products_are_paginated(client):
    body = client.get("/api/products?per_page=3&page=3").json
    assert body["page"] == 3 and body["pages"] == 3 and body["total"] == 7 and body["per_page"] == 3
    assert [product["id"] for product in body["products"]] == ["p7"]
    assert body["categories"] == ["clothes", "outdoor", "toys"]
    clothes = client.get("/api/products?category=clothes&page=abc").json
    assert [product["id"] for product in clothes["products"]] == ["p4", "p6"]
    assert clothes["page"] == 1 and clothes["category"] == "clothes"


def test_healthz_answers_without_loading_anything(app, service):
    assert app.test_client().get("/healthz").json == {"status": "ok"}
    assert service.snapshot is None


def test_readyz_is_503_until_the_index_is_loaded_then_reports_counts(app_config):
    with app_config["catalog_path"].open("a", encoding="utf-8") as handle:
        handle.write("bad,Bad,toys,abc,images/p1.png\nmiss,Missing,toys,1,images/none.png\n")
    app = create_app(app_config | {"admin_token": ADMIN_TOKEN})
    client = app.test_client()
    loading = client.get("/readyz")
    assert loading.status_code == 503
    assert loading.json == {"ready": False, "status": "loading", "random_weights": True}
    client.get("/api/products")  # the first use syncs the index
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.headers["Cache-Control"] == "no-store"
    counts = {
        "ready": True,
        "status": "ready",
        "random_weights": True,
        "model": RANDOM_TEST_MODEL,
        "catalog_size": 8,
        "indexed": 7,
        "skipped_rows": 1,
        "failed_images": 1,
    }
    assert ready.json == counts  # anyone sees counts and status, no paths nor URLs
    wrong = client.get("/readyz", headers={"Authorization": "Bearer not-the-admin-token"})
    assert wrong.status_code == 200 and wrong.json == counts
    # The operator, with the admin token, sees which rows failed and why.
    body = client.get("/readyz", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).json
    skipped = body.pop("skipped")
    assert body == counts | {
        "failed": [{"id": "miss", "reason": "image file 'images/none.png' not found"}],
    }
    assert [row["row"] for row in skipped] == [9]
    assert skipped[0]["reason"].startswith("price 'abc' is not a number")


def test_readyz_details_stay_private_without_an_admin_token_set(app_config):
    with app_config["catalog_path"].open("a", encoding="utf-8") as handle:
        handle.write("miss,Missing,toys,1,http://10.0.0.7/internal/none.png\n")
    app = create_app(app_config)
    get_service(app).sync()
    ready = app.test_client().get("/readyz", headers={"Authorization": "Bearer anything"})
    assert ready.json["failed_images"] == 1
    assert "failed" not in ready.json and "10.0.0.7" not in ready.get_data(as_text=True)


def _flask_paths(app) -> set[tuple[str, str]]:
    """(OpenAPI-style path, method) of every API rule of the app."""
    found = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(("/api/", "/healthz", "/readyz", "/images/")):
            path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
            found |= {(path, method.lower()) for method in rule.methods - {"HEAD", "OPTIONS"}}
    return found


def test_openapi_documents_exactly_the_api_routes(shared_app, client):
    document = client.get("/api/openapi.json").json
    assert document["openapi"].startswith("3.")
    documented = {(path, method) for path, item in document["paths"].items() for method in item}
    assert documented == _flask_paths(shared_app)


def test_openapi_references_resolve_and_defaults_follow_settings(client):
    document = client.get("/api/openapi.json").json
    text = str(document)
    for name in re.findall(r"#/components/schemas/(\w+)", text):
        assert name in document["components"]["schemas"]
    parameters = document["paths"]["/api/products/{product_id}/similar"]["get"]["parameters"]
    threshold = next(p for p in parameters if p["name"] == "threshold")
    assert threshold["schema"]["default"] == 0.5  # the test app's SIMILARITY_THRESHOLD


def test_json_responses_carry_the_security_headers(client):
    response = client.get("/api/products")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def test_a_price_filter_still_returns_k_results_when_k_products_match(client):
    # p1..p7 cost 9.50..15.50; 11-15 keeps p3, p4, p5 and p6.
    body = post_file(client, TENT_PNG, threshold="0", k="3", min_price="11", max_price="15").json
    prices = [hit["price"] for hit in body["results"]]
    assert len(prices) == 3 and all(11 <= price <= 15 for price in prices)
    assert (body["min_price"], body["max_price"]) == (11, 15)
    every = post_file(client, TENT_PNG, threshold="0", k="12", min_price="11", max_price="15").json
    assert sorted(hit["id"] for hit in every["results"]) == ["p3", "p4", "p5", "p6"]


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"min_price": "-1"}, "min_price=-1 must be a number of at least 0"),
        ({"max_price": "cheap"}, "max_price=cheap is not a number"),
        ({"min_price": "5", "max_price": "2"}, "min_price=5 must not be above max_price=2"),
    ],
)
def test_bad_price_ranges_are_400_naming_the_parameter(client, fields, message):
    response = post_file(client, TENT_PNG, **fields)
    assert response.status_code == 400
    assert response.json == {"error": "invalid_input", "message": message}


def test_openapi_lists_every_search_option_with_its_bounds(client):
    document = client.get("/api/openapi.json").json
    similar = document["paths"]["/api/products/{product_id}/similar"]["get"]["parameters"]
    query = {param["name"]: param["schema"] for param in similar if param["in"] == "query"}
    assert query["min_price"] == {"type": "number", "minimum": 0}
    assert query["k"] == {"type": "integer", "minimum": 1, "maximum": 100, "default": 12}
    body = document["paths"]["/api/search"]["post"]["requestBody"]["content"]
    assert {"k", "threshold", "category", "min_price", "max_price"} <= set(
        body["application/json"]["schema"]["properties"]
    )
