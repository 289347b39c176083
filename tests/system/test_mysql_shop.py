"""The app on VECTOR_BACKEND=mysql against a real MariaDB: same results as memory, faults, secrets."""

from __future__ import annotations

import io
import logging

import pytest

from backend import create_app
from backend.extensions import get_service
from backend.serving import boot
from tests.support.catalogs import (
    DEFAULT_ITEMS,
    HISTOGRAM,
    TEST_MODEL,
    draw_image,
    image_bytes,
)
from tests.support.mariadb import PASSWORD


@pytest.fixture
def mysql_app(app_config, mysql_url):
    app = create_app(app_config | {"vector_backend": "mysql", "database_url": mysql_url})
    yield app
    get_service(app).close()


def search_all(client) -> list[list[tuple[str, float]]]:
    """An uploaded photo, then "more like this" of every product, through the JSON API."""
    photo = image_bytes(draw_image("red", "circle"))
    responses = [
        client.post("/api/search", data={"file": (io.BytesIO(photo), "q.png"), "threshold": "0"})
    ]
    for product_id, *_ in DEFAULT_ITEMS:
        responses.append(client.get(f"/api/products/{product_id}/similar?threshold=0&k=5"))
    for response in responses:
        assert response.status_code == 200, response.get_json()
    return [[(r["id"], r["similarity"]) for r in x.get_json()["results"]] for x in responses]


@pytest.mark.slow
def test_mysql_app_indexes_into_a_fresh_mariadb_and_answers_like_memory(
    app_config, mysql_app, mysql_url
):
    get_service(mysql_app).sync()
    from tests.stores.test_mysql import sql

    assert sql(mysql_url, "SELECT COUNT(*) FROM search_vectors")[0][0] == len(DEFAULT_ITEMS)
    memory_app = create_app(
        app_config | {"index_path": app_config["index_path"].with_name("m.csv")}
    )
    assert search_all(mysql_app.test_client()) == search_all(memory_app.test_client())
    # Another worker on the same database and index starts from them without embedding anything.
    worker = create_app(app_config | {"vector_backend": "mysql", "database_url": mysql_url})
    get_service(worker).load_index()
    assert search_all(worker.test_client()) == search_all(memory_app.test_client())
    get_service(worker).close()


@pytest.mark.slow  # two syncs (about 6 s); test_mysql.py covers the store's part in the fast suite
def test_mysql_reindexing_with_another_width_leaves_a_running_server_its_index(
    app_config, mysql_app, mysql_url
):
    server = get_service(mysql_app)
    server.sync()
    photo = image_bytes(draw_image("red", "circle"))
    before = server.search_bytes(photo, k=3, threshold=0.0).hits
    histogram = {"model": "color_histogram", "model_weights": None}
    cli_app = create_app(
        app_config | {"vector_backend": "mysql", "database_url": mysql_url} | histogram
    )
    result = cli_app.test_cli_runner().invoke(args=["index"])  # another width, same tables
    assert result.exit_code == 0, result.output
    get_service(cli_app).close()

    server.stamp_check_seconds = 0
    server.reload_if_synced_elsewhere()
    assert server.search_bytes(photo, k=3, threshold=0.0).hits == before  # not an empty store
    ready = mysql_app.test_client().get("/readyz")
    assert ready.status_code == 200 and ready.json["indexed"] == len(DEFAULT_ITEMS)
    assert HISTOGRAM in ready.json["problem"] and "kept the index it has" in ready.json["problem"]


@pytest.mark.slow
def test_mysql_restart_while_serving_is_a_clear_503_then_recovers(
    mysql_app, mariadb_server, caplog
):
    client = mysql_app.test_client()
    get_service(mysql_app).sync()
    before = client.get("/api/products/p1/similar?threshold=0").get_json()["results"]
    mariadb_server.stop()
    try:
        api = client.get("/api/products/p1/similar?threshold=0")
        page = client.get("/products/p1/similar", headers={"Accept": "text/html"})
        ready = client.get("/readyz")
    finally:
        mariadb_server.start()
    assert api.status_code == 503 and api.headers["Retry-After"] == "5"
    assert api.get_json() == {
        "error": "store_unavailable",
        "message": "the product database is not available at the moment; please try again shortly",
    }
    assert page.status_code == 503
    assert "The product database is not available at the moment" in page.get_data(as_text=True)
    # Back by itself: same answers, no restart of the app, nothing lost.
    after = client.get("/api/products/p1/similar?threshold=0")
    assert after.status_code == 200 and after.get_json()["results"] == before
    for response in (api, page, ready):
        assert PASSWORD not in response.get_data(as_text=True)
    assert "lost the connection to the MySQL server" in caplog.text  # the operator is told
    assert PASSWORD not in caplog.text


def test_mysql_password_is_not_in_readyz_or_logs(mysql_app, caplog):
    caplog.set_level(logging.DEBUG)
    client = mysql_app.test_client()
    get_service(mysql_app).sync()
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["indexed"] == len(DEFAULT_ITEMS)
    assert PASSWORD not in ready.get_data(as_text=True) + caplog.text
    assert PASSWORD not in repr(mysql_app.config["SETTINGS"])


@pytest.mark.parametrize(
    "database_url, expected",
    [
        (
            "postgresql://shop:{pw}@127.0.0.1:5432/shop",
            "DATABASE_URL=postgresql://shop:***@127.0.0.1:5432/shop does not match "
            "VECTOR_BACKEND=mysql: it must start with mysql://",
        ),
        (
            "mysql://shop:{pw}@127.0.0.1:{port}/nope",
            "cannot use DATABASE_URL=mysql://shop:***@127.0.0.1:{port}/nope: the user may not use",
        ),
        (
            "mysql://shop:wrong-{pw}@127.0.0.1:{port}/nope",
            "cannot use DATABASE_URL=mysql://shop:***@127.0.0.1:{port}/nope: the server refused the "
            "user name or password",
        ),
    ],
    ids=["other-scheme", "unknown-database", "wrong-password"],
)
def test_mysql_boot_stops_with_one_line_naming_database_url(
    mariadb_server, app_config, monkeypatch, caplog, database_url, expected
):
    port = mariadb_server.port
    environ = {
        "CATALOG_PATH": str(app_config["catalog_path"]),
        "INDEX_PATH": str(app_config["index_path"]),
        "CACHE_DIR": str(app_config["cache_dir"]),
        "MODEL": TEST_MODEL,
        "MODEL_WEIGHTS": "random",
        "VECTOR_BACKEND": "mysql",
        "DATABASE_URL": database_url.format(pw=PASSWORD, port=port),
    }
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert boot.main() == 1
    (error,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert error.startswith("cannot start: " + expected.format(port=port)), error
    assert "\n" not in error and PASSWORD not in caplog.text
