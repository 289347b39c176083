"""`/metrics`: the Prometheus text format, read back with Prometheus' own parser."""

from __future__ import annotations

import io

import pytest
from prometheus_client.parser import text_string_to_metric_families

from backend import create_app
from backend.extensions import get_service
from tests.support.catalogs import TEST_MODEL, draw_image, image_bytes

METRICS_TOKEN = "scraper-token-0123456789"
ADMIN_TOKEN = "owner-token-0123456789"
DATABASE_PASSWORD = "db-password-never-shown"
SCRAPE = {"Authorization": f"Bearer {METRICS_TOKEN}"}
PNG = image_bytes(draw_image("green", "circle"))


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from tests.support.catalogs import make_app_config, write_catalog

    root = tmp_path_factory.mktemp("metrics")
    app = create_app(
        make_app_config(root, write_catalog(root / "shop"))
        | {
            "metrics_token": METRICS_TOKEN,
            "admin_token": ADMIN_TOKEN,
        }
    )
    get_service(app).sync()
    return app


def scrape(client) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted labels) -> value of every sample /metrics answers."""
    response = client.get("/metrics", headers=SCRAPE)
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_requests_and_search_stages_are_counted(app):
    client = app.test_client()
    before = scrape(client)
    for _ in range(2):
        client.post("/api/search", data={"file": (io.BytesIO(PNG), "q.png")})
    client.get("/api/products/p1/similar")
    client.post("/api/search", data={"k": "0"})  # refused: 400
    client.get("/no/such/page")
    after = scrape(client)

    def delta(name: str, **labels) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    requests = "image_search_http_requests_total"
    assert delta(requests, route="/api/search", method="POST", status="200") == 2
    assert delta(requests, route="/api/search", method="POST", status="400") == 1
    assert (
        delta(requests, route="/api/products/<path:product_id>/similar", method="GET", status="200")
        == 1
    )
    assert delta(requests, route="unmatched", method="GET", status="404") == 1
    assert delta(requests, route="/metrics", method="GET", status="200") == 1  # the first scrape
    stages = "image_search_search_stage_seconds_count"
    assert [delta(stages, stage=s) for s in ("decode", "embed", "rank")] == [2, 2, 3]
    searches = "image_search_search_seconds_count"
    assert delta(searches, channel="api", kind="upload") == 2
    assert delta(searches, channel="api", kind="similar") == 1
    assert delta("image_search_search_stage_seconds_sum", stage="embed") > 0
    buckets = value(after, "image_search_search_stage_seconds_bucket", stage="rank", le="+Inf")
    assert buckets == value(after, stages, stage="rank")


def test_index_size_and_model_identity(app):
    samples = scrape(app.test_client())
    assert value(samples, "image_search_index_products") == 7
    assert value(samples, "image_search_catalog_products") == 7
    identity = get_service(app).embedder.identity
    assert value(samples, "image_search_model_info", model=identity, vector_backend="memory") == 1


def test_no_secret_appears(tmp_path, app):
    body = app.test_client().get("/metrics", headers=SCRAPE).get_data(as_text=True)
    assert METRICS_TOKEN not in body and ADMIN_TOKEN not in body
    app_with_database = create_app(
        {
            "TESTING": True,
            "metrics_token": METRICS_TOKEN,
            "model": TEST_MODEL,
            "model_weights": "random",
            "vector_backend": "pgvector",
            "database_url": f"postgresql://shop:{DATABASE_PASSWORD}@127.0.0.1:1/shop",
            "index_path": tmp_path / "index.csv",
            "cache_dir": tmp_path / "cache",
        }
    )
    body = app_with_database.test_client().get("/metrics", headers=SCRAPE)
    assert body.status_code == 200
    assert DATABASE_PASSWORD not in body.get_data(as_text=True)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token-0123456789"},
        {"Authorization": f"Bearer {ADMIN_TOKEN}"},
        {"Authorization": f"Basic {METRICS_TOKEN}"},
    ],
)
def test_metrics_need_the_metrics_token(app, headers):
    response = app.test_client().get("/metrics", headers=headers)
    assert response.status_code == 401
    assert response.json["error"] == "unauthorized"
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="metrics"'


def test_without_a_metrics_token_metrics_are_off(tmp_path):
    app = create_app(
        {
            "TESTING": True,
            "model": TEST_MODEL,
            "model_weights": "random",
            "index_path": tmp_path / "index.csv",
            "cache_dir": tmp_path / "cache",
        }
    )
    response = app.test_client().get("/metrics", headers=SCRAPE)
    assert response.status_code == 403
    assert response.json["message"] == (
        "metrics are disabled; set METRICS_TOKEN on the server to enable them"
    )
