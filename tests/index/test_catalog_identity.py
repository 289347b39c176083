"""Each catalog has its own index: a shop's `flask index` never empties a running demo."""

from __future__ import annotations

import json

import pytest

from backend import create_app
from backend.extensions import get_service
from backend.index.index_file import catalog_reference, read_index
from tests.support.catalogs import DEFAULT_ITEMS, TEST_MODEL, draw_image, image_bytes, write_catalog

SHOP_ITEMS = [
    ("s1", "Green tent", "outdoor", "green", "triangle"),
    ("s2", "Blue box", "toys", "blue", "square"),
]

TOKEN = "owner-admin-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def config_for(catalog_path, root, **settings) -> dict:
    """An app's settings that, like a plain start, leave INDEX_PATH unset."""
    return {
        "TESTING": True,
        "catalog_path": catalog_path,
        "cache_dir": root / "cache",
        "model": TEST_MODEL,
        "model_weights": "random",
        "_similarity_threshold": 0.0,
    } | settings


def top_ids(service, colour="red", shape="circle") -> list[str]:
    result = service.search_bytes(image_bytes(draw_image(colour, shape)), k=3, threshold=0.0)
    return [hit.product.id for hit in result.hits]


def test_indexing_another_catalog_leaves_the_running_one_alone(tmp_path):
    demo_app = create_app(config_for(write_catalog(tmp_path / "demo"), tmp_path))
    demo = get_service(demo_app)
    demo.sync()
    before = top_ids(demo)

    shop_app = create_app(config_for(write_catalog(tmp_path / "shop", SHOP_ITEMS), tmp_path))
    result = shop_app.test_cli_runner().invoke(args=["index"])
    assert result.exit_code == 0, result.output

    assert (tmp_path / "shop" / "index.csv").is_file()  # beside the catalog it indexes
    assert [e.id for e in read_index(tmp_path / "demo" / "index.csv").entries] == [
        item[0] for item in DEFAULT_ITEMS
    ]
    demo.stamp_check_seconds = 0
    demo.reload_if_synced_elsewhere()
    assert top_ids(demo) == before
    assert demo_app.test_client().get("/products/p1/similar").status_code == 200
    assert demo_app.test_client().get("/readyz").json["indexed"] == len(DEFAULT_ITEMS)


def test_index_csv_records_the_catalog_it_was_built_from(tmp_path):
    shop = write_catalog(tmp_path / "shop")
    get_service(create_app(config_for(shop, tmp_path))).sync()
    first_line = (tmp_path / "shop" / "index.csv").read_text().splitlines()[0]
    assert first_line.startswith("#")
    assert json.loads(first_line[1:])["catalog"] == "products.csv"  # moves with its folder
    assert read_index(tmp_path / "shop" / "index.csv").meta.catalog == "products.csv"
    elsewhere = tmp_path / "data" / "index.csv"
    assert catalog_reference(shop, elsewhere) == str(shop.resolve())


def test_a_shared_index_path_is_rebuilt_for_its_catalog_and_never_loaded_by_the_other(tmp_path):
    shared = tmp_path / "data" / "index.csv"
    demo_app = create_app(config_for(write_catalog(tmp_path / "demo"), tmp_path, index_path=shared))
    demo = get_service(demo_app)
    demo.sync()
    before = top_ids(demo)

    shop = write_catalog(tmp_path / "shop", SHOP_ITEMS)
    shop_service = get_service(create_app(config_for(shop, tmp_path, index_path=shared)))
    _, report = shop_service.sync()
    assert report.replaced_catalog == str((tmp_path / "demo" / "products.csv").resolve())
    assert sorted(report.added) == ["s1", "s2"]  # nothing of the other catalog's reused
    assert [e.id for e in read_index(shared).entries] == ["s1", "s2"]

    # The running server notices the sync, refuses the foreign index and keeps its own.
    demo.stamp_check_seconds = 0
    demo.reload_if_synced_elsewhere()
    assert top_ids(demo) == before

    # A server that starts on it serves nothing and says why, instead of "ready".
    restarted = create_app(
        config_for(tmp_path / "demo" / "products.csv", tmp_path, index_path=shared)
    )
    get_service(restarted).load_index()
    ready = restarted.test_client().get("/readyz")
    assert ready.status_code == 503
    assert ready.json["status"] == "nothing_searchable" and ready.json["indexed"] == 0
    assert "built from another catalog" in ready.json["problem"]


def test_readyz_is_not_ready_when_nothing_in_a_non_empty_catalog_is_searchable(tmp_path):
    shop = write_catalog(tmp_path / "shop")
    for image in (tmp_path / "shop" / "images").iterdir():
        image.unlink()
    app = create_app(config_for(shop, tmp_path, admin_token=TOKEN))
    get_service(app).sync()
    ready = app.test_client().get("/readyz", headers=AUTH)
    assert ready.status_code == 503
    assert ready.json["ready"] is False and ready.json["status"] == "nothing_searchable"
    assert ready.json["failed_images"] == len(DEFAULT_ITEMS)
    assert ready.json["failed"][0] == {"id": "p1", "reason": "image file 'images/p1.png' not found"}


def test_an_empty_catalog_is_ready(tmp_path):
    shop = tmp_path / "shop" / "products.csv"
    shop.parent.mkdir()
    shop.write_text("id,name,category,price,image_url\n")
    app = create_app(config_for(shop, tmp_path))
    get_service(app).sync()
    assert app.test_client().get("/readyz").status_code == 200


def test_failure_reasons_reach_servers_that_only_load_the_index(tmp_path):
    shop = write_catalog(
        tmp_path / "shop", extra_rows=[["miss", "Missing", "toys", "1", "images/none.png"]]
    )
    get_service(create_app(config_for(shop, tmp_path))).sync()
    # A gunicorn worker: loads, embeds nothing.
    worker = create_app(config_for(shop, tmp_path, admin_token=TOKEN))
    get_service(worker).load_index()
    body = worker.test_client().get("/readyz", headers=AUTH).json
    assert body["failed"] == [{"id": "miss", "reason": "image file 'images/none.png' not found"}]


@pytest.mark.parametrize("legacy", [True, False])
def test_an_index_without_a_record_is_taken_as_this_catalogs(tmp_path, legacy):
    """Files written before the record existed keep working (and gain the record)."""
    shop = write_catalog(tmp_path / "shop")
    service = get_service(create_app(config_for(shop, tmp_path)))
    service.sync()
    index = tmp_path / "shop" / "index.csv"
    if legacy:
        index.write_text("".join(index.read_text().splitlines(keepends=True)[1:]))
    _, report = service.sync()
    assert report.unchanged == len(DEFAULT_ITEMS) and not report.added
    assert read_index(index).meta.catalog == "products.csv"


def test_a_live_edit_never_writes_into_another_catalogs_index(tmp_path):
    from backend.errors import ConfigError

    shared = tmp_path / "data" / "index.csv"
    demo_catalog = write_catalog(tmp_path / "demo")
    demo = get_service(create_app(config_for(demo_catalog, tmp_path, index_path=shared)))
    demo.sync()
    shop = write_catalog(tmp_path / "shop", SHOP_ITEMS)
    get_service(create_app(config_for(shop, tmp_path, index_path=shared))).sync()
    catalog_before, index_before = demo_catalog.read_bytes(), shared.read_bytes()
    with pytest.raises(ConfigError, match="built from another catalog"):
        demo.put_product("n1", {"name": "New", "image_url": "images/p1.png"})
    assert demo_catalog.read_bytes() == catalog_before and shared.read_bytes() == index_before
