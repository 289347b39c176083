"""pgvector: a search's planner settings stay its own on the pooled connection.

The search breadth (`hnsw.ef_search`, widened per query for filters and large k) and the exact
scan's `enable_indexscan off` are set local to the search's transaction. A pooled connection
serves the next search, of another breadth, so neither may outlive the search that set it.
Against the real PostgreSQL + pgvector of tests/support/postgres.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from backend.catalog import Product
from backend.stores import Filters
from tests.support.postgres import database_url, pg_server  # noqa: F401 (fixtures)

DIM = 16


@pytest.fixture
def store(database_url):  # noqa: F811
    from backend.stores.postgres import PgVectorStore
    from backend.stores.postgres_db import init_schema

    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(60, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    products = [Product(f"p{i}", f"P {i}", f"c{i % 3}", float(i), f"{i}.png") for i in range(60)]
    init_schema(database_url, DIM)
    store = PgVectorStore(database_url, DIM, pool_size=1, ef_search=50)  # one pooled connection
    store.upsert(products, vectors, ["v"] * len(products))
    yield store, vectors
    store.close()


def test_the_search_breadth_and_exact_scan_do_not_outlive_the_search(store):
    store, vectors = store
    with store._pool.connection() as conn:
        before = conn.execute("SHOW hnsw.ef_search").fetchone()[0]
    assert store.search(vectors[4], 5)[0].product.id == "p4"  # the graph walk, breadth 50
    filtered = store.search(vectors[1], 3, filters=Filters(category="c1"))  # the exact scan
    assert [hit.product.id for hit in filtered][:1] == ["p1"]
    with store._pool.connection() as conn:
        assert conn.execute("SHOW hnsw.ef_search").fetchone()[0] == before != "50"
        assert conn.execute("SHOW enable_indexscan").fetchone()[0] == "on"
