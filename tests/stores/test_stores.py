"""One behavioural suite for every vector store: memory, FAISS, PostgreSQL + pgvector, MySQL, Milvus.

Each test runs against all five backends (pgvector, mysql and milvus on real servers started by
the tests: PostgreSQL from the pgserver wheel, MariaDB from Debian's mariadb-server, Milvus from
the milvus wheel) and checks them
against a brute-force numpy reference written here, independently of the code.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from backend.catalog import Catalog, Product
from backend.index.index_file import Entry, IndexTable
from backend.stores import NO_FILTERS, Filters, StoreError, item_version, sync_store
from backend.stores.faiss_hnsw import FaissStore
from backend.stores.memory import MemoryStore

DIM = 24
# Milvus runs in the full suite only: its server takes seconds to start and each of its tests
# seconds more (docs/development.md, the fast tests).
MILVUS = pytest.param("milvus", marks=pytest.mark.slow)
BACKENDS = ["memory", "faiss", "pgvector", "mysql", MILVUS]
PERSISTENT = ["faiss", "pgvector", "mysql", MILVUS]
EXACT = ["memory", "mysql"]  # exact search by design: no graph whose walk could come back short
RARE = "rare"


def make_items(n: int = 400, seed: int = 7) -> tuple[list[Product], np.ndarray]:
    """Clustered unit vectors; 12 products in a rare category; some without a price."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(6, DIM))
    vectors = centres[rng.integers(0, 6, n)] + 0.6 * rng.normal(size=(n, DIM))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    products = []
    for i in range(n):
        category = RARE if i % 33 == 5 else f"c{i % 4}"
        price = None if i % 10 == 9 else float(i % 50)
        products.append(Product(f"p{i}", f"Product {i}", category, price, f"images/p{i}.png"))
    return products, vectors


PRODUCTS, VECTORS = make_items()


def reference(
    query: np.ndarray, k: int, filters: Filters = NO_FILTERS, threshold=None
) -> list[str]:
    """Brute force: every matching product scored, best first, ties by insertion order."""
    scored = []
    for product, vector in zip(PRODUCTS, VECTORS, strict=True):
        if filters.category is not None and product.category != filters.category:
            continue
        if filters.has_price and product.price is None:
            continue
        if filters.min_price is not None and product.price < filters.min_price:
            continue
        if filters.max_price is not None and product.price > filters.max_price:
            continue
        scored.append((float(vector @ query), product.id))
    scored.sort(key=lambda pair: -pair[0])
    return [pid for score, pid in scored[:k] if threshold is None or score >= threshold]


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def open_store(backend, tmp_path, request):
    """Open a store of the current backend (again: same files or database, a new object)."""
    opened = []
    url = None
    if backend == "pgvector":
        from backend.stores.postgres_db import init_schema

        url = request.getfixturevalue("database_url")
        init_schema(url, DIM)
    elif backend == "mysql":
        url = request.getfixturevalue("mysql_url")
    elif backend == "milvus":
        url = request.getfixturevalue("milvus_uri")

    def factory(**options):
        if backend == "memory":
            store = MemoryStore(DIM)
        elif backend == "faiss":
            store = FaissStore(tmp_path / "faiss", DIM, **options)
        elif backend == "mysql":
            from backend.stores.mysql import MySQLStore

            store = MySQLStore(url, DIM, pool_size=2, **options)
        elif backend == "milvus":
            from backend.stores.milvus import MilvusStore

            store = MilvusStore(url, DIM, **options)
        else:
            from backend.stores.postgres import PgVectorStore

            store = PgVectorStore(url, DIM, pool_size=2, **options)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


@pytest.fixture
def filled(open_store):
    store = open_store()
    store.upsert(PRODUCTS, VECTORS, ["v1"] * len(PRODUCTS))
    return store


def ids(hits) -> list[str]:
    return [hit.product.id for hit in hits]


def test_ranks_like_brute_force_with_exact_cosine_scores(filled):
    for row in (0, 17, 123):
        hits = filled.search(VECTORS[row], 10)
        assert ids(hits) == reference(VECTORS[row], 10)
        assert hits[0].product == PRODUCTS[row]
        for hit in hits:
            expected = float(VECTORS[int(hit.product.id[1:])] @ VECTORS[row])
            assert hit.score == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("k", [1, 5, 37])
def test_returns_exactly_k(filled, k):
    assert len(filled.search(VECTORS[3], k)) == k


def test_k_beyond_the_store_returns_everything(open_store):
    store = open_store()
    store.upsert(PRODUCTS[:8], VECTORS[:8], ["v1"] * 8)
    assert sorted(ids(store.search(VECTORS[0], 50))) == sorted(p.id for p in PRODUCTS[:8])


def test_threshold_keeps_only_hits_at_or_above_it(filled):
    hits = filled.search(VECTORS[40], 30, threshold=0.6)
    assert hits and all(hit.score >= 0.6 for hit in hits)
    assert ids(hits) == reference(VECTORS[40], 30, threshold=0.6)


@pytest.mark.parametrize(
    "filters",
    [
        Filters(category="c1"),
        Filters(min_price=10, max_price=20),
        Filters(max_price=5),
        Filters(category="c2", min_price=30),
        Filters(category="no such category"),
    ],
    ids=["category", "price-range", "max-price", "category+price", "unknown-category"],
)
def test_filters_rank_only_matching_products(filled, filters):
    expected = reference(VECTORS[11], 10, filters)
    assert ids(filled.search(VECTORS[11], 10, filters=filters)) == expected


def test_rare_category_still_yields_its_k_matches(open_store, backend):
    # exact_limit=0 makes the ANN backends walk their graph even for a rare category; they
    # must still come back with k results (wider walk, exact fallback).
    options = {} if backend in EXACT else {"exact_limit": 0}
    store = open_store(**options)
    store.upsert(PRODUCTS, VECTORS, ["v1"] * len(PRODUCTS))
    rare = Filters(category=RARE)
    assert sum(p.category == RARE for p in PRODUCTS) == 12
    for row in (0, 2, 300):  # queries from other categories, far from the rare products
        hits = store.search(VECTORS[row], 10, filters=rare)
        assert len(hits) == 10
        assert ids(hits) == reference(VECTORS[row], 10, rare)


def test_upsert_replaces_a_product_and_its_vector(filled):
    renamed = Product("p5", "Renamed", "c3", 99.0, "images/new.png")
    filled.upsert([renamed], VECTORS[200:201], ["v2"])
    assert filled.count() == len(PRODUCTS)
    assert filled.versions()["p5"] == "v2"
    hits = filled.search(VECTORS[200], 2)
    assert {hit.product for hit in hits} == {renamed, PRODUCTS[200]}
    assert filled.search(VECTORS[200], 2, filters=Filters(category="c3"))[0].product == renamed
    np.testing.assert_allclose(filled.vector("p5"), VECTORS[200], atol=1e-6)
    assert "p5" not in ids(filled.search(VECTORS[5], 10, filters=Filters(category=RARE)))


def test_upsert_adds_new_products_and_last_duplicate_wins(filled):
    first = Product("new", "First", "c0", 1.0, "a.png")
    second = Product("new", "Second", "c0", 1234.5, "b.png")
    filled.upsert([first, second], VECTORS[[1, 2]], ["a", "b"])
    assert filled.count() == len(PRODUCTS) + 1
    assert filled.versions()["new"] == "b"
    assert filled.search(-VECTORS[2], 1, filters=Filters(min_price=1000))[0].product == second


def test_delete_removes_products_from_results(filled):
    assert filled.delete(["p17", "p18", "nope"]) == 2
    assert filled.count() == len(PRODUCTS) - 2
    assert filled.vector("p17") is None
    hits = filled.search(VECTORS[17], 10)
    assert "p17" not in ids(hits) and len(hits) == 10
    assert filled.delete([]) == 0


def test_empty_store_finds_nothing(open_store):
    store = open_store()
    assert store.count() == 0
    assert store.search(VECTORS[0], 5) == []
    assert store.search(VECTORS[0], 5, filters=Filters(category="c1")) == []
    assert store.vector("p1") is None


@pytest.mark.parametrize("backend", PERSISTENT, indirect=True)
def test_contents_survive_a_restart(open_store):
    store = open_store()
    store.upsert(PRODUCTS, VECTORS, ["v1"] * len(PRODUCTS))
    store.delete(["p3"])
    store.upsert([Product("p4", "Changed", "c0", None, "x.png")], VECTORS[9:10], ["v2"])
    before = ids(store.search(VECTORS[9], 10))
    store.flush()
    store.close()
    again = open_store()
    assert again.count() == len(PRODUCTS) - 1
    assert again.versions() == {**{p.id: "v1" for p in PRODUCTS if p.id != "p3"}, "p4": "v2"}
    assert ids(again.search(VECTORS[9], 10)) == before
    assert again.search(VECTORS[9], 2, filters=Filters(category="c0"))[0].product.name == "Changed"


def entry_for(product: Product, fingerprint: str = "f") -> Entry:
    return Entry(product.id, product.image_url, "", fingerprint, "model-a")


def test_sync_pushes_only_what_changed(open_store):
    store = open_store()
    catalog = Catalog(path=None, products={p.id: p for p in PRODUCTS[:50]})
    table = IndexTable([entry_for(p) for p in PRODUCTS[:50]], VECTORS[:50])
    assert sync_store(store, catalog, table) == (50, 0)
    assert sync_store(store, catalog, table) == (0, 0)
    catalog.products["p1"] = Product("p1", "New name", "c1", 3.0, PRODUCTS[1].image_url)
    del catalog.products["p2"]  # still in index.csv, no longer in the catalog
    table.entries[4] = entry_for(PRODUCTS[4], fingerprint="other image")
    assert sync_store(store, catalog, table) == (2, 1)
    assert store.count() == 49
    assert store.versions()["p1"] == item_version("f", "model-a", catalog.products["p1"])


def test_version_key_changes_with_embedding_or_any_stored_field():
    product = PRODUCTS[0]
    base = item_version("f", "m", product)
    assert base == item_version("f", "m", Product(*dataclasses.astuple(product)))
    changed = [
        item_version("g", "m", product),
        item_version("f", "n", product),
        item_version(
            "f", "m", Product("p0", "Other", product.category, product.price, product.image_url)
        ),
        item_version("f", "m", Product("p0", product.name, "c9", product.price, product.image_url)),
        item_version(
            "f", "m", Product("p0", product.name, product.category, 1.5, product.image_url)
        ),
        item_version(
            "f", "m", Product("p0", product.name, product.category, product.price, "z.png")
        ),
    ]
    assert base not in changed and len(set(changed)) == len(changed)


def test_wrong_dimension_is_refused_with_a_message(open_store):
    store = open_store()
    store.upsert(PRODUCTS[:2], VECTORS[:2], ["v", "v"])
    with pytest.raises(StoreError, match="dimensions"):
        store.upsert(PRODUCTS[:1], np.ones((1, DIM + 1), dtype=np.float32), ["v"])


def test_faiss_rebuilds_its_graph_once_a_quarter_is_dead(tmp_path):
    store = FaissStore(tmp_path / "faiss", DIM)
    store.upsert(PRODUCTS, VECTORS, ["v1"] * len(PRODUCTS))
    store.flush()
    graph_size = lambda: sum(p.stat().st_size for p in (tmp_path / "faiss").glob("hnsw-*.index"))  # noqa: E731
    full = graph_size()
    store.delete([p.id for p in PRODUCTS[:90]])  # under a quarter: tombstones only
    store.flush()
    assert graph_size() == full
    store.delete([p.id for p in PRODUCTS[90:150]])
    store.flush()
    assert graph_size() < full * 0.7
    again = FaissStore(tmp_path / "faiss", DIM)
    assert again.count() == len(PRODUCTS) - 150
    assert (
        ids(again.search(VECTORS[200], 10))
        == [pid for pid in reference(VECTORS[200], 160) if int(pid[1:]) >= 150][:10]
    )


@pytest.mark.parametrize("damage", ["garbage meta", "missing graph", "other dimension"])
def test_faiss_files_that_cannot_be_used_are_rebuilt_from_index_csv(tmp_path, caplog, damage):
    folder = tmp_path / "faiss"
    store = FaissStore(folder, DIM)
    store.upsert(PRODUCTS[:20], VECTORS[:20], ["v1"] * 20)
    store.flush()
    dim = DIM
    if damage == "garbage meta":
        (folder / "meta.json").write_text("{not json")
    elif damage == "missing graph":
        next(folder.glob("hnsw-*.index")).unlink()
    else:
        dim = DIM * 2
    reopened = FaissStore(folder, dim)
    assert reopened.count() == 0  # empty: the next sync pushes everything again
    assert "will be rebuilt from index.csv" in caplog.text


def test_pgvector_says_when_the_server_is_unreachable(tmp_path):
    from backend.stores.postgres import PgVectorStore

    url = f"postgresql://shop:s3cret@/shop?host={tmp_path}"  # a folder with no server socket
    with pytest.raises(StoreError) as caught:
        PgVectorStore(url, DIM)
    assert caught.value.message.startswith(
        f"cannot connect to PostgreSQL at shop@{tmp_path}/shop: "
    )
    assert caught.value.message.endswith("check DATABASE_URL and that the server is running")
    assert "s3cret" not in caught.value.message and caught.value.status == 503


def test_pgvector_says_when_the_extension_is_not_installed(database_url):
    from backend.stores.postgres_db import init_schema

    with pytest.raises(
        StoreError, match="does not have the pgvector extension .* installed; install"
    ):
        init_schema(database_url, DIM, extension="vector_not_on_this_server")


def test_pgvector_says_when_the_database_is_not_initialised(database_url):
    import psycopg

    from backend.stores.postgres import PgVectorStore

    with pytest.raises(
        StoreError, match=r"has no vector extension yet; run `flask --app backend db init`"
    ):
        PgVectorStore(database_url, DIM)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION vector")
    with pytest.raises(
        StoreError, match=r"has no search tables yet; run `flask --app backend db init`"
    ):
        PgVectorStore(database_url, DIM)


def test_pgvector_refuses_vectors_too_wide_for_its_index(database_url):
    from backend.stores.postgres_db import init_schema

    with pytest.raises(
        StoreError, match=r"2048-dimensional .* at most 2000; .* VECTOR_BACKEND=faiss"
    ):
        init_schema(database_url, 2048)


def test_pgvector_refuses_vectors_of_another_model(database_url):
    from backend.stores.postgres import PgVectorStore
    from backend.stores.postgres_db import init_schema

    init_schema(database_url, DIM)
    with pytest.raises(
        StoreError, match=r"holds 24-dimensional vectors .* makes 48-dimensional .* --reset"
    ):
        PgVectorStore(database_url, DIM * 2)


def test_pgvector_processes_share_one_database(database_url):
    from backend.stores.postgres import PgVectorStore
    from backend.stores.postgres_db import init_schema

    init_schema(database_url, DIM)
    first, second = PgVectorStore(database_url, DIM), PgVectorStore(database_url, DIM)
    try:
        first.upsert(PRODUCTS[:30], VECTORS[:30], ["v1"] * 30)
        assert second.count() == 30
        assert second.search(VECTORS[7], 1)[0].product == PRODUCTS[7]
        second.delete(["p7"])
        assert "p7" not in ids(first.search(VECTORS[7], 5))
    finally:
        first.close()
        second.close()


def test_pgvector_bulk_load_builds_the_index_afterwards(database_url, monkeypatch):
    import psycopg

    from backend.stores import postgres, postgres_db

    monkeypatch.setattr(postgres, "BULK_ROWS", 100)  # the bulk path, at test size
    postgres_db.init_schema(database_url, DIM, index=postgres_db.HnswIndex(8, 40))
    store = postgres.PgVectorStore(database_url, DIM)
    try:
        store.upsert(PRODUCTS, VECTORS, ["v1"] * len(PRODUCTS))
        with psycopg.connect(database_url) as conn:
            indexes = conn.execute(
                "SELECT indexdef FROM pg_indexes WHERE tablename = %s", [postgres_db.TABLE]
            )
            graphs = [row[0] for row in indexes.fetchall() if "USING hnsw" in row[0]]
        # Rebuilt after the load with the parameters it was created with.
        assert len(graphs) == 1 and "m='8'" in graphs[0] and "ef_construction='40'" in graphs[0]
        assert ids(store.search(VECTORS[50], 10)) == reference(VECTORS[50], 10)
    finally:
        store.close()


def test_an_unusable_database_answers_503_without_details(app_config, database_url):
    from backend import create_app

    client = create_app(
        app_config | {"vector_backend": "pgvector", "database_url": database_url}
    ).test_client()
    response = client.get("/api/products/p1/similar")
    assert response.status_code == 503
    assert response.get_json()["error"] == "store_unavailable"
    assert "db init" not in response.get_json()["message"]  # the operator's log has the details


# The schema an older version of the app created (v1): the graph with pgvector's defaults.
V1_SCHEMA = [
    "CREATE EXTENSION IF NOT EXISTS vector",
    "CREATE TABLE search_meta (key text PRIMARY KEY, value text NOT NULL)",
    f"""CREATE TABLE search_products (id text PRIMARY KEY, name text NOT NULL,
        category text NOT NULL, price double precision, image_url text NOT NULL,
        version text NOT NULL, embedding vector({DIM}) NOT NULL)""",
    "CREATE INDEX search_products_embedding ON search_products "
    "USING hnsw (embedding vector_cosine_ops)",
    "CREATE INDEX search_products_category ON search_products (category)",
    "CREATE INDEX search_products_price ON search_products (price)",
    f"INSERT INTO search_meta VALUES ('dim', '{DIM}'), ('schema_version', '1')",
]


def test_pgvector_serves_a_v1_database_until_db_init_migrates_it(database_url, caplog):
    import psycopg

    from backend.stores.postgres import PgVectorStore
    from backend.stores.postgres_db import TABLE, HnswIndex, init_schema

    with psycopg.connect(database_url) as conn:
        for statement in V1_SCHEMA:
            conn.execute(statement)
    old = PgVectorStore(database_url, DIM)
    try:
        assert old.index == HnswIndex(16, 64)
        assert "schema is v1" in caplog.text and "db init` to migrate it to v2" in caplog.text
        old.upsert(PRODUCTS, VECTORS, ["v1"] * len(PRODUCTS))
        assert ids(old.search(VECTORS[5], 10)) == reference(VECTORS[5], 10)
    finally:
        old.close()
    done = init_schema(database_url, DIM)
    assert done == "schema migrated v1 -> v2; built the HNSW index (m 16, ef_construction 128)"
    with psycopg.connect(database_url) as conn:
        (graph,) = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = %s", [f"{TABLE}_embedding"]
        ).fetchone()
    assert "m='16'" in graph and "ef_construction='128'" in graph
    new = PgVectorStore(database_url, DIM)
    try:
        assert new.index == HnswIndex(16, 128) and new.count() == len(PRODUCTS)
        assert ids(new.search(VECTORS[5], 10)) == reference(VECTORS[5], 10)
        assert ids(new.search(VECTORS[5], 10, filters=Filters(category="c1"))) == reference(
            VECTORS[5], 10, Filters(category="c1")
        )
    finally:
        new.close()
    assert init_schema(database_url, DIM).endswith(
        "kept the HNSW index (m 16, ef_construction 128)"
    )
