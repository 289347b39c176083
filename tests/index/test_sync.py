"""Indexing and search end to end with the random-init model: ranking, incremental sync."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from backend import create_app
from backend.errors import InvalidInput, NotFound
from backend.extensions import get_service
from backend.index.index_file import read_index, write_index
from tests.support.catalogs import (
    DEFAULT_ITEMS,
    count_embeds,
    draw_image,
    image_bytes,
    write_catalog,
)


@pytest.fixture
def embed_calls(service, monkeypatch):
    """Count the images that go through the model."""
    return count_embeds(service, monkeypatch)


def test_an_image_in_the_catalog_ranks_itself_first(service):
    result = service.search_bytes(image_bytes(draw_image("green", "circle")), k=3, threshold=0.0)
    assert result.hits[0].product.id == "p3"
    assert result.hits[0].similarity == pytest.approx(1.0, abs=1e-4)
    similarities = [hit.similarity for hit in result.hits]
    assert similarities == sorted(similarities, reverse=True)


def test_top_k_and_threshold_split_shown_and_hidden(service):
    query = image_bytes(draw_image("red", "circle"))
    everything = service.search_bytes(query, k=7, threshold=0.0)
    assert len(everything.hits) == 7
    cut = (everything.hits[2].similarity + everything.hits[3].similarity) / 2
    result = service.search_bytes(query, k=7, threshold=cut)
    assert [hit.product.id for hit in result.shown] == [
        hit.product.id for hit in everything.hits[:3]
    ]
    assert result.hidden_below_threshold == 4
    assert len(service.search_bytes(query, k=2, threshold=0.0).hits) == 2


def test_category_filter_is_applied_before_ranking(service):
    result = service.search_bytes(
        image_bytes(draw_image("red", "circle")), k=5, threshold=0.0, category="clothes"
    )
    assert sorted(hit.product.id for hit in result.hits) == ["p4", "p6"]


def test_more_like_this_excludes_the_product_itself(service):
    result = service.search_similar("p4", k=10, threshold=0.0)
    ids = [hit.product.id for hit in result.hits]
    assert "p4" not in ids and len(ids) == 6
    with pytest.raises(NotFound):
        service.search_similar("nope")


@pytest.mark.parametrize("options", [{"k": 0}, {"k": 101}, {"threshold": 1.5}, {"threshold": -0.1}])
def test_out_of_range_options_are_refused(service, options):
    with pytest.raises(InvalidInput):
        service.search_similar("p1", **options)


def test_sync_writes_index_and_resync_embeds_nothing(service, app_config, embed_calls):
    _, report = service.sync()
    assert (
        report.summary() == "7 added, 0 updated, 0 removed, 0 unchanged, 0 failed, 0 rows skipped"
    )
    assert sum(embed_calls) == 7
    index_path: Path = app_config["index_path"]
    written = index_path.stat().st_mtime_ns
    _, report = service.sync()
    assert (
        report.summary() == "0 added, 0 updated, 0 removed, 7 unchanged, 0 failed, 0 rows skipped"
    )
    assert sum(embed_calls) == 7
    assert index_path.stat().st_mtime_ns == written  # untouched


def test_incremental_sync_embeds_only_what_changed(service, app_config, catalog_path, embed_calls):
    service.sync()
    embed_calls.clear()
    folder = catalog_path.parent
    draw_image("cyan", "circle").save(folder / "images" / "p1.png")  # new content
    os.utime(folder / "images" / "p2.png", ns=(1, 1))  # touched, same content
    items = [item for item in DEFAULT_ITEMS if item[0] != "p7"] + [
        ("p8", "New", "toys", "blue", "circle")
    ]
    write_catalog(folder, items)  # redraws the images: same pixels, new mtimes
    draw_image("cyan", "circle").save(folder / "images" / "p1.png")
    _, report = service.sync()
    assert sorted(report.added) == ["p8"]
    assert sorted(report.updated) == ["p1"]
    assert report.removed == ["p7"]
    assert report.unchanged == 5
    assert sum(embed_calls) == 2
    ids = [entry.id for entry in read_index(app_config["index_path"]).entries]
    assert sorted(ids) == ["p1", "p2", "p3", "p4", "p5", "p6", "p8"]


def test_a_model_change_invalidates_the_index(service, app_config):
    service.sync()
    table = read_index(app_config["index_path"])
    table.entries = [replace(entry, model="other/weights/p0") for entry in table.entries]
    write_index(app_config["index_path"], table)
    _, report = service.sync()
    assert len(report.updated) == 7 and report.unchanged == 0


def test_a_corrupt_index_is_rebuilt(service, app_config):
    service.sync()
    app_config["index_path"].write_text("this is not an index\n\x00")
    _, report = service.sync()
    assert len(report.added) == 7
    assert len(read_index(app_config["index_path"])) == 7


def test_a_torn_line_re_embeds_only_its_product(service, app_config, embed_calls):
    service.sync()
    path = app_config["index_path"]
    text = path.read_bytes()
    path.write_bytes(text[: len(text) - 300])  # a crash cut the last line in half
    embed_calls.clear()
    _, report = service.sync()
    assert (len(report.added), report.unchanged, sum(embed_calls)) == (1, 6, 1)
    assert len(read_index(path)) == 7


def test_an_unexpected_error_in_one_product_is_a_reported_failure(service, app_config):
    from backend.catalog import Product, load_catalog
    from backend.index.indexer import Indexer

    catalog = load_catalog(app_config["catalog_path"])
    # A NUL in a path makes every file call raise ValueError; products.csv refuses such rows,
    # but whatever a product holds, its failure is reported and the others are indexed.
    bad = Product("bad", "Bad", "toys", None, "images/p1.png\x00.png")
    catalog.products["bad"] = bad
    indexer = Indexer(service.locator, service.embedder, app_config["index_path"])
    table, report = indexer.sync(catalog)
    assert len(table) == 7 and report.failed == {
        "bad": "unexpected error: ValueError: embedded null byte"
    }


def test_failing_images_are_reported_and_the_rest_indexed(tmp_path, app_config):
    folder = tmp_path / "shop"
    (folder / "images" / "broken.png").write_bytes(b"not an image at all")
    (folder / "images" / "half.png").write_bytes(image_bytes(draw_image("red"))[:200])
    rows = [
        ["b1", "Broken", "toys", "1", "images/broken.png"],
        ["b2", "Missing", "toys", "1", "images/missing.png"],
        ["b3", "Half", "toys", "1", "images/half.png"],
    ]
    write_catalog(folder, extra_rows=rows)
    _, report = get_service(create_app(app_config)).sync()
    assert len(report.added) == 7
    assert set(report.failed) == {"b1", "b2", "b3"}
    assert "not found" in report.failed["b2"]


def test_a_symlink_out_of_the_catalog_folder_is_refused(tmp_path, app_config):
    folder = tmp_path / "shop"
    outside = tmp_path / "outside.png"
    draw_image("red").save(outside)
    (folder / "images" / "link.png").symlink_to(outside)
    write_catalog(folder, extra_rows=[["s1", "Sneaky", "toys", "1", "images/link.png"]])
    _, report = get_service(create_app(app_config)).sync()
    assert "leaves the catalog folder" in report.failed["s1"]


def test_interrupted_build_resumes_from_the_last_checkpoint(service, app_config, monkeypatch):
    from backend.index import indexer

    original = indexer.Indexer.__init__

    def small_checkpoints(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.batch_size, self.checkpoint_every = 2, 2

    monkeypatch.setattr(indexer.Indexer, "__init__", small_checkpoints)
    real_embed = service.embedder.embed_arrays
    batches: list[int] = []

    def crash_on_third_batch(arrays):
        if len(batches) == 2:
            raise KeyboardInterrupt
        batches.append(len(arrays))
        return real_embed(arrays)

    monkeypatch.setattr(service.embedder, "embed_arrays", crash_on_third_batch)
    with pytest.raises(KeyboardInterrupt):
        service.sync()
    assert len(read_index(app_config["index_path"])) == 4  # two checkpoints of two
    monkeypatch.setattr(service.embedder, "embed_arrays", real_embed)
    _, report = service.sync()
    assert report.unchanged == 4 and len(report.added) == 3


def test_vectors_in_memory_match_index_file(service, app_config):
    service.sync()
    table = read_index(app_config["index_path"])
    assert service.store.count() == len(table)
    for entry, vector in zip(table.entries, table.vectors, strict=True):
        assert float(np.dot(service.store.vector(entry.id), vector)) > 0.9999
