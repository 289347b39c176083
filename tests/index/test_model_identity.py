"""A server never swaps to an index built with another model: it keeps the one it can search."""

from __future__ import annotations

import pytest

from backend import create_app
from backend.errors import ConfigError
from backend.extensions import get_service
from backend.index.index_file import read_index
from tests.support.catalogs import (
    DEFAULT_ITEMS,
    HISTOGRAM,
    TEST_MODEL,
    draw_image,
    image_bytes,
    write_catalog,
)


def config_for(catalog_path, root, **settings) -> dict:
    return {
        "TESTING": True,
        "catalog_path": catalog_path,
        "cache_dir": root / "cache",
        "model": TEST_MODEL,
        "model_weights": "random",
        "_similarity_threshold": 0.0,
    } | settings


def top_ids(service) -> list[str]:
    result = service.search_bytes(image_bytes(draw_image("red", "circle")), k=3, threshold=0.0)
    return [hit.product.id for hit in result.hits]


def test_reindexing_with_another_model_leaves_a_running_server_its_index(tmp_path):
    shop = write_catalog(tmp_path / "shop")
    server_app = create_app(config_for(shop, tmp_path))
    server = get_service(server_app)
    server.sync()
    before = top_ids(server)
    served_model = server.embedder.identity

    cli_app = create_app(config_for(shop, tmp_path, model="color_histogram", model_weights=None))
    result = cli_app.test_cli_runner().invoke(args=["index"])
    assert result.exit_code == 0, result.output
    assert {e.model for e in read_index(tmp_path / "shop" / "index.csv").entries} == {HISTOGRAM}
    # The command says what it did to a server still running the old model, and the fix.
    assert served_model in result.output and "MODEL=color_histogram" in result.output

    server.stamp_check_seconds = 0
    server.reload_if_synced_elsewhere()
    assert top_ids(server) == before  # still answers from the index it can search
    ready = server_app.test_client().get("/readyz")
    assert ready.status_code == 200 and ready.json["indexed"] == len(DEFAULT_ITEMS)
    problem = ready.json["problem"]
    assert HISTOGRAM in problem and served_model in problem
    assert "MODEL=color_histogram" in problem and "kept the index it has" in problem

    # Nor does it write its own model's rows into the other model's index.
    index_before = (tmp_path / "shop" / "index.csv").read_bytes()
    with pytest.raises(ConfigError, match="built with model"):
        server.put_product("n1", {"name": "New", "image_url": "images/p1.png"})
    assert (tmp_path / "shop" / "index.csv").read_bytes() == index_before

    # Once re-indexed with its model, it loads the index again and the note goes.
    again = create_app(config_for(shop, tmp_path)).test_cli_runner().invoke(args=["index"])
    assert again.exit_code == 0, again.output
    server.reload_if_synced_elsewhere()
    ready = server_app.test_client().get("/readyz").json
    assert "problem" not in ready and top_ids(server) == before
    server.put_product("n1", {"name": "New", "image_url": "images/p1.png"})


def test_a_server_that_re_indexes_itself_takes_edits_again(tmp_path):
    shop = write_catalog(tmp_path / "shop")
    server = get_service(create_app(config_for(shop, tmp_path)))
    server.sync()
    histogram = config_for(shop, tmp_path, model="color_histogram", model_weights=None)
    get_service(create_app(histogram)).sync()
    server.stamp_check_seconds = 0
    server.reload_if_synced_elsewhere()
    assert "built with model" in server.snapshot.problem
    server.sync()  # POST /api/admin/reindex: embeds with its own model
    assert server.snapshot.problem is None
    server.put_product("n1", {"name": "New", "image_url": "images/p1.png"})


def test_a_server_started_on_another_models_index_serves_nothing_and_says_why(tmp_path):
    shop = write_catalog(tmp_path / "shop")
    histogram = config_for(shop, tmp_path, model="color_histogram", model_weights=None)
    get_service(create_app(histogram)).sync()

    app = create_app(config_for(shop, tmp_path))
    get_service(app).load_index()
    ready = app.test_client().get("/readyz")
    assert ready.status_code == 503 and ready.json["indexed"] == 0
    assert HISTOGRAM in ready.json["problem"] and "MODEL=color_histogram" in ready.json["problem"]
    assert "serving nothing" in ready.json["problem"]


def test_readyz_names_the_mismatch_before_any_search_reaches_the_server(tmp_path):
    shop = write_catalog(tmp_path / "shop")
    server_app = create_app(config_for(shop, tmp_path))
    server = get_service(server_app)
    server.sync()
    server.stamp_check_seconds = 0
    histogram = config_for(shop, tmp_path, model="color_histogram", model_weights=None)
    assert create_app(histogram).test_cli_runner().invoke(args=["index"]).exit_code == 0
    ready = server_app.test_client().get("/readyz")  # the first request since the re-index
    assert ready.status_code == 200 and ready.json["indexed"] == len(DEFAULT_ITEMS)
    assert HISTOGRAM in ready.json["problem"]
