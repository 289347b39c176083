"""A real PostgreSQL with pgvector for the tests, from the pgserver wheel (it ships both).

`pg_server` starts one private server per test session in a temp folder of its own (Unix socket only, no
TCP port) and stops and deletes it at the end; `database_url` gives each test its own empty
database on it. Import both fixtures into a test module to use them.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
import warnings
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def pg_server():
    with warnings.catch_warnings():
        # platformdirs warns at import when XDG_RUNTIME_DIR is unset (it falls back to /tmp).
        warnings.simplefilter("ignore")
        try:
            import pgserver
        except ImportError as error:
            pytest.skip(f"pgvector tests need the pgserver wheel (requirements-dev.txt): {error}")
    # Not under pytest's temp root: another pytest run on the machine resets that to mode 0700,
    # which locks out the server's own system user when the tests run as root.
    folder = Path(tempfile.mkdtemp(prefix="search-tests-pg-"))
    server = pgserver.get_server(folder / "data", cleanup_mode="delete")
    try:
        yield server
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def database_url(pg_server) -> str:
    import psycopg

    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server.get_uri(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield pg_server.get_uri(name)
    with psycopg.connect(pg_server.get_uri(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")
