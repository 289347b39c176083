"""The milvus backend against a real Milvus 2.3: its collection, other processes, faults, secrets.

The behaviour every backend shares is in test_stores.py; these are the milvus backend's own.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from pymilvus import DataType, MilvusClient

from backend.catalog import Product
from backend.stores import Filters, StoreError
from backend.stores.memory import MemoryStore
from backend.stores.milvus import COLLECTION, MilvusStore
from tests.stores.test_stores import DIM, PRODUCTS, VECTORS, ids
from tests.support.mariadb import free_port

TOKEN = "root:Tok3n-s3cret"


@pytest.fixture
def stores(milvus_uri):
    """Open stores on the test database (each one is like another app process)."""
    opened = []

    def factory(**options):
        store = MilvusStore(milvus_uri, options.pop("dim", DIM), **options)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


@pytest.fixture
def client(milvus_server, milvus_uri):
    """Milvus's own client on the test database, outside the store."""
    database = milvus_uri.rstrip("/").rsplit("/", 1)[1]
    client = milvus_server.client(database)
    yield client
    client.close()


@pytest.mark.slow
def test_milvus_collection_is_made_on_first_use_with_a_schema_version(stores, client):
    stores(model="model-a").upsert(PRODUCTS[:3], VECTORS[:3], ["v1"] * 3)
    described = client.describe_collection(COLLECTION)
    assert json.loads(described["description"]) == {
        "schema_version": 1,
        "index": {"M": 16, "efConstruction": 128},
    }
    index = client.describe_index(COLLECTION, "embedding")
    assert index["index_type"] == "HNSW" and index["metric_type"] == "IP"
    rows = client.query(
        COLLECTION,
        filter='id != ""',
        output_fields=["id", "model", "category", "price", "priced"],
        consistency_level="Strong",
    )
    assert sorted((r["id"], r["model"], r["category"], r["price"], r["priced"]) for r in rows) == [
        (p.id, "model-a", p.category, p.price, True) for p in PRODUCTS[:3]
    ]


@pytest.mark.slow
def test_milvus_refuses_a_newer_schema_and_a_collection_it_did_not_make(stores, client):
    stores()
    client.drop_collection(COLLECTION)
    schema = MilvusClient.create_schema(description=json.dumps({"schema_version": 9, "index": {}}))
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
    schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=DIM)
    client.create_collection(COLLECTION, schema=schema)
    with pytest.raises(StoreError, match=r"is schema v9, this app knows v1; upgrade the app"):
        stores()
    client.drop_collection(COLLECTION)
    client.create_collection(COLLECTION, dimension=DIM)  # someone else's, with no description
    with pytest.raises(StoreError, match=r"was not made by this app; drop it or give the app"):
        stores()
    assert client.has_collection(COLLECTION)  # left alone


@pytest.mark.slow
def test_milvus_a_model_of_another_width_remakes_the_collection(stores, caplog):
    stores().upsert(PRODUCTS[:20], VECTORS[:20], ["v1"] * 20)
    wider = stores(dim=DIM * 2)
    assert wider.count() == 0  # the next sync fills it with the new model's vectors
    assert "held 24-dimensional vectors of another model" in caplog.text
    wide = np.ones((1, DIM * 2), dtype=np.float32) / np.sqrt(DIM * 2)
    wider.upsert(PRODUCTS[:1], wide, ["v2"])
    assert stores(dim=DIM * 2).count() == 1


@pytest.mark.slow
def test_milvus_results_equal_the_memory_backends(stores):
    memory = MemoryStore(DIM)
    memory.upsert(PRODUCTS, VECTORS, ["v"] * len(PRODUCTS))
    stores().upsert(PRODUCTS, VECTORS, ["v"] * len(PRODUCTS))
    fresh = stores()  # another store object on the same collection
    rng = np.random.default_rng(3)
    for _ in range(20):
        query = rng.normal(size=DIM).astype(np.float32)
        query /= np.linalg.norm(query)
        for filters in (Filters(), Filters(category="c2"), Filters(min_price=5, max_price=30)):
            expected = memory.search(query, 12, filters=filters)
            got = fresh.search(query, 12, filters=filters)
            assert [h.product for h in got] == [h.product for h in expected]
            np.testing.assert_allclose(
                [h.score for h in got], [h.score for h in expected], atol=1e-5
            )


WRITER = """
import sys
import numpy as np
from backend.catalog import Product
from backend.stores.milvus import MilvusStore
store = MilvusStore(sys.argv[1], {dim})
store.upsert([Product("from-elsewhere", "Other process", "c7", 7.0, "o.png")],
             np.asarray([{vector}], dtype=np.float32), ["v9"])
store.delete(["p1"])
store.close()
"""


@pytest.mark.slow
def test_milvus_another_process_writes_are_seen_by_this_one(stores, milvus_uri):
    store = stores()
    store.upsert(PRODUCTS, VECTORS, ["v1"] * len(PRODUCTS))
    assert ids(store.search(VECTORS[1], 1)) == ["p1"]
    code = WRITER.format(dim=DIM, vector=VECTORS[200].tolist())
    subprocess.run([sys.executable, "-c", code, milvus_uri], check=True, timeout=120)
    # What a sync compares reads Strong: at once.
    versions = store.versions()
    assert versions["from-elsewhere"] == "v9" and "p1" not in versions
    # Searches read Session: the other process's writes once Milvus has applied them (a tick).
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        found = ids(store.search(VECTORS[200], 2, filters=Filters(category="c7")))
        gone = "p1" not in ids(store.search(VECTORS[1], 5))
        if found == ["from-elsewhere"] and gone:
            break
        time.sleep(0.1)
    assert found == ["from-elsewhere"] and gone


@pytest.mark.slow
def test_milvus_reads_every_version_in_pages(stores, monkeypatch):
    from backend.stores import milvus

    monkeypatch.setattr(milvus, "PAGE", 7)  # many pages, at test size
    store = stores()
    store.upsert(PRODUCTS[:50], VECTORS[:50], [f"v{i}" for i in range(50)])
    assert store.versions() == {p.id: f"v{i}" for i, p in enumerate(PRODUCTS[:50])}


@pytest.mark.slow
def test_milvus_odd_categories_and_ids_are_quoted_in_filters(stores):
    odd = ['say "hi"', "back\\slash", "ünï ☃", 'x" or category != "']
    products = [Product(f'id "{i}" \\', f"n{i}", cat, 1.0, "a.png") for i, cat in enumerate(odd)]
    store = stores()
    store.upsert(products, VECTORS[:4], ["v"] * 4)
    for product, vector in zip(products, VECTORS[:4], strict=True):
        hits = store.search(vector, 5, filters=Filters(category=product.category))
        assert [hit.product for hit in hits] == [product]
        np.testing.assert_allclose(store.vector(product.id), vector, atol=1e-6)
    assert store.delete([products[3].id]) == 1 and store.count() == 3


def start_error(uri: str, **options) -> str:
    with pytest.raises(StoreError) as caught:
        MilvusStore(uri, DIM, **options)
    message = caught.value.message
    assert "\n" not in message and caught.value.status == 503
    return message


def test_milvus_start_up_errors_are_one_line_naming_milvus_uri_without_secrets(caplog):
    caplog.set_level(logging.DEBUG)
    port = free_port()
    message = start_error(f"http://shop:pw-s3cret@127.0.0.1:{port}/shop", token=TOKEN, timeout=1)
    assert message.startswith(
        f"cannot connect to Milvus at MILVUS_URI=http://shop:***@127.0.0.1:{port}/shop: "
    ), message
    for secret in ("pw-s3cret", TOKEN, "Tok3n"):
        assert secret not in message and secret not in caplog.text


@pytest.mark.slow
def test_milvus_a_frozen_server_costs_a_search_its_timeout_and_holds_few_threads(
    stores, milvus_server
):
    store = stores(slots=2)
    store.upsert(PRODUCTS, VECTORS, ["v1"] * len(PRODUCTS))
    before = store.search(VECTORS[9], 10)
    store.timeout = 2  # MILVUS_TIMEOUT: seconds a call may take while serving
    outcomes: list[tuple[str, float]] = []

    def search() -> None:
        started = time.monotonic()
        try:
            store.search(VECTORS[9], 10)
            outcomes.append(("answered", time.monotonic() - started))
        except StoreError as error:
            outcomes.append((error.message, time.monotonic() - started))

    milvus_server.pause()
    try:
        threads = [threading.Thread(target=search) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    finally:
        milvus_server.resume()
    assert len(outcomes) == 6 and all(message != "answered" for message, _ in outcomes)
    # Two threads wait out the timeout; the other four are turned away once no slot frees up.
    assert max(seconds for _, seconds in outcomes) < 2 + 1 + 2  # timeout, slot wait, slack
    busy = [m for m, _ in outcomes if m.startswith("every Milvus call of this process")]
    assert len(busy) == 4, outcomes
    assert store.search(VECTORS[9], 10) == before  # the same client, working again


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"milvus_ef_search": 0}, "MILVUS_EF_SEARCH=0 must be 1-32768"),
        ({"milvus_timeout": 0.0}, "MILVUS_TIMEOUT=0.0 must be 0.1-300 seconds"),
        (
            {"milvus_uri": "mysql://shop:pw@db:3306/shop"},
            "MILVUS_URI=mysql://shop:***@db:3306/shop does not match VECTOR_BACKEND=milvus",
        ),
    ],
)
def test_milvus_settings_are_checked_and_their_secrets_kept_out_of_repr(overrides, message):
    from backend.config import load_settings
    from backend.errors import ConfigError

    base = {"vector_backend": "milvus", "milvus_uri": "http://root:pw@h:19530/shop"}
    settings = load_settings(environ={}, overrides=base | {"milvus_token": TOKEN})
    assert TOKEN not in repr(settings) and "root:pw" not in repr(settings)
    with pytest.raises(ConfigError, match=message.replace("*", r"\*")):
        load_settings(environ={}, overrides=base | overrides)
