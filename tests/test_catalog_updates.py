"""Live catalog edits on every backend: the files are rewritten and searches see the change at once."""

from __future__ import annotations

import csv

import pytest

from backend import create_app
from backend.errors import ImageError, InvalidInput, NotFound
from backend.service import get_service
from backend.store import read_index
from tests.conftest import draw_image, image_bytes
from tests.postgres import database_url, pg_server  # noqa: F401  (fixtures)

BACKENDS = ["memory", "faiss", "pgvector"]


@pytest.fixture(params=BACKENDS)
def backend_config(request, app_config) -> dict:
    config = dict(app_config, vector_backend=request.param)
    if request.param == "pgvector":
        from backend.stores.postgres import init_schema

        config["database_url"] = request.getfixturevalue("database_url")
        init_schema(config["database_url"], 512)
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
    product = service.put_product("n1", {"name": "Green tent", "category": "outdoor", "price": "5"}, photo)
    assert product.image_url.startswith("uploads/") and product.price == 5.0
    assert (backend_config["catalog_path"].parent / product.image_url).read_bytes() == photo
    top = service.search_bytes(photo, k=1).hits[0]
    assert top.product == product and top.similarity == pytest.approx(1.0, abs=1e-3)
    assert catalog_rows(backend_config)["n1"] == ["n1", "Green tent", "outdoor", "5.0", product.image_url]
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
    assert {k: v for k, v in rows.items() if k != "p4"} == {k: v for k, v in before.items() if k != "p4"}
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
    ],
)
def test_bad_edits_are_refused_and_change_nothing(open_service, backend_config, product_id, fields, error, message):
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
