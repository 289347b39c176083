"""The OpenAPI document says what the API answers: every shape it declares is used, and real
answers (successes and errors alike) have a documented status, content type and body."""

from __future__ import annotations

import ast
import io
import socket
from pathlib import Path

import pytest

from backend import create_app
from backend.web.dataschema import references
from backend.web.shapes import SHAPES
from tests.support.catalogs import draw_image, image_bytes, make_app_config, write_catalog
from tests.support.openapi import check_documented

TOKEN = "openapi-admin-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PNG = image_bytes(draw_image("yellow", "triangle"))


@pytest.fixture(scope="module")
def admin_app(tmp_path_factory):
    """An app with the admin API on, a skipped row and a missing image (the colour histogram:
    no model to load)."""
    root = tmp_path_factory.mktemp("openapi")
    catalog = write_catalog(root / "shop")
    with catalog.open("a", encoding="utf-8") as handle:
        handle.write("bad,Bad,toys,abc,images/p1.png\nmiss,Missing,toys,1,images/none.png\n")
    config = make_app_config(root, catalog) | {"model": "color_histogram", "admin_token": TOKEN}
    return create_app(config)


def test_every_declared_shape_is_a_schema_of_the_document_and_is_used(shared_client):
    document = shared_client.get("/api/openapi.json").json
    schemas = document["components"]["schemas"]
    assert set(schemas) == {shape.__name__ for shape in SHAPES}
    used = references(document["paths"])
    while True:  # and what those refer to
        more = used | references([schemas[name] for name in used])
        if more == used:
            break
        used = more
    assert used == set(schemas)


def test_no_blueprint_imports_another():
    """Shared JSON is built in `serializers`, never borrowed from another blueprint."""
    web = Path(__file__).parents[2] / "backend" / "web"
    trees = {path.stem: ast.parse(path.read_text(encoding="utf-8")) for path in web.glob("*.py")}
    blueprints = {name for name, tree in trees.items() if "Blueprint(" in ast.unparse(tree)}
    assert {"api", "admin", "pages", "insights"} <= blueprints
    for name in blueprints:
        imported = {
            alias.name if node.module is None else node.module
            for node in ast.walk(trees[name])
            if isinstance(node, ast.ImportFrom) and node.level == 1
            for alias in node.names
        }
        assert not imported & (blueprints - {name}), f"{name} imports {imported & blueprints}"


def test_every_operation_documents_its_error_statuses(shared_client):
    paths = shared_client.get("/api/openapi.json").json["paths"]
    statuses = {
        (path, method): set(operation["responses"])
        for path, item in paths.items()
        for method, operation in item.items()
    }
    edit = "/api/admin/products/{product_id}"
    assert {"401", "403", "409", "500", "503"} <= statuses[edit, "put"]  # read-only, unwritable
    assert {"401", "403", "404", "409", "500", "503"} <= statuses[edit, "delete"]
    assert {"400", "413", "429", "503"} <= statuses["/api/search", "post"]
    busy = paths["/api/search"]["post"]["responses"]["429"]
    assert "Retry-After" in busy["headers"] and "`busy`" in busy["description"]
    # An image's 404 follows Accept (a browser gets the page), an API path's is always JSON.
    image_404 = paths["/images/{product_id}"]["get"]["responses"]["404"]["content"]
    assert set(image_404) == {"application/json", "text/html"}
    assert set(paths["/api/search"]["post"]["responses"]["400"]["content"]) == {"application/json"}


def test_answers_of_the_public_api_are_documented(admin_app):
    client = admin_app.test_client()
    document = client.get("/api/openapi.json").json
    answers = [
        ("get", "/readyz", client.get("/readyz")),  # 503: loading
        ("get", "/healthz", client.get("/healthz")),
        ("get", "/api/products", client.get("/api/products?per_page=3&page=x")),
        ("get", "/api/products", client.get("/api/products?category=nope")),
        ("get", "/readyz", client.get("/readyz")),
        ("get", "/readyz", client.get("/readyz", headers=AUTH)),  # with the failed rows
        ("post", "/api/search", client.post("/api/search?threshold=0", data=_upload(PNG))),
        ("post", "/api/search", client.post("/api/search", data=_upload(b"not an image"))),
        ("post", "/api/search", client.post("/api/search", json={"image_url": "ftp://x/y.png"})),
    ]
    similar = "/api/products/{product_id}/similar"
    for url in (
        "/api/products/p1/similar?threshold=0",
        "/api/products/nope/similar",
        "/api/products/p1/similar?k=0",
        "/api/products/p1/similar?format=csv",
    ):
        answers.append(("get", similar, client.get(url)))
    for headers in ({"Accept": "text/html"}, {"Accept": "application/json"}, {}):
        answers.append(("get", "/images/{product_id}", client.get("/images/nope", headers=headers)))
    answers.append(("get", "/images/{product_id}", client.get("/images/p1")))
    answers.append(("get", "/api/openapi.json", client.get("/api/openapi.json")))
    try:
        for method, path, response in answers:
            check_documented(document, method, path, response)
    finally:
        for _, _, response in answers:
            response.close()  # the image's file
    assert {response.status_code for _, _, response in answers} >= {200, 400, 404, 503}


def test_answers_of_the_admin_api_are_documented(admin_app):
    client = admin_app.test_client()
    document = client.get("/api/openapi.json").json
    edit = "/api/admin/products/{product_id}"
    new = {"name": "New", "category": "toys", "price": "3", "file": (io.BytesIO(PNG), "n.png")}
    answers = [
        ("post", "/api/admin/reindex", client.post("/api/admin/reindex", headers=AUTH)),
        ("post", "/api/admin/reindex", client.post("/api/admin/reindex")),  # 401
        ("put", edit, client.put("/api/admin/products/n1", headers=AUTH, data=new)),  # 201
        ("put", edit, client.put("/api/admin/products/n1", headers=AUTH, json={"price": ""})),
        ("put", edit, client.put("/api/admin/products/n1", headers=AUTH, json={"size": "L"})),
        ("delete", edit, client.delete("/api/admin/products/n1", headers=AUTH)),  # 204
        ("delete", edit, client.delete("/api/admin/products/n1", headers=AUTH)),  # 404
    ]
    for method, path, response in answers:
        check_documented(document, method, path, response)
    assert [response.status_code for _, _, response in answers] == [
        200,
        401,
        201,
        200,
        400,
        204,
        404,
    ]


def test_a_store_that_does_not_answer_is_a_documented_503(tmp_path):
    with socket.socket() as probe:  # a port nothing listens on: the database refuses at once
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = make_app_config(tmp_path, write_catalog(tmp_path / "shop")) | {
        "model": "color_histogram",
        "vector_backend": "pgvector",
        "database_url": f"postgresql://shop:secret@127.0.0.1:{port}/shop",
    }
    client = create_app(config).test_client()
    document = client.get("/api/openapi.json").json
    answers = [
        ("get", "/api/products", client.get("/api/products")),
        ("get", "/api/products/{product_id}/similar", client.get("/api/products/p1/similar")),
        ("post", "/api/search", client.post("/api/search", data=_upload(PNG))),
    ]
    for method, path, response in answers:
        assert response.status_code == 503 and response.headers["Retry-After"]
        check_documented(document, method, path, response)


def _upload(data: bytes) -> dict:
    return {"file": (io.BytesIO(data), "query.png")}
