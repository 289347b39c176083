"""/readyz asks the configured database whether it can answer, within a deadline.

A store in MariaDB or PostgreSQL that refuses searches (a table gone, a lock that never ends)
makes the server not ready, saying why; the details (the database's address) only for the
operator with the admin token.
"""

from __future__ import annotations

import time

import pymysql
import pytest

from backend import create_app
from backend.extensions import get_service
from backend.stores.base import StoreError
from tests.support.catalogs import DEFAULT_ITEMS
from tests.support.mariadb import PASSWORD

TOKEN = "owner-admin-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def mysql_app(app_config, mysql_url):
    config = {"vector_backend": "mysql", "database_url": mysql_url, "admin_token": TOKEN}
    app = create_app(app_config | config)
    get_service(app).sync()
    yield app
    get_service(app).close()


def database_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


def timed_readyz(client, **kwargs):
    started = time.monotonic()
    response = client.get("/readyz", **kwargs)
    return response, time.monotonic() - started


@pytest.mark.slow
def test_readyz_is_not_ready_while_the_mysql_store_refuses_searches(
    mysql_app, mysql_url, mariadb_server
):
    client = mysql_app.test_client()
    assert client.get("/readyz").status_code == 200
    database = database_of(mysql_url)
    with mariadb_server.admin() as conn, conn.cursor() as cursor:
        cursor.execute(f"RENAME TABLE {database}.search_meta TO {database}.search_meta_gone")
        try:
            time.sleep(1.1)  # the last probe's answer is reused for a second
            assert client.get("/api/products/p1/similar").status_code == 503  # searches refused
            ready, seconds = timed_readyz(client)
            operator = client.get("/readyz", headers=AUTH)
        finally:
            cursor.execute(f"RENAME TABLE {database}.search_meta_gone TO {database}.search_meta")
    assert ready.status_code == 503 and seconds < 3
    body = ready.json
    assert body["ready"] is False and body["status"] == "store_unavailable"
    assert body["problem"] == StoreError.public_message
    assert "127.0.0.1" not in ready.get_data(as_text=True)  # the address: operator only
    assert (
        operator.status_code == 503 and "DATABASE_URL=mysql://shop:***@" in operator.json["problem"]
    )
    assert PASSWORD not in operator.get_data(as_text=True)

    time.sleep(1.1)
    back = client.get("/readyz")
    assert back.status_code == 200 and back.json["indexed"] == len(DEFAULT_ITEMS)


@pytest.mark.slow
def test_readyz_answers_within_its_deadline_while_the_mysql_store_hangs(
    mysql_app, mysql_url, mariadb_server
):
    client = mysql_app.test_client()
    assert client.get("/readyz").status_code == 200
    locker = pymysql.connect(unix_socket=str(mariadb_server.socket), user="root", autocommit=True)
    try:
        with locker.cursor() as cursor:
            cursor.execute(f"LOCK TABLES {database_of(mysql_url)}.search_meta WRITE")
            time.sleep(1.1)
            ready, seconds = timed_readyz(client)
            again, again_seconds = timed_readyz(client)  # the hung probe is not started twice
            cursor.execute("UNLOCK TABLES")
    finally:
        locker.close()
    assert ready.status_code == 503 and 1.5 < seconds < 3
    assert ready.json["problem"] == "the vector store did not answer within 2 s"
    assert again.status_code == 503 and again_seconds < 3
    time.sleep(1.1)
    assert client.get("/readyz").status_code == 200


def test_readyz_is_not_ready_while_the_pgvector_store_refuses_searches(app_config, database_url):
    import psycopg

    from backend.stores.postgres_db import init_schema

    config = {"vector_backend": "pgvector", "database_url": database_url, "admin_token": TOKEN}
    app = create_app(app_config | config)
    init_schema(database_url, get_service(app).embedder.dim)
    get_service(app).sync()
    client = app.test_client()
    assert client.get("/readyz").status_code == 200
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE search_products RENAME TO search_products_gone")
        try:
            time.sleep(1.1)
            ready = client.get("/readyz")
            operator = client.get("/readyz", headers=AUTH)
        finally:
            conn.execute("ALTER TABLE search_products_gone RENAME TO search_products")
    assert ready.status_code == 503 and ready.json["status"] == "store_unavailable"
    assert ready.json["problem"] == StoreError.public_message
    assert "search_products" in operator.json["problem"]
    get_service(app).close()
