"""The app on VECTOR_BACKEND=milvus against a real Milvus: same results as memory, faults, secrets."""

from __future__ import annotations

import logging
import time

import pytest

from backend import create_app
from backend.extensions import get_service
from backend.serving import boot
from tests.support.mariadb import free_port
from tests.system.test_mysql_shop import search_all

TOKEN = "root:Milvus-Tok3n-s3cret"


@pytest.fixture
def milvus_app(app_config, milvus_uri):
    app = create_app(
        app_config | {"vector_backend": "milvus", "milvus_uri": milvus_uri, "milvus_token": TOKEN}
    )
    yield app
    get_service(app).close()


@pytest.mark.slow
def test_milvus_app_indexes_into_a_fresh_milvus_and_answers_like_memory(
    app_config, milvus_app, milvus_uri, caplog
):
    caplog.set_level(logging.DEBUG)
    get_service(milvus_app).sync()
    memory_app = create_app(
        app_config | {"index_path": app_config["index_path"].with_name("m.csv")}
    )
    expected = search_all(memory_app.test_client())
    got = search_all(milvus_app.test_client())
    assert [[pid for pid, _ in answer] for answer in got] == [
        [pid for pid, _ in answer] for answer in expected
    ]
    for answer, reference in zip(got, expected, strict=True):
        assert [s for _, s in answer] == pytest.approx([s for _, s in reference], abs=1e-4)
    ready = milvus_app.test_client().get("/readyz")
    assert ready.status_code == 200
    for text in (ready.get_data(as_text=True), caplog.text, repr(milvus_app.config["SETTINGS"])):
        assert TOKEN not in text and "Tok3n" not in text


@pytest.mark.slow
def test_milvus_stopped_while_serving_is_a_clear_503_then_recovers_by_itself(
    milvus_app, milvus_server, caplog
):
    client = milvus_app.test_client()
    get_service(milvus_app).sync()
    before = client.get("/api/products/p1/similar?threshold=0").get_json()["results"]
    milvus_server.stop()
    try:
        started = time.monotonic()
        api = client.get("/api/products/p1/similar?threshold=0")
        waited = time.monotonic() - started
        page = client.get("/products/p1/similar", headers={"Accept": "text/html"})
    finally:
        milvus_server.start()
    assert api.status_code == 503 and api.headers["Retry-After"] == "5"
    assert api.get_json() == {
        "error": "store_unavailable",
        "message": "the product database is not available at the moment; please try again shortly",
    }
    assert waited < 5 + 1 + 2  # MILVUS_TIMEOUT, a slot's wait, slack
    assert page.status_code == 503
    assert "The product database is not available at the moment" in page.get_data(as_text=True)
    assert "Milvus at MILVUS_URI=http://127.0.0.1:" in caplog.text  # the operator is told
    # Back by itself: the same app and store, once Milvus has loaded the collection again.
    deadline = time.monotonic() + 180
    while (after := client.get("/api/products/p1/similar?threshold=0")).status_code != 200:
        assert time.monotonic() < deadline, after.get_json()
        time.sleep(1)
    assert after.get_json()["results"] == before
    assert TOKEN not in caplog.text


@pytest.mark.parametrize(
    "uri, expected",
    [
        (
            "postgresql://shop:{secret}@127.0.0.1:5432/shop",
            "MILVUS_URI=postgresql://shop:***@127.0.0.1:5432/shop does not match "
            "VECTOR_BACKEND=milvus: it must start with http:// or https://",
        ),
        ("", "VECTOR_BACKEND=milvus needs MILVUS_URI, e.g. http://"),
        pytest.param(
            "http://root:{secret}@127.0.0.1:{port}/shop",
            "cannot connect to Milvus at MILVUS_URI=http://root:***@127.0.0.1:{port}/shop: ",
            marks=pytest.mark.slow,  # waits out the connection timeout
        ),
    ],
    ids=["other-scheme", "missing", "unreachable"],
)
def test_milvus_boot_stops_with_one_line_naming_milvus_uri(
    app_config, monkeypatch, caplog, uri, expected
):
    port, secret = free_port(), "Uri-s3cret"
    environ = {
        "CATALOG_PATH": str(app_config["catalog_path"]),
        "INDEX_PATH": str(app_config["index_path"]),
        "CACHE_DIR": str(app_config["cache_dir"]),
        "MODEL_WEIGHTS": "random",
        "VECTOR_BACKEND": "milvus",
        "MILVUS_URI": uri.format(secret=secret, port=port),
        "MILVUS_TOKEN": TOKEN,
        "MILVUS_TIMEOUT": "2",
    }
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert boot.main() == 1
    (error,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert error.startswith("cannot start: " + expected.format(port=port)), error
    assert "\n" not in error
    for text in (error, caplog.text):
        assert secret not in text and TOKEN not in text
