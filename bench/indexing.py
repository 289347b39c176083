"""Local indexing against the model-only ceiling, and the unchanged re-sync.

The catalog is built up in chunks, each synced incrementally (read + decode + resize + embed +
write index.csv), and the model alone runs on pre-made tensors between chunks: both rates see
the same machine load, which on a shared machine drifts more than the difference measured.
"""

from __future__ import annotations

import time
from unittest import mock

import numpy as np

from .common import Context, Figure, bench_settings, read_products, spread, timed, write_products
from .inference import photo_arrays

LOCAL_TARGET = 0.9  # end-to-end images/s over the model-only ceiling
MODEL = "resnet18"
RESYNC_TARGET_S = 1.5
RESYNC_TARGET_ITEMS = 6308


def run(ctx: Context) -> list[Figure]:
    from backend.search import SearchService

    rows = read_products(ctx.bench_catalog / "products.csv")
    rows = spread(rows, 320) if ctx.quick else rows
    # Whole batches of 32 per chunk (the ceiling only ever runs whole batches).
    chunk_size = 160 if ctx.quick else 512
    chunks = -(-len(rows) // chunk_size)
    folder = ctx.folder("local")
    catalog_csv = folder / "products.csv"
    settings = bench_settings(folder, catalog_csv, ctx.bench_catalog, model=MODEL)
    service = SearchService(settings)
    embedder = service.embedder
    batch = photo_arrays(embedder, ctx, count=32)
    model_only(embedder, batch, batches=1)  # the first inference pays one-off costs

    e2e_images, e2e_seconds, ceiling_images, ceiling_seconds = 0, 0.0, 0, 0.0
    for chunk in range(1, chunks + 1):
        write_products(catalog_csv, rows[: chunk * chunk_size])
        seconds, (_, report) = timed(service.sync)
        e2e_images += len(report.added)
        e2e_seconds += seconds
        batches = max(2, round(len(report.added) / (2 * len(batch))))
        ceiling_seconds += model_only(embedder, batch, batches)
        ceiling_images += batches * len(batch)
    e2e = e2e_images / e2e_seconds
    ceiling = ceiling_images / ceiling_seconds
    if not ctx.quick:
        # The whole catalog is indexed now: re-sync it as a shop has it, images beside its CSV,
        # in a fresh service (as `flask index` would be), so the vector store is filled too.
        whole = bench_settings(
            folder, ctx.bench_catalog / "products.csv", ctx.bench_catalog, model=MODEL
        )
        service = SearchService(whole, embedder=embedder)
    return [
        local_figure(e2e, ceiling, e2e_images, chunks, embedder.identity),
        resync_figure(service, ctx, len(rows)),
    ]


def model_only(embedder, batch: list[np.ndarray], batches: int) -> float:
    """Seconds for the model alone on pre-made arrays (the same embedder and threads)."""
    start = time.perf_counter()
    for _ in range(batches):
        embedder.embed_arrays(batch)
    return time.perf_counter() - start


def local_figure(e2e: float, ceiling: float, images: int, chunks: int, model: str) -> Figure:
    ratio = e2e / ceiling
    return Figure(
        key="indexing_local",
        section="Indexing, local images",
        what=f"end-to-end indexing of {images:,} photos (read, decode, resize, embed, write), "
        f"{MODEL}",
        value=e2e,
        unit="images/s",
        baseline="model-only ceiling (same model, batch, threads; pre-made arrays)",
        baseline_value=ceiling,
        ratio=ratio,
        target=f">= {LOCAL_TARGET}x the ceiling",
        met=ratio >= LOCAL_TARGET,
        note=f"model {model}, batches of 32; decoding and resizing in 2 threads ahead of it",
        detail={"images": images, "chunks": chunks},
    )


def resync_figure(service, ctx: Context, items: int) -> Figure:
    """Sync the unchanged catalog again, counting every image file read and decoded."""
    from backend.images.sources import ImageLocator
    from backend.index import indexer

    with (
        mock.patch.object(
            ImageLocator, "read", autospec=True, side_effect=ImageLocator.read
        ) as reads,
        mock.patch.object(indexer, "decode_image", side_effect=indexer.decode_image) as decodes,
    ):
        seconds, (_, report) = timed(service.sync)
    touched = reads.call_count + decodes.call_count
    checked = items >= RESYNC_TARGET_ITEMS
    return Figure(
        key="resync_unchanged",
        section="Incremental sync",
        what=f"re-sync of an unchanged {items:,}-item catalog",
        value=seconds,
        unit="s",
        target=f"<= {RESYNC_TARGET_S} s for {RESYNC_TARGET_ITEMS:,} items, zero images read",
        met=(seconds <= RESYNC_TARGET_S and touched == 0) if checked else None,
        note=f"{reads.call_count} images read, {decodes.call_count} decoded; {report.summary()}"
        + ("" if checked else f" (quick run: {items} items, target not checked)"),
        detail={"images_read": reads.call_count, "images_decoded": decodes.call_count},
    )
