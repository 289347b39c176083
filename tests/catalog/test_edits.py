"""Live catalog edits on every backend: the files are rewritten and searches see the change at once."""

from __future__ import annotations

import csv
import errno
import io
import json
import subprocess
import sys

import pytest

from backend import atomic, create_app
from backend.errors import ImageError, InvalidInput, NotFound
from backend.extensions import get_service
from backend.index.index_file import read_index
from tests.support.catalogs import TEST_MODEL_DIM, draw_image, image_bytes

# Milvus runs in the full suite only: its server takes seconds to start and each of its tests
# seconds more (docs/development.md, the fast tests).
BACKENDS = ["memory", "faiss", "pgvector", "mysql", pytest.param("milvus", marks=pytest.mark.slow)]


@pytest.fixture(params=BACKENDS)
def backend_config(request, app_config) -> dict:
    config = dict(app_config, vector_backend=request.param)
    if request.param == "pgvector":
        from backend.stores.postgres_db import init_schema

        config["database_url"] = request.getfixturevalue("database_url")
        init_schema(config["database_url"], TEST_MODEL_DIM)
    elif request.param == "mysql":
        config["database_url"] = request.getfixturevalue("mysql_url")
    elif request.param == "milvus":
        config["milvus_uri"] = request.getfixturevalue("milvus_uri")
    return config


@pytest.fixture
def open_service(backend_config):
    """Build a service on the configured files and backend (call again to 'restart')."""
    opened = []

    def factory():
        service = get_service(create_app(backend_config))
        opened.append(service)
        return service

    yield factory
    for service in opened:
        service.close()


def catalog_rows(config) -> dict[str, list[str]]:
    with config["catalog_path"].open(newline="", encoding="utf-8") as handle:
        return {row[0]: row for row in list(csv.reader(handle))[1:]}


def test_an_added_product_is_found_at_once_and_survives_a_restart(open_service, backend_config):
    service = open_service()
    service.sync()
    photo = image_bytes(draw_image("green", "triangle"))
    product = service.put_product(
        "n1", {"name": "Green tent", "category": "outdoor", "price": "5"}, photo
    )
    assert product.image_url.startswith("uploads/") and product.price == 5.0
    assert (backend_config["catalog_path"].parent / product.image_url).read_bytes() == photo
    top = service.search_bytes(photo, k=1).hits[0]
    assert top.product == product and top.similarity == pytest.approx(1.0, abs=1e-3)
    assert catalog_rows(backend_config)["n1"] == [
        "n1",
        "Green tent",
        "outdoor",
        "5.0",
        product.image_url,
    ]
    assert "n1" in {entry.id for entry in read_index(backend_config["index_path"]).entries}
    assert service.indexed_count() == 8

    restarted = open_service()
    _, report = restarted.sync()
    assert report.unchanged == 8 and not report.changed  # nothing re-embedded: files agree
    assert restarted.search_bytes(photo, k=1).hits[0].product == product


def test_an_update_changes_metadata_everywhere_and_keeps_other_rows(open_service, backend_config):
    service = open_service()
    service.sync()
    before = catalog_rows(backend_config)
    updated = service.put_product("p4", {"price": 1.25, "category": "sale"})
    assert updated.name == "Blue scarf" and updated.image_url == "images/p4.png"
    rows = catalog_rows(backend_config)
    assert rows["p4"] == ["p4", "Blue scarf", "sale", "1.25", "images/p4.png"]
    assert {k: v for k, v in rows.items() if k != "p4"} == {
        k: v for k, v in before.items() if k != "p4"
    }
    hits = service.search_similar("p6", k=3, category="sale").hits
    assert [hit.product for hit in hits] == [updated]
    assert service.catalog.get("p4") == updated


def test_a_deleted_product_disappears_at_once(open_service, backend_config):
    service = open_service()
    service.sync()
    service.delete_product("p2")
    assert "p2" not in catalog_rows(backend_config)
    assert "p2" not in {entry.id for entry in read_index(backend_config["index_path"]).entries}
    result = service.search_similar("p1", k=10, threshold=0)
    assert "p2" not in {hit.product.id for hit in result.hits} and len(result.hits) == 5
    with pytest.raises(NotFound):
        service.search_similar("p2")
    with pytest.raises(NotFound, match="'p2' does not exist"):
        service.delete_product("p2")
    restarted = open_service()
    assert restarted.indexed_count() == 6 and restarted.store.count() == 6


@pytest.mark.parametrize("backend_config", ["memory"], indirect=True)
@pytest.mark.parametrize(
    ("product_id", "fields", "error", "message"),
    [
        ("", {"image_url": "images/p1.png"}, InvalidInput, "1-200 characters"),
        ("new", {"name": "No picture"}, InvalidInput, "needs an image"),
        ("new", {"image_url": "../secret.png"}, InvalidInput, "leaves the catalog folder"),
        ("new", {"image_url": "images/p1.png", "price": "-3"}, InvalidInput, "non-negative"),
        ("new", {"image_url": "images/p1.png", "colour": "red"}, InvalidInput, "unknown field"),
        ("new", {"image_url": "images/missing.png"}, ImageError, "not found"),
        (
            "new",
            {"image_url": "images/p1.png", "price": True},
            InvalidInput,
            "price must be a number",
        ),
        (
            "new",
            {"image_url": "images/p1.png", "price": [3]},
            InvalidInput,
            "price must be a number",
        ),
        ("new", {"image_url": "images/p1.png", "price": 1e400}, InvalidInput, "non-negative"),
        (
            "new",
            {"image_url": "images/p1.png", "name": ["Ball"]},
            InvalidInput,
            "name must be a string",
        ),
        (
            "new",
            {"image_url": "images/p1.png", "name": "Ball\nx,y"},
            InvalidInput,
            "control characters",
        ),
        (
            "new",
            {"image_url": "images/p1.png", "category": "toys\0"},
            InvalidInput,
            "control characters",
        ),
        (
            "new",
            {"image_url": {"path": "images/p1.png"}},
            InvalidInput,
            "image_url must be a string",
        ),
        ("new\nrow", {"image_url": "images/p1.png"}, InvalidInput, "control characters"),
    ],
)
def test_bad_edits_are_refused_and_change_nothing(
    open_service, backend_config, product_id, fields, error, message
):
    service = open_service()
    service.sync()
    files = [backend_config["catalog_path"], backend_config["index_path"]]
    before = [path.read_bytes() for path in files]
    with pytest.raises(error, match=message):
        service.put_product(product_id, fields)
    assert [path.read_bytes() for path in files] == before
    assert service.indexed_count() == 7


@pytest.mark.parametrize("backend_config", ["memory"], indirect=True)
def test_an_upload_that_is_not_an_image_is_refused(open_service, backend_config):
    service = open_service()
    service.sync()
    with pytest.raises(ImageError):
        service.put_product("new", {"name": "x"}, b"%PDF-1.4 not an image")
    assert not (backend_config["catalog_path"].parent / "uploads").exists()


TOKEN = "catalog-admin-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def admin_client(app_config):
    return create_app(app_config | {"admin_token": TOKEN}).test_client()


def search_ids(client, photo: bytes) -> list[str]:
    response = client.post(
        "/api/search?k=3&threshold=0", data={"file": (io.BytesIO(photo), "q.png")}
    )
    return [hit["id"] for hit in response.get_json()["results"]]


def test_admin_api_adds_replaces_and_deletes_a_product(admin_client, app_config):
    photo = image_bytes(draw_image("cyan", "triangle"))
    added = admin_client.put(
        "/api/admin/products/n9",
        data={
            "name": "Cyan tent",
            "category": "outdoor",
            "price": "12.5",
            "file": (io.BytesIO(photo), "t.png"),
        },
        headers=AUTH,
    )
    assert added.status_code == 201 and added.get_json()["created"] is True
    assert added.get_json()["product"]["name"] == "Cyan tent"
    assert search_ids(admin_client, photo)[0] == "n9"

    replaced = admin_client.put(
        "/api/admin/products/n9", json={"price": 3, "name": "Tent"}, headers=AUTH
    )
    assert replaced.status_code == 200 and replaced.get_json()["created"] is False
    assert replaced.get_json()["product"] | {"image_url": None} == {
        "id": "n9",
        "name": "Tent",
        "category": "outdoor",
        "price": 3.0,
        "image_url": None,
    }
    assert catalog_rows(app_config)["n9"][1:4] == ["Tent", "outdoor", "3.0"]

    assert admin_client.delete("/api/admin/products/n9", headers=AUTH).status_code == 204
    assert "n9" not in search_ids(admin_client, photo)
    gone = admin_client.delete("/api/admin/products/n9", headers=AUTH)
    assert gone.status_code == 404 and gone.get_json()["error"] == "not_found"


def test_admin_api_json_with_an_image_path_in_the_catalog_folder(admin_client):
    response = admin_client.put(
        "/api/admin/products/copy",
        json={"name": "Copy", "image_url": "images/p5.png"},
        headers=AUTH,
    )
    assert response.status_code == 201
    similar = admin_client.get("/api/products/copy/similar?k=1&threshold=0").get_json()
    assert similar["results"][0]["id"] == "p5"  # the same picture


@pytest.mark.parametrize(
    ("headers", "body", "status", "code"),
    [
        ({}, {"image_url": "images/p1.png"}, 401, "unauthorized"),
        (AUTH, {"image_url": "images/p1.png", "price": "cheap"}, 400, "invalid_input"),
        (AUTH, {"image_url": "http://"}, 400, "invalid_input"),
        (AUTH, ["not", "an", "object"], 400, "invalid_input"),
    ],
)
def test_admin_api_refusals_change_no_file(admin_client, app_config, headers, body, status, code):
    admin_client.post("/api/admin/reindex", headers=AUTH)
    before = app_config["catalog_path"].read_bytes()
    response = admin_client.put("/api/admin/products/x1", json=body, headers=headers)
    assert response.status_code == status and response.get_json()["error"] == code
    assert app_config["catalog_path"].read_bytes() == before


def test_admin_product_routes_are_off_without_a_token(client):
    assert client.delete("/api/admin/products/p1").status_code == 403
    assert client.put("/api/admin/products/p1", json={"name": "x"}).status_code == 403


def test_cli_puts_and_deletes_products(runner, app_config, tmp_path):
    photo = tmp_path / "tent.png"
    draw_image("purple", "triangle").save(photo)
    added = runner.invoke(
        args=["product", "put", "n1", "--name", "Tent", "--price", "7", "--image-file", str(photo)]
    )
    assert added.exit_code == 0, added.output
    assert "added n1: Tent [] 7.00 uploads/" in added.output
    replaced = runner.invoke(args=["product", "put", "p1", "--category", "sale"])
    assert (
        replaced.exit_code == 0
        and "replaced p1: Red ball [sale] 9.50 images/p1.png" in replaced.output
    )
    assert catalog_rows(app_config)["p1"][2] == "sale"
    found = runner.invoke(args=["search", str(photo), "--k", "1", "--threshold", "0"])
    assert " n1  Tent  []" in found.output

    assert runner.invoke(args=["product", "delete", "n1"]).output.strip() == "deleted n1"
    again = runner.invoke(args=["product", "delete", "n1"])
    assert again.exit_code == 1 and "product 'n1' does not exist" in again.output


def test_cli_refuses_two_image_sources(runner, tmp_path):
    photo = tmp_path / "x.png"
    draw_image("red").save(photo)
    result = runner.invoke(
        args=["product", "put", "n1", "--image-url", "a.png", "--image-file", str(photo)]
    )
    assert result.exit_code == 2 and "not both" in result.output


def test_db_init_needs_a_database_url(runner):
    result = runner.invoke(args=["db", "init"])
    assert result.exit_code == 1 and "set DATABASE_URL" in result.output


def test_db_init_creates_then_keeps_then_resets_the_schema(app_config, database_url):
    runner = create_app(app_config | {"database_url": database_url}).test_cli_runner()
    created = runner.invoke(args=["db", "init"]).output
    assert "schema v2 created; built the HNSW index (m 16, ef_construction 128)" in created
    kept = runner.invoke(args=["db", "init"]).output
    assert "schema v2 is up to date; kept the HNSW index (m 16, ef_construction 128)" in kept
    rebuilt = runner.invoke(args=["db", "init", "--hnsw-ef-construction", "200"]).output
    assert "built the HNSW index (m 16, ef_construction 200)" in rebuilt
    assert (
        "kept the HNSW index (m 16, ef_construction 200)"
        in runner.invoke(args=["db", "init"]).output
    )
    bad = runner.invoke(args=["db", "init", "--hnsw-m", "40", "--hnsw-ef-construction", "64"])
    assert bad.exit_code != 0 and "ef_construction=64 must be 2 x m (80) to 1000" in bad.output
    assert runner.invoke(args=["db", "init", "--reset"], input="n\n").exit_code == 1  # aborted
    reset = runner.invoke(args=["db", "init", "--reset"], input="y\n")
    assert reset.exit_code == 0 and "schema v2 created; built" in reset.output


def test_cli_search_filters_by_price(runner):
    photo = image_bytes(draw_image("red", "circle"))
    path = runner.app.config["SETTINGS"].catalog_path.parent / "query.png"
    path.write_bytes(photo)
    result = runner.invoke(
        args=["search", str(path), "--threshold", "0", "--min-price", "11", "--max-price", "13"]
    )
    assert result.exit_code == 0, result.output
    listed = [line.split()[2] for line in result.output.splitlines() if line[:3].strip().isdigit()]
    assert sorted(listed) == ["p3", "p4"]  # priced 11.50 and 12.50


def test_admin_api_edits_a_product_whose_id_has_a_slash(admin_client, app_config):
    body = {"name": "Slashed", "image_url": "images/p2.png"}
    added = admin_client.put("/api/admin/products/shelf/7", json=body, headers=AUTH)
    assert added.status_code == 201 and added.get_json()["product"]["id"] == "shelf/7"
    assert catalog_rows(app_config)["shelf/7"][1] == "Slashed"
    assert admin_client.get("/api/products/shelf/7/similar?threshold=0").status_code == 200
    assert admin_client.delete("/api/admin/products/shelf/7", headers=AUTH).status_code == 204
    assert "shelf/7" not in catalog_rows(app_config)


def test_admin_api_reads_fields_from_the_body_only(admin_client, app_config):
    response = admin_client.put(
        "/api/admin/products/p1?category=sale&price=0", json={"name": "Ball"}, headers=AUTH
    )
    assert response.status_code == 200
    assert catalog_rows(app_config)["p1"][1:4] == ["Ball", "toys", "9.5"]


@pytest.mark.parametrize("product_id", ["%20p1", "p1%20", "%09p1"])
def test_admin_api_refuses_an_id_with_surrounding_spaces(admin_client, app_config, product_id):
    before = app_config["catalog_path"].read_bytes()
    response = admin_client.put(
        f"/api/admin/products/{product_id}", json={"image_url": "images/p1.png"}, headers=AUTH
    )
    assert (
        response.status_code == 400
        and "starts or ends with spaces" in response.get_json()["message"]
    )
    assert app_config["catalog_path"].read_bytes() == before


def refuse_writes_of(monkeypatch, name: str) -> None:
    """Make every atomic write of the file `name` fail as on a read-only folder."""
    real_mkstemp = atomic.tempfile.mkstemp

    def mkstemp(*args, **kwargs):
        if kwargs.get("prefix", "").startswith(f".{name}."):
            raise PermissionError(errno.EACCES, "Permission denied", str(kwargs["dir"] / name))
        return real_mkstemp(*args, **kwargs)

    monkeypatch.setattr(atomic.tempfile, "mkstemp", mkstemp)


@pytest.mark.parametrize("unwritable", ["products.csv", "index.csv"])
def test_an_unwritable_file_fails_the_edit_and_leaves_both_files_as_they_were(
    admin_client, app_config, monkeypatch, caplog, unwritable
):
    admin_client.post("/api/admin/reindex", headers=AUTH)
    files = [app_config["catalog_path"], app_config["index_path"]]
    before = [path.read_bytes() for path in files]
    refuse_writes_of(monkeypatch, unwritable)
    for response in (
        admin_client.put("/api/admin/products/p1", json={"name": "Ball"}, headers=AUTH),
        admin_client.put(
            "/api/admin/products/n1", json={"image_url": "images/p2.png"}, headers=AUTH
        ),
        admin_client.delete("/api/admin/products/p2", headers=AUTH),
    ):
        assert (
            response.status_code == 500 and response.get_json()["error"] == "catalog_not_writable"
        )
    assert [path.read_bytes() for path in files] == before
    refused = files[0] if unwritable == "products.csv" else files[1]
    assert f"cannot write the catalog: permission denied: {refused}" in caplog.text
    assert admin_client.get("/api/products/p1/similar?threshold=0").status_code == 200


EDITOR = """
import json, sys, time
from backend import create_app
from backend.extensions import get_service
from backend.index import index_file

real_read_index = index_file.read_index


def slow_read_index(path):
    table = real_read_index(path)
    time.sleep(0.5)  # widen the read-modify-write, so that the two processes' edits overlap
    return table


index_file.read_index = slow_read_index
service = get_service(create_app(json.loads(sys.argv[1])))
service.load_index()
print("ready", flush=True)
sys.stdin.readline()
service.put_product(sys.argv[2], {"name": sys.argv[2], "image_url": "images/p3.png"})
print(service.indexed_count(), flush=True)
"""


@pytest.mark.slow
@pytest.mark.parametrize("backend_config", ["memory"], indirect=True)
def test_edits_from_two_processes_at_once_both_survive(open_service, backend_config):
    open_service().sync()
    config = json.dumps({key: str(value) for key, value in backend_config.items()})
    editors = [
        subprocess.Popen(
            [sys.executable, "-c", EDITOR, config, product_id],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for product_id in ("n1", "n2")
    ]
    try:
        assert [editor.stdout.readline().strip() for editor in editors] == ["ready", "ready"]
        for editor in editors:
            editor.stdin.write("go\n")
            editor.stdin.flush()
        counts = [int(editor.communicate(timeout=60)[0]) for editor in editors]
    finally:
        for editor in editors:
            editor.kill()
    assert {"n1", "n2"} <= set(catalog_rows(backend_config))
    assert {"n1", "n2"} <= {entry.id for entry in read_index(backend_config["index_path"]).entries}
    assert sorted(counts) == [8, 9]  # the later edit loaded the earlier one first
    assert open_service().indexed_count() == 9


def test_a_slow_image_url_does_not_hold_up_other_edits(app_config):
    import threading

    from tests.support.http_servers import ImageServer, serve

    arrived, released = threading.Event(), threading.Event()

    def slow_png(handler) -> None:
        arrived.set()
        released.wait(10)  # a slow image host: it answers once the other edit is done
        handler.reply(200, "image/png", image_bytes(draw_image("green", "square")))

    service = get_service(create_app(app_config | {"fetch_allow_loopback": True}))
    service.sync()
    for server in serve(ImageServer({"/slow.png": slow_png})):
        fields = {"name": "Slow", "image_url": server.url("/slow.png")}
        slow = threading.Thread(target=service.put_product, args=("remote", fields))
        slow.start()
        assert arrived.wait(10)
        service.put_product("quick", {"name": "Quick"}, image=image_bytes(draw_image("blue")))
        quick_first = slow.is_alive()  # behind the edit lock, it would have waited 10 s
        released.set()
        slow.join(30)
    assert quick_first
    assert {"remote", "quick"} <= set(catalog_rows(app_config))
    assert service.indexed_count() == 9
