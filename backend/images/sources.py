"""Where a product's image lives: a confined local file, or a cached copy of a URL or S3 object.

An S3 object's cached copy has its ETag beside it (`<copy>.etag`), so a sync can tell a
replaced photo from an unchanged one without reading either.
"""

from __future__ import annotations

import functools
import hashlib
import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..atomic import atomic_write_bytes
from ..catalog import Product
from ..catalog.edits import catalog_writes
from ..errors import FetchError, ImageError
from .decode import decode_image, image_format
from .fetch import FetchPolicy, fetch
from .s3 import S3Error, S3Reader, is_s3_url

MAX_CATALOG_BYTES = 512 * 1024 * 1024  # products.csv read from S3 (a million rows is ~100 MB)
UPLOADS = "uploads"  # uploaded product photos, inside the catalog folder
EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif", "BMP": ".bmp"}


@dataclass(frozen=True)
class ImageLocator:
    """Maps products to image files: local paths confined to their roots, URLs to the cache."""

    roots: tuple[Path, ...]
    cache_dir: Path
    max_bytes: int
    fetch_policy: FetchPolicy
    s3: S3Reader | None = None  # the shop's s3:// images (none: such images fail)

    def path_for(self, product: Product) -> Path:
        """Return the file holding the product's image (for a URL, where its cached copy goes)."""
        if product.is_remote:
            return self.cache_path(product.image_url)
        return self.local_path(product.image_url)

    def cache_path(self, url: str) -> Path:
        digest = hashlib.sha256(url.encode("utf-8")).hexdigest()
        return self.cache_dir / "images" / digest[:2] / digest

    def local_path(self, relative: str) -> Path:
        """Resolve a relative image path inside the first root that has it, symlinks included."""
        # os.path, not pathlib: a re-sync checks every local product, and pathlib's objects made
        # that check several times slower (same realpath and confinement test).
        for root in self.roots:
            real_root = _real_root(root)
            candidate = os.path.realpath(os.path.join(real_root, relative))
            if candidate != real_root and not candidate.startswith(os.path.join(real_root, "")):
                raise ImageError(f"image_url {relative!r} leaves the catalog folder")
            if os.path.isfile(candidate):
                return Path(candidate)
        raise ImageError(f"image file {relative!r} not found")

    def read(self, product: Product) -> bytes:
        """Return the image bytes of a product (downloading a remote image once)."""
        path = self.path_for(product)
        if product.is_remote and not path.is_file():
            self.download(product.image_url)
        return read_limited(path, self.max_bytes)

    def download(self, url: str) -> Path:
        path = self.cache_path(url)
        if is_s3_url(url):
            return self._download_s3(url, path)
        fetched = fetch(url, self.fetch_policy)
        atomic_write_bytes(path, fetched.content)
        return path

    def _download_s3(self, url: str, path: Path) -> Path:
        if self.s3 is None:
            raise FetchError(f"{url}: s3:// images are not enabled here")
        try:
            found = self.s3.get(url)
        except S3Error as error:
            if error.gone:  # deleted or no longer readable: no stale copy served either
                for stale in (path, _etag_path(path)):
                    stale.unlink(missing_ok=True)
            raise
        assert found is not None  # None only answers an if_none_match, not asked for here
        atomic_write_bytes(path, found.content)
        atomic_write_bytes(_etag_path(path), found.etag.encode())  # after the copy it describes
        return path

    def fetch_catalog(self, url: str, path: Path) -> None:
        """Copy the catalog at s3://... to path, unless the copy there is of the same ETag."""
        if self.s3 is None:
            raise FetchError(f"{url}: s3:// catalogs are not enabled here")
        known = (
            _etag_path(path).read_text() if path.is_file() and _etag_path(path).is_file() else ""
        )
        found = self.s3.get(url, max_bytes=MAX_CATALOG_BYTES, if_none_match=known)
        if found is not None:
            atomic_write_bytes(path, found.content)
            atomic_write_bytes(_etag_path(path), found.etag.encode())

    def cached_etag(self, url: str) -> str | None:
        """The ETag of an S3 object's cached copy, or None when there is no copy."""
        try:
            return _etag_path(self.cache_path(url)).read_text()
        except OSError:
            return None

    def download_missing(
        self,
        products: Iterable[Product],
        workers: int,
        on_done: Callable[[], None] = lambda: None,
    ) -> dict[str, str]:
        """Download uncached remote images concurrently; return {product id: error message}."""
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="download") as pool:
            pending = self.start_downloads(products, pool, on_done)
            outcomes = {product_id: future.result() for product_id, future in pending.items()}
        return {product_id: error for product_id, error in outcomes.items() if error}

    def start_downloads(
        self,
        products: Iterable[Product],
        pool: Executor,
        on_done: Callable[[], None] = lambda: None,
        etags: dict[str, str] | None = None,
    ) -> dict[str, Future[str | None]]:
        """Queue the downloads of uncached remote images, and of S3 objects whose ETag
        (`etags`: {url: ETag now}) is not their cached copy's, on pool, in order.

        Returns {product id: future of None, or of the error message if the download failed}.
        """

        def download_one(product: Product) -> str | None:
            try:
                self.download(product.image_url)
            except (FetchError, OSError) as error:
                return str(getattr(error, "message", error))
            except Exception as error:  # noqa: BLE001 - one download never ends the run
                return f"unexpected error: {type(error).__name__}: {error}"
            finally:
                on_done()
            return None

        todo = [p for p in products if p.is_remote and self._stale(p.image_url, etags or {})]
        return {product.id: pool.submit(download_one, product) for product in todo}

    def _stale(self, url: str, etags: dict[str, str]) -> bool:
        cached = self.cache_path(url).is_file()
        return not cached or (url in etags and self.cached_etag(url) != etags[url])


def _etag_path(path: Path) -> Path:
    return path.with_name(path.name + ".etag")


def _real_root(root: Path) -> str:
    """root with symlinks resolved, worked out at most once a second (a re-sync asks per image)."""
    return _real_root_at(root, int(time.monotonic()))


@functools.lru_cache(maxsize=64)
def _real_root_at(root: Path, second: int) -> str:
    return os.path.realpath(root)


def save_upload(catalog_folder: Path, data: bytes) -> str:
    """Keep an uploaded photo under the catalog folder (named by its content); return its image_url."""
    # Refuse anything that is not an image we accept, before storing it (decoded at the least
    # scale that tells: a check, not a picture).
    decode_image(data, min_size=1)
    found = image_format(data)
    assert found is not None  # decode_image refuses a format it does not sniff
    extension = EXTENSIONS[found]
    name = f"{UPLOADS}/{hashlib.sha256(data).hexdigest()[:32]}{extension}"
    path = catalog_folder / name
    if not path.is_file():
        with catalog_writes():
            atomic_write_bytes(path, data)
    return name


def read_limited(path: Path, max_bytes: int) -> bytes:
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise ImageError(f"image file is {size} bytes, over the {max_bytes} byte limit")
        return path.read_bytes()
    except FileNotFoundError:
        raise ImageError("image file not found") from None
    except IsADirectoryError:
        raise ImageError("image path is a folder") from None


def file_signature(path: Path) -> str | None:
    """A cheap change detector (size + mtime) that needs no read of the content."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return f"{info.st_size}:{info.st_mtime_ns}"
