"""Remote catalog images: downloads start at once and run ahead of embedding; failures reported."""

from __future__ import annotations

import csv
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from backend import create_app
from backend.catalog import Product, load_catalog
from backend.extensions import get_service
from backend.images.fetch import FetchPolicy
from backend.images.sources import ImageLocator
from backend.index.indexer import Indexer
from backend.model import load_embedder
from tests.support.catalogs import TEST_MODEL, draw_image, image_bytes, write_catalog
from tests.support.http_servers import ImageServer, serve

RED = image_bytes(draw_image("red"))
RELEASE = threading.Event()


def _held(handler) -> None:
    """Answer only once the test releases it (a download still running)."""
    RELEASE.wait(10)
    handler.reply(200, "image/png", RED)


@pytest.fixture
def server():
    RELEASE.clear()
    routes = {"/img/": lambda h: h.reply(200, "image/png", RED), "/held/": _held}
    yield from serve(ImageServer(routes))
    RELEASE.set()


def locator_for(tmp_path: Path) -> ImageLocator:
    return ImageLocator((tmp_path,), tmp_path / "cache", 1 << 20, FetchPolicy(allow_loopback=True))


def test_start_downloads_queues_uncached_remote_images_and_reports_failures(tmp_path, server):
    locator = locator_for(tmp_path)
    products = [
        Product("a", "A", "c", None, server.url("/img/a.png")),
        Product("b", "B", "c", None, server.url("/missing")),
        Product("c", "C", "c", None, "images/c.png"),  # local: nothing to download
    ]
    with ThreadPoolExecutor(4) as pool:
        outcomes = {pid: f.result() for pid, f in locator.start_downloads(products, pool).items()}
        assert set(locator.start_downloads(products, pool)) == {"b"}  # "a" is cached now
    assert outcomes["a"] is None and locator.cache_path(products[0].image_url).is_file()
    assert "404" in outcomes["b"]
    assert locator.download_missing(products, 2) == {"b": outcomes["b"]}


def test_embedding_proceeds_while_a_download_is_still_running(tmp_path, server, model_dir):
    catalog_path = tmp_path / "products.csv"
    urls = [server.url(f"/img/{i}.png") for i in range(4)] + [server.url("/held/4.png")]
    with catalog_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "name", "category", "price", "image_url"])
        writer.writerows([f"p{i}", f"P{i}", "c", "", url] for i, url in enumerate(urls))
    embedded_before_release: list[int] = []

    def progress(done: int, total: int) -> None:
        if not RELEASE.is_set():
            embedded_before_release.append(done)
        if done == 4:
            RELEASE.set()  # two batches embedded: now let the last download finish

    embedder = load_embedder(TEST_MODEL, "random", model_dir=model_dir)
    indexer = Indexer(locator_for(tmp_path), embedder, tmp_path / "index.csv", batch_size=2)
    table, report = indexer.sync(load_catalog(catalog_path), progress)
    assert embedded_before_release == [2, 4]
    assert len(report.added) == 5 and not report.failed and len(table) == 5


def test_a_failed_image_download_is_not_retried_at_every_view(app_config, tmp_path, server):
    dead = server.url("/missing")
    shop = write_catalog(tmp_path / "remote", extra_rows=[["r1", "Remote ball", "toys", "", dead]])
    app = create_app(app_config | {"catalog_path": shop, "fetch_allow_loopback": True})
    service = get_service(app)
    service.sync()
    client = app.test_client()

    def asked() -> int:
        return sum(path == "/missing" for path, _ in server.seen)

    before = asked()
    assert client.get("/images/r1").status_code == 404
    assert asked() == before + 1
    assert client.get("/images/r1").status_code == 404
    assert asked() == before + 1  # answered from memory, the server not asked again
    service.retry_failed_download_seconds = 0
    assert client.get("/images/r1").status_code == 404
    assert asked() == before + 2  # once the wait is over, it is tried again
