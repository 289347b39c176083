"""Concurrent searches during re-indexing see the old index or the new one, never a mix."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from backend import create_app
from backend.catalog import Catalog, Product
from backend.errors import NotFound
from backend.extensions import get_service
from backend.index.index_file import Entry, IndexTable
from backend.stores import sync_store
from backend.stores.memory import MemoryStore
from tests.support.catalogs import DEFAULT_ITEMS, draw_image, image_bytes, write_catalog

QUERIES = [
    image_bytes(draw_image(colour, shape))
    for colour, shape in [("red", "circle"), ("blue", "square"), ("cyan", "triangle")]
]
EXTRA = [
    ("p8", "Cyan tent", "outdoor", "cyan", "triangle"),
    ("p9", "Red scarf", "clothes", "red", "stripes"),
]
DIM = 8
PRODUCTS = [Product(f"s{i}", f"Item {i}", "things", None, f"images/s{i}.png") for i in range(10)]


def table_for(catalog: Catalog) -> IndexTable:
    """index.csv rows for a catalog: a fixed unit vector per product."""
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(len(PRODUCTS), DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    rows = [
        (Entry(p.id, p.image_url, "", f"sha-{p.id}", "m"), vectors[i])
        for i, p in enumerate(PRODUCTS)
        if p.id in catalog.products
    ]
    return IndexTable.from_rows(rows, DIM)


def use_catalog(folder: Path, state: str) -> None:
    """State "a": the default items; "b": p7 gone, p3 redrawn, p8 and p9 added."""
    if state == "a":
        write_catalog(folder)
        return
    items = [item for item in DEFAULT_ITEMS if item[0] != "p7"] + EXTRA
    write_catalog(folder, items)
    draw_image("yellow", "square").save(folder / "images" / "p3.png")


def outcome(service, kind: int, vectors: list) -> tuple:
    """One search, reduced to what identifies the snapshot it ran on: ids and scores."""
    if kind == 0:
        result = service.search_similar("p1", k=10, threshold=0.0)
    elif kind == 1:
        result = service.search_bytes(QUERIES[0], k=10, threshold=0.0)
    else:
        result = service.search_vector(vectors[kind % len(vectors)], k=10, threshold=0.0)
    return tuple((hit.product.id, hit.similarity) for hit in result.hits)


def same(got: tuple, want: tuple) -> bool:
    """Same ids in the same order, same scores up to float16 storage rounding."""
    return [pid for pid, _ in got] == [pid for pid, _ in want] and all(
        abs(a - b) < 2e-3 for (_, a), (_, b) in zip(got, want, strict=True)
    )


def expected_outcomes(service, vectors) -> list[tuple]:
    return [outcome(service, kind, vectors) for kind in range(4)]


@pytest.mark.slow
def test_searches_during_reindex_match_the_old_or_the_new_index(service, catalog_path):
    shop = catalog_path.parent
    vectors = [service.search_bytes(query, k=1).query for query in QUERIES]
    expected = {"a": expected_outcomes(service, vectors)}
    use_catalog(shop, "b")
    service.sync()
    expected["b"] = expected_outcomes(service, vectors)
    assert not any(same(a, b) for a, b in zip(expected["a"], expected["b"], strict=True))

    stop = threading.Event()
    seen: dict[str, int] = {"a": 0, "b": 0}
    errors: list[BaseException] = []

    def searcher(offset: int) -> None:
        count = offset
        try:
            while not stop.is_set():
                kind = count % 4
                got = outcome(service, kind, vectors)
                states = [s for s in "ab" if same(got, expected[s][kind])]
                assert states, f"search {kind} matched neither index: {got}"
                seen[states[0]] += 1
                count += 1
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=searcher, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    try:
        for state in "abab":
            use_catalog(shop, state)
            _, report = service.sync()
            assert report.changed and not report.failed
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert errors == []
    assert seen["a"] > 0 and seen["b"] > 0, seen


def test_a_sync_by_another_process_is_loaded_by_a_serving_one(app_config):
    token = "s3cret-admin-token-for-tests"
    worker_a = create_app(app_config | {"admin_token": token})
    worker_b = create_app(app_config)
    get_service(worker_a).sync()
    get_service(worker_b).load_index()
    get_service(worker_b).stamp_check_seconds = 0.0
    client_b = worker_b.test_client()
    assert client_b.get("/api/products/p8/similar").status_code == 404

    shop = app_config["catalog_path"].parent
    use_catalog(shop, "b")
    response = worker_a.test_client().post(
        "/api/admin/reindex", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.get_json()["summary"] == (
        "2 added, 1 updated, 1 removed, 5 unchanged, 0 failed, 0 rows skipped"
    )

    assert client_b.get("/api/products/p8/similar").status_code == 200
    with pytest.raises(NotFound):
        get_service(worker_b).search_similar("p7")


def test_a_sync_changes_the_memory_store_in_one_step():
    """Removed and added products swap together: no reader sees the one without the other."""
    catalog_a = Catalog(Path("a.csv"), {p.id: p for p in PRODUCTS[:6]})
    catalog_b = Catalog(Path("b.csv"), {p.id: p for p in PRODUCTS[2:]})
    tables = {name: table_for(catalog) for name, catalog in (("a", catalog_a), ("b", catalog_b))}
    store = MemoryStore(DIM)
    sync_store(store, catalog_a, tables["a"])
    states = [frozenset(catalog_a.products), frozenset(catalog_b.products)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # interleave the threads as finely as the interpreter allows
    stop, mixes = threading.Event(), []

    def reader() -> None:
        while not stop.is_set():
            ids = frozenset(store.versions())
            if ids not in states:
                mixes.append(sorted(ids))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for turn in range(300):
            catalog = (catalog_b, catalog_a)[turn % 2]
            sync_store(store, catalog, tables["b" if catalog is catalog_b else "a"])
    finally:
        stop.set()
        thread.join(10)
        sys.setswitchinterval(interval)
    assert mixes == []
