"""DATABASE_URL that cannot be read: one line naming the setting, never the password.

No database server is needed: every URL here fails before a connection is tried.
"""

from __future__ import annotations

import logging

import pytest

from backend.config import Settings, load_settings, mask_url
from backend.errors import ConfigError
from backend.stores import StoreError, open_store
from tests.cli.test_cli import flask_command

SECRET = "s3cr%et"  # a literal % that is not percent-encoding: psycopg cannot read it

UNREADABLE = [
    ("pgvector", f"postgresql://shop:{SECRET}@localhost:5432/shop"),
    ("pgvector", f"postgres://shop:{SECRET}@db.internal/shop?sslmode=require"),
    ("mysql", f"mysql://shop:{SECRET}@[::1/shop"),  # a bracket left open
    ("mysql", "mysql://shop:s3cr/et@db.internal:3306/shop"),  # an unencoded / in the password
    ("mysql", f"mysql://shop:{SECRET}@db.internal:99999/shop"),  # a port out of range
]


@pytest.mark.parametrize(("backend", "url"), UNREADABLE)
def test_an_unreadable_database_url_is_refused_naming_the_setting_not_the_password(backend, url):
    with pytest.raises(ConfigError) as caught:
        load_settings({"VECTOR_BACKEND": backend, "DATABASE_URL": url})
    message = caught.value.message
    assert message.startswith("DATABASE_URL=") and "cannot be parsed" in message
    assert "s3cr" not in message and "\n" not in message
    assert "percent-encoded" in message


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("mysql://shop:pa?ss@db/shop", "mysql://shop:***@db/shop"),
        ("mysql://shop:pa/ss@db:3306/shop?ssl=1", "mysql://shop:***@db:3306/shop"),
        ("postgresql://db/shop?user=a@b&password=secret", "postgresql://db@b"),
        ("postgresql:///shop?host=/tmp&password=secret", "postgresql:///shop"),
        ("postgresql://shop@db/shop", "postgresql://shop@db/shop"),
    ],
)
def test_a_masked_url_never_shows_a_password_wherever_it_stands(url, shown):
    assert mask_url(url) == shown


def test_the_pgvector_store_says_an_unreadable_url_without_quoting_it(caplog):
    from backend.stores.postgres import PgVectorStore

    caplog.set_level(logging.DEBUG)
    with pytest.raises(StoreError) as caught:
        PgVectorStore(f"postgresql://shop:{SECRET}@localhost/shop", 8)
    assert caught.value.message.startswith("DATABASE_URL=postgresql://shop:***@localhost/shop")
    assert SECRET not in caught.value.message and SECRET not in caplog.text


def test_the_mysql_store_says_an_unreadable_url_without_quoting_it():
    from backend.stores.mysql_db import connect_args

    with pytest.raises(StoreError) as caught:
        connect_args(f"mysql://shop:{SECRET}@[::1/shop")
    assert "cannot be parsed" in caught.value.message and SECRET not in caught.value.message


@pytest.mark.parametrize(("backend", "url"), [UNREADABLE[0], UNREADABLE[2]])
def test_flask_index_with_an_unreadable_database_url_is_one_line(tmp_path, backend, url):
    done = flask_command(
        "index",
        CATALOG_PATH=str(tmp_path / "products.csv"),
        VECTOR_BACKEND=backend,
        DATABASE_URL=url,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: DATABASE_URL="), done.stderr
    assert "s3cr" not in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("backend", "setting"),
    [("pgvector", "DATABASE_URL"), ("mysql", "DATABASE_URL"), ("milvus", "MILVUS_URI")],
)
def test_settings_made_without_the_servers_address_are_refused_by_open_store(backend, setting):
    # load_settings refuses them first; Settings built directly reach open_store as they are.
    with pytest.raises(ConfigError, match=f"VECTOR_BACKEND={backend} needs {setting}"):
        open_store(Settings(vector_backend=backend), 8)
