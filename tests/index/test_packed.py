"""index.csv.packed: what a sync leaves for the workers, used only while it matches the files."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest

from backend import create_app
from backend.catalog import load_catalog
from backend.extensions import get_service
from backend.index.index_file import Entry, IndexTable, read_index
from backend.index.packed import packed_path, read_packed, write_packed
from backend.stores import row_versions
from tests.support.catalogs import write_catalog


def mapped_file(array: np.ndarray) -> str | None:
    """The file an array's pages are mapped from, if any."""
    while array is not None:
        if isinstance(array, np.memmap):
            return array.filename
        array = array.base
    return None


@pytest.fixture
def synced(app_config):
    """A catalog with a skipped row, synced once by a server's start-up process."""
    catalog_path = write_catalog(
        app_config["catalog_path"].parent, extra_rows=[["", "No id", "toys", "1", "x.png"]]
    )
    get_service(create_app(app_config)).sync()
    return app_config | {"catalog_path": catalog_path}


def test_a_worker_loads_the_pack_of_the_last_sync_as_parsing_would(synced, caplog):
    catalog_path, index_path = synced["catalog_path"], synced["index_path"]
    assert packed_path(index_path).is_file()
    parsed_catalog, parsed = load_catalog(catalog_path), read_index(index_path)
    worker = get_service(create_app(synced))
    with caplog.at_level(logging.INFO, logger="backend.search"):
        worker.load_index()
    assert f"loaded {packed_path(index_path).name}" in caplog.text
    snapshot = worker.snapshot
    assert snapshot.catalog.products == parsed_catalog.products
    assert snapshot.catalog.skipped == parsed_catalog.skipped and len(parsed_catalog.skipped) == 1
    assert snapshot.catalog.csv_format == parsed_catalog.csv_format
    assert list(snapshot.entries.values()) == parsed.entries
    # The vectors are mapped from the pack (shared by the workers), equal to index.csv's.
    vectors = worker.store._state.vectors
    assert mapped_file(vectors) == str(packed_path(index_path))
    np.testing.assert_array_equal(vectors, parsed.vectors)
    found = worker.search_similar("p1", k=1, threshold=0.0)
    assert found.hits[0].product.id == "p2"  # the other red item


def test_a_changed_catalog_or_index_is_parsed_again(synced):
    catalog_path, index_path = synced["catalog_path"], synced["index_path"]
    assert read_packed(index_path, catalog_path) is not None
    with catalog_path.open("a", encoding="utf-8") as handle:
        handle.write("p9,New ball,toys,1.00,images/p1.png\n")
    assert read_packed(index_path, catalog_path) is None
    worker = get_service(create_app(synced))
    worker.load_index()
    assert "p9" in worker.snapshot.catalog.products  # parsed: the new row is there
    assert mapped_file(worker.store._state.vectors) is None
    # The next sync packs the files as they are now.
    get_service(create_app(synced)).sync()
    packed_catalog = read_packed(index_path, catalog_path).catalog
    assert "p9" in packed_catalog.products


def test_a_pack_of_other_files_is_not_used(synced, tmp_path):
    index_path = synced["index_path"]
    os.utime(index_path)  # index.csv touched: the pack may not be what it holds
    assert read_packed(index_path, synced["catalog_path"]) is None
    assert read_packed(index_path, synced["catalog_path"], "s3://shop/catalog/") is None


@pytest.mark.parametrize("cut", [10, 200, -4])
def test_a_damaged_pack_is_ignored(synced, cut):
    catalog_path, index_path = synced["catalog_path"], synced["index_path"]
    path = packed_path(index_path)
    path.write_bytes(path.read_bytes()[:cut])  # a disk that filled up, say
    assert read_packed(index_path, catalog_path) is None
    worker = get_service(create_app(synced))
    worker.load_index()
    assert worker.indexed_count() == 7


@pytest.mark.parametrize("header", [b"{}", b"[1]", b'{"sources": 1}', b"null"])
def test_a_pack_with_a_header_of_another_shape_is_ignored_and_replaced(synced, header):
    from backend.index.packed import MAGIC, is_current

    catalog_path, index_path = synced["catalog_path"], synced["index_path"]
    path = packed_path(index_path)
    path.write_bytes(MAGIC + f"{len(header):016d}\n".encode() + header)
    assert not is_current(index_path, catalog_path)
    assert read_packed(index_path, catalog_path) is None
    get_service(create_app(synced)).sync()  # the next sync packs the files again
    assert read_packed(index_path, catalog_path) is not None


def test_values_holding_the_separator_are_not_packed(tmp_path):
    catalog_path = write_catalog(tmp_path / "shop")
    index_path = tmp_path / "index.csv"
    index_path.write_text("stand-in")
    entry = Entry("p1", "images/p1.png\x1fx", "1:2", "f" * 64, "m/w/p/r")
    table = IndexTable([entry], np.eye(1, 4, dtype=np.float32))
    assert write_packed(index_path, load_catalog(catalog_path), table) is False
    assert not packed_path(index_path).exists()


def test_packed_store_versions_are_used_only_when_computed_the_same_way(synced):
    catalog_path, index_path = synced["catalog_path"], synced["index_path"]
    catalog, table = load_catalog(catalog_path), read_index(index_path)
    expected = dict(zip([e.id for e in table.entries], row_versions(catalog, table), strict=True))
    worker = get_service(create_app(synced))
    worker.load_index()
    assert worker.store.versions() == expected
    # A pack whose versions were computed another way: they are computed again.
    packed_path(index_path).unlink()
    bogus = ("another-way/0", ["x"] * len(table))
    assert write_packed(index_path, catalog, table, None, bogus)
    worker = get_service(create_app(synced))
    worker.load_index()
    assert mapped_file(worker.store._state.vectors) == str(packed_path(index_path))
    assert worker.store.versions() == expected
