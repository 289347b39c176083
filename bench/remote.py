"""Indexing a catalog of image URLs behind 100 ms of latency, against fetching one by one."""

from __future__ import annotations

import time

import numpy as np

from .common import Context, Figure, bench_settings, read_products, spread, timed, write_products
from .slow_server import SlowImageServer

LATENCY_S = 0.1
REMOTE_TARGET = 15.0  # times the one-by-one rate


def run(ctx: Context) -> list[Figure]:
    from backend.search import SearchService

    rows = read_products(ctx.bench_catalog / "products.csv")
    n_naive = min(16 if ctx.quick else 48, len(rows) // 4)
    n = min(160 if ctx.quick else 960, len(rows) - 2 * n_naive)
    with SlowImageServer(ctx.bench_catalog, latency=LATENCY_S) as server:
        remote = [[*row[:4], server.url(row[4])] for row in spread(rows, n + 2 * n_naive)]
        folder = ctx.folder("remote")
        catalog_csv = write_products(folder / "products.csv", remote[:n])
        settings = bench_settings(folder, catalog_csv, ctx.bench_catalog, fetch_allow_loopback=True)
        service = SearchService(settings)
        naive_before = one_by_one(service, remote[n : n + n_naive])
        seconds, (_, report) = timed(service.sync)
        naive_after = one_by_one(service, remote[n + n_naive :])
        download = download_stage(service, remote[:n], folder)
        download.detail["peak_concurrent_requests"] = server.peak
    ours = len(report.added) / seconds
    naive = (2 * n_naive) / (naive_before + naive_after)
    return [remote_figure(ours, naive, n, settings.download_workers, report), download]


def one_by_one(service, rows: list[list[str]]) -> float:
    """Seconds to fetch, decode and embed each image in turn: the usual indexing script."""
    from backend.images.decode import decode_image
    from backend.images.fetch import fetch

    embedder = service.embedder
    blank = np.zeros((embedder.crop_size, embedder.crop_size, 3), np.uint8)
    embedder.embed_arrays([blank])  # the first batch of one pays one-off costs: not timed
    start = time.perf_counter()
    for row in rows:
        data = fetch(row[4], service.locator.fetch_policy).content
        image = decode_image(data, min_size=embedder.min_decode_size)
        embedder.embed_arrays([embedder.preprocess(image)])
    return time.perf_counter() - start


def download_stage(service, rows: list[list[str]], folder) -> Figure:
    """The download stage alone: concurrent downloads into an empty cache vs one by one."""
    from backend.catalog import Product
    from backend.images.fetch import fetch

    products = [Product(row[0], row[1], row[2], None, row[4]) for row in rows]
    workers = service.settings.download_workers
    sequential_n = max(8, len(rows) // 10)
    start = time.perf_counter()
    for product in products[:sequential_n]:
        fetch(product.image_url, service.locator.fetch_policy)
    sequential = sequential_n / (time.perf_counter() - start)
    locator = type(service.locator)(
        service.locator.roots,
        folder / "cache-download",
        service.locator.max_bytes,
        service.locator.fetch_policy,
    )
    seconds, failures = timed(lambda: locator.download_missing(products, workers))
    rate = (len(products) - len(failures)) / seconds
    return Figure(
        key="download_stage",
        section="Indexing, remote images",
        what=f"download stage alone, {len(products)} URLs, DOWNLOAD_WORKERS={workers}",
        value=rate,
        unit="images/s",
        baseline="fetching one by one",
        baseline_value=sequential,
        ratio=rate / sequential,
        note=f"{len(failures)} failed",
    )


def remote_figure(ours: float, naive: float, n: int, workers: int, report) -> Figure:
    ratio = ours / naive
    return Figure(
        key="indexing_remote",
        section="Indexing, remote images",
        what=f"indexing {n} image URLs at {LATENCY_S * 1000:.0f} ms/response "
        f"(DOWNLOAD_WORKERS={workers})",
        value=ours,
        unit="images/s",
        baseline="one by one (fetch, decode, embed each in turn)",
        baseline_value=naive,
        ratio=ratio,
        target=f">= {REMOTE_TARGET:g}x one by one",
        met=ratio >= REMOTE_TARGET,
        note=f"{len(report.failed)} failed",
    )
