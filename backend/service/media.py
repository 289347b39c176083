"""Images the service hands out or takes in: product images (downloaded once), the example
shopper photos, and shoppers' image URLs fetched within their own deadline and slots."""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from pathlib import Path

from ..catalog.examples import Example, load_examples
from ..errors import Busy, FetchError, ImageError, NotFound
from ..images.fetch import fetch
from ..images.sources import file_signature
from .lifecycle import Lifecycle
from .runtime import Runtime


class Media:
    """Product images, example photos and shoppers' image URLs."""

    def __init__(self, runtime: Runtime, lifecycle: Lifecycle) -> None:
        self.runtime = runtime
        self.lifecycle = lifecycle
        settings, locator = runtime.settings, runtime.locator
        # Shoppers' image URLs: their own deadline, and a few slots so slow hosts cannot hold
        # every request thread.
        self.query_fetch_policy = dataclasses.replace(
            locator.fetch_policy, total_timeout=settings.query_fetch_timeout
        )
        self._query_fetch_slots = threading.BoundedSemaphore(settings.query_fetch_slots)
        # Image URLs whose download failed, with when: /images/<id> answers 404 at once for a
        # while instead of tying up a request thread on the same dead URL at every view.
        self._failed_downloads: dict[str, float] = {}
        self._failed_downloads_lock = threading.Lock()
        self.retry_failed_download_seconds = 300.0

    def fetch_query_image(self, url: str) -> bytes:
        """Download a shopper's image URL within QUERY_FETCH_TIMEOUT, in a free slot or not at all."""
        if not self._query_fetch_slots.acquire(blocking=False):
            raise Busy(
                "the server is busy downloading other image URLs; try again in a few seconds, "
                "or upload the image instead",
                retry_after=math.ceil(self.runtime.settings.query_fetch_timeout),
            )
        try:
            return fetch(url, self.query_fetch_policy).content
        finally:
            self._query_fetch_slots.release()

    def examples(self) -> list[Example]:
        """The shopper photos to try (examples.csv next to the catalog), or none."""
        return load_examples(self.runtime.settings.catalog_path)

    def example(self, example_id: str) -> tuple[Example, Path]:
        """One shopper photo and its file (confined to the catalog and static folders)."""
        example = next((e for e in self.examples() if e.id == example_id), None)
        if example is None:
            raise NotFound(f"there is no example photo {example_id!r}")
        try:
            return example, self.runtime.locator.local_path(example.image_url)
        except ImageError:
            raise NotFound(f"the example photo {example_id!r} is not available") from None

    def is_indexed_image(self, product_id: str, version: str, path: Path) -> bool:
        """Whether `path` still holds the image of that version (unchanged since indexing)."""
        snapshot = self.lifecycle.current()
        entry = snapshot.entries.get(product_id)
        if entry is None or version != snapshot.image_version(product_id):
            return False
        return bool(entry.signature) and file_signature(path) == entry.signature

    def image_path(self, product_id: str) -> Path:
        """The local file to serve for a product's image (downloading a remote one once)."""
        product = self.lifecycle.current().catalog.get(product_id)
        if product is None:
            raise NotFound(f"product {product_id!r} does not exist")
        path = self.runtime.locator.path_for(product)
        if product.is_remote and not path.is_file():
            path = self._download(product.image_url)
        return path

    def _download(self, url: str) -> Path:
        now = time.monotonic()
        with self._failed_downloads_lock:
            failed_at = self._failed_downloads.get(url)
        if failed_at is not None and now - failed_at < self.retry_failed_download_seconds:
            raise NotFound("this image could not be downloaded a moment ago; try again later")
        try:
            return self.runtime.locator.download(url)
        except (FetchError, OSError):
            with self._failed_downloads_lock:
                self._failed_downloads[url] = time.monotonic()
            raise
