"""The mysql backend against a real MariaDB: several processes, chunked loads, faults, secrets.

The behaviour every backend shares is in test_stores.py; these are the mysql backend's own.
"""

from __future__ import annotations

import logging

import numpy as np
import pymysql
import pytest

from backend.catalog import Product
from backend.stores import Filters, StoreError
from backend.stores import mysql as mysql_store
from backend.stores.memory import MemoryStore
from backend.stores.mysql import MySQLStore
from tests.stores.test_stores import DIM, PRODUCTS, VECTORS, ids
from tests.support.mariadb import PASSWORD, free_port


def sql(url: str, statement: str, params=()) -> list[tuple]:
    """Run one statement as the test's database user, outside the store."""
    from backend.stores.mysql_db import connect_args

    with pymysql.connect(**connect_args(url)) as conn, conn.cursor() as cursor:
        cursor.execute(statement, params)
        return list(cursor.fetchall())


@pytest.fixture
def stores(mysql_url):
    """Open stores on the test database (each one is like another app process)."""
    opened = []

    def factory(**options):
        store = MySQLStore(mysql_url, options.pop("dim", DIM), pool_size=2, **options)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


def test_mysql_tables_are_created_on_first_use_with_a_schema_version(stores, mysql_url):
    stores(model="model-a").upsert(PRODUCTS[:3], VECTORS[:3], ["v1"] * 3)
    meta = dict(sql(mysql_url, "SELECT name, value FROM search_meta"))
    assert meta["schema_version"] == "1" and meta["dim"] == str(DIM)
    rows = sql(
        mysql_url, "SELECT id, model, LENGTH(embedding), category, price FROM search_vectors"
    )
    assert sorted(rows) == [
        (p.id, "model-a", DIM * 4, p.category, p.price) for p in PRODUCTS[:3]
    ]  # float32 BLOBs and what the filters need, per row


def test_mysql_refuses_tables_of_a_newer_schema(stores, mysql_url):
    stores()
    sql(mysql_url, "UPDATE search_meta SET value = '99' WHERE name = 'schema_version'")
    with pytest.raises(StoreError, match=r"schema v99, this app knows v1; upgrade the app"):
        stores()


def test_mysql_results_equal_the_memory_backends(stores):
    memory = MemoryStore(DIM)
    memory.upsert(PRODUCTS, VECTORS, ["v"] * len(PRODUCTS))
    stores().upsert(PRODUCTS, VECTORS, ["v"] * len(PRODUCTS))
    fresh = stores()  # loaded from the database, not from its own writes
    rng = np.random.default_rng(3)
    for _ in range(20):
        query = rng.normal(size=DIM).astype(np.float32)
        query /= np.linalg.norm(query)
        for filters in (Filters(), Filters(category="c2"), Filters(min_price=5, max_price=30)):
            expected = memory.search(query, 12, filters=filters)
            got = fresh.search(query, 12, filters=filters)
            assert [(h.product, h.score) for h in got] == [(h.product, h.score) for h in expected]


def test_mysql_loads_in_chunks_and_other_processes_see_every_write(stores, monkeypatch):
    monkeypatch.setattr(mysql_store, "CHUNK", 7)  # many chunks, at test size
    writer = stores()
    writer.upsert(PRODUCTS, VECTORS, ["v1"] * len(PRODUCTS))
    reader = stores()
    assert reader.count() == len(PRODUCTS)
    assert ids(reader.search(VECTORS[50], 10)) == ids(writer.search(VECTORS[50], 10))
    # Later writes reach the reader as changes: upserts, a rename, deletes, in one go.
    renamed = Product("p1", "Renamed", "c9", 1.0, "n.png")
    writer.apply(["p2", "p3"], [renamed, *PRODUCTS[400:]], VECTORS[[5]], ["v2"])
    assert reader.versions()["p1"] == "v2" and "p2" not in reader.versions()
    assert reader.search(VECTORS[5], 1, filters=Filters(category="c9"))[0].product == renamed
    assert reader.delete(["p1"]) == 1
    assert writer.vector("p1") is None and writer.count() == len(PRODUCTS) - 3


def test_mysql_a_process_behind_purged_tombstones_reloads_everything(stores, mysql_url):
    writer, behind = stores(), stores()
    writer.upsert(PRODUCTS[:50], VECTORS[:50], ["v1"] * 50)
    assert behind.count() == 50
    writer.delete(["p1", "p2"])
    # A day later the next write purges those tombstones, which `behind` never read.
    sql(
        mysql_url,
        "UPDATE search_vectors SET deleted_at = NOW() - INTERVAL 2 DAY WHERE embedding IS NULL",
    )
    writer.upsert(PRODUCTS[60:61], VECTORS[60:61], ["v1"])
    assert sql(mysql_url, "SELECT COUNT(*) FROM search_vectors")[0][0] == 49
    assert sorted(behind.versions()) == sorted(writer.versions())
    assert behind.count() == 49 and behind.vector("p1") is None


def wide_vectors(n: int) -> np.ndarray:
    """n unit vectors of twice DIM: another model's."""
    return np.ones((n, DIM * 2), dtype=np.float32) / np.sqrt(DIM * 2)


def test_mysql_a_model_of_another_width_empties_the_tables_when_it_writes(
    stores, mysql_url, caplog
):
    stores().upsert(PRODUCTS[:20], VECTORS[:20], ["v1"] * 20)
    wider = stores(dim=DIM * 2)
    assert wider.count() == 0  # nothing it can search; opening the tables empties nothing
    assert sql(mysql_url, "SELECT COUNT(*) FROM search_vectors")[0][0] == 20
    wider.upsert(PRODUCTS[:1], wide_vectors(1), ["v2"])  # what its sync writes first
    assert "held 24-dimensional vectors of another model" in caplog.text
    assert sql(mysql_url, "SELECT COUNT(*) FROM search_vectors")[0][0] == 1
    assert stores(dim=DIM * 2).count() == 1 and wider.count() == 1


def test_mysql_a_process_of_the_previous_width_keeps_serving_its_vectors(stores, caplog):
    serving = stores()
    serving.upsert(PRODUCTS, VECTORS, ["v1"] * len(PRODUCTS))
    before = serving.search(VECTORS[9], 10)
    wider = stores(dim=DIM * 2)
    wider.upsert(PRODUCTS[:3], wide_vectors(3), ["w"] * 3)  # another model's `flask index`
    wider.delete(["p1"])  # and its later changes
    assert serving.search(VECTORS[9], 10) == before and serving.count() == len(PRODUCTS)
    assert serving.versions()["p1"] == "v1"
    assert f"keeps its {len(PRODUCTS)} vectors of 24 dimensions" in caplog.text
    # Re-indexed with its model: it loads the tables again, and the other keeps its own.
    stores().upsert(PRODUCTS[:5], VECTORS[:5], ["v3"] * 5)
    assert serving.count() == 5 and serving.versions()["p1"] == "v3"
    assert wider.count() == 2 and sorted(wider.versions()) == ["p0", "p2"]


def test_mysql_checks_each_rows_dimension_on_read(stores, mysql_url, caplog):
    stores().upsert(PRODUCTS[:5], VECTORS[:5], ["v1"] * 5)
    sql(mysql_url, "UPDATE search_vectors SET embedding = SUBSTRING(embedding, 5) WHERE id = 'p3'")
    reader = stores()
    assert reader.count() == 4 and "p3" not in reader.versions()  # a sync writes it again
    assert "1 rows are not 24-dimensional; left out" in caplog.text


def start_error(url: str) -> str:
    with pytest.raises(StoreError) as caught:
        MySQLStore(url, DIM)
    message = caught.value.message
    assert "\n" not in message and caught.value.status == 503
    return message


def test_mysql_start_up_errors_are_one_line_naming_database_url_without_the_password(
    mariadb_server, mysql_url
):
    database = mysql_url.rsplit("/", 1)[1]
    port = mariadb_server.port
    wrong_password = mariadb_server.url(database, password="not-the-Pw_1")
    assert start_error(wrong_password) == (
        f"cannot use DATABASE_URL=mysql://shop:***@127.0.0.1:{port}/{database}: "
        "the server refused the user name or password"
    )
    assert start_error(mariadb_server.url("not_granted")).endswith(
        "/not_granted: the user may not use that database (GRANT it the rights listed in "
        "docs/mysql.md)"
    )
    down = f"mysql://shop:{PASSWORD}@127.0.0.1:{free_port()}/{database}"
    assert "the server does not answer at that address" in start_error(down)
    assert "port that is not a number" in start_error(f"mysql://shop:{PASSWORD}@127.0.0.1:x/db")
    assert "names no database" in start_error(f"mysql://shop:{PASSWORD}@127.0.0.1:{port}/")
    for message in (start_error(wrong_password), start_error(down)):
        assert PASSWORD not in message and "not-the-Pw_1" not in message


def test_mysql_unknown_database_is_named(mariadb_server):
    with mariadb_server.admin() as conn, conn.cursor() as cursor:
        cursor.execute("GRANT ALL ON `absent_db`.* TO 'shop'@'127.0.0.1'")
    message = start_error(mariadb_server.url("absent_db"))
    assert message.endswith(
        "/absent_db: that database does not exist on the server (CREATE DATABASE it first)"
    )


@pytest.mark.slow
def test_mysql_server_restart_is_503_while_away_then_recovers_with_nothing_lost(
    stores, mariadb_server, caplog
):
    store = stores()
    store.upsert(PRODUCTS, VECTORS, ["v1"] * len(PRODUCTS))
    before = store.search(VECTORS[9], 10)
    mariadb_server.stop()
    try:
        with pytest.raises(StoreError, match="lost the connection to the MySQL server") as caught:
            store.search(VECTORS[9], 10)
        assert caught.value.status == 503 and PASSWORD not in caught.value.message
        with pytest.raises(StoreError):
            store.upsert(PRODUCTS[:1], VECTORS[:1], ["v2"])
    finally:
        mariadb_server.start()
    assert store.search(VECTORS[9], 10) == before  # the same pool, no restart of the store
    store.upsert(PRODUCTS[:1], VECTORS[:1], ["v3"])
    assert stores().versions() == {**{p.id: "v1" for p in PRODUCTS}, "p0": "v3"}
    assert PASSWORD not in caplog.text


def test_mysql_store_logs_never_hold_the_password(stores, caplog):
    caplog.set_level(logging.DEBUG)
    stores().upsert(PRODUCTS[:3], VECTORS[:3], ["v1"] * 3)
    stores(dim=DIM * 2)
    assert caplog.text and PASSWORD not in caplog.text
