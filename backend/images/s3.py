"""Read the shop owner's S3 objects: catalog photos and the catalog file, never a shopper's URL.

boto3 finds credentials the standard way (environment, shared config file, instance profile or
IAM role); `S3_ENDPOINT_URL` points it at an S3-compatible service instead (MinIO, R2, Spaces),
addressed path-style. Reads have the limits of the HTTP fetcher: at most `max_bytes`, a connect
and a read timeout, and a total deadline checked between reads of at most 64 KB. Only the image
locator and the catalog loader call this module, with URLs from the owner's catalog: a pasted
search URL never gets here (the web layer and the fetcher take http and https only).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import FetchError

if TYPE_CHECKING:  # the stubs are a development requirement
    from mypy_boto3_s3 import S3Client

SCHEME = "s3://"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp")
GONE = ""  # etags(): the object is missing or may not be read
_CHUNK = 64 * 1024
_MB = 1024 * 1024
_MISSING = {"NoSuchKey", "404", "NotFound"}
_DENIED = {"AccessDenied", "403", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch"}


def is_s3_url(url: str) -> bool:
    return url[:5].lower() == SCHEME


def split_s3_url(url: str) -> tuple[str, str]:
    """(bucket, key) of s3://bucket/key; FetchError when either is missing."""
    bucket, _, key = url[len(SCHEME) :].partition("/")
    if not is_s3_url(url) or not bucket or not key:
        raise FetchError(f"{url!r} is not an S3 object URL (s3://bucket/key)")
    return bucket, key


class S3Error(FetchError):
    """An S3 read that failed; `gone` when S3 said the object is missing or may not be read."""

    def __init__(self, message: str, *, gone: bool = False) -> None:
        super().__init__(message)
        self.gone = gone


@dataclass(frozen=True)
class S3Object:
    content: bytes
    etag: str


class S3Reader:
    """One boto3 client (made on first use, shared by the download threads) and its limits."""

    def __init__(
        self,
        endpoint_url: str | None = None,
        *,
        max_bytes: int = 10 * _MB,
        connect_timeout: float = 3.05,
        read_timeout: float = 10.0,
        total_timeout: float = 20.0,
        workers: int = 16,
    ) -> None:
        self.endpoint_url = endpoint_url
        self.max_bytes = max_bytes
        self.total_timeout = total_timeout
        self.workers = workers
        self._timeouts = (connect_timeout, read_timeout)
        self._client: S3Client | None = None
        self._lock = threading.Lock()

    @property
    def client(self) -> S3Client:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._make_client()
        return self._client

    def _make_client(self) -> S3Client:
        import boto3  # imported only by a catalog that has s3:// URLs
        from botocore.config import Config

        config = Config(
            connect_timeout=self._timeouts[0],
            read_timeout=self._timeouts[1],
            retries={"max_attempts": 3, "mode": "standard"},
            max_pool_connections=max(self.workers, 10),
            s3={"addressing_style": "path"} if self.endpoint_url else {},
        )
        return boto3.session.Session().client("s3", endpoint_url=self.endpoint_url, config=config)

    # -- one object ------------------------------------------------------------------------

    def get(
        self, url: str, max_bytes: int | None = None, if_none_match: str = ""
    ) -> S3Object | None:
        """The object's bytes and ETag; None when it still has ETag `if_none_match`."""
        bucket, key = split_s3_url(url)
        limit = self.max_bytes if max_bytes is None else max_bytes
        deadline = time.monotonic() + self.total_timeout
        try:
            if if_none_match:
                response = self.client.get_object(Bucket=bucket, Key=key, IfNoneMatch=if_none_match)
            else:
                response = self.client.get_object(Bucket=bucket, Key=key)
            if response["ContentLength"] > limit:
                response["Body"].close()
                raise S3Error(f"{url}: the object is larger than the {_size(limit)} limit")
            content = _read_body(response["Body"], url, limit, deadline, self.total_timeout)
            return S3Object(content, response.get("ETag", ""))
        except S3Error:
            raise
        except Exception as error:
            if if_none_match and _status(error) == 304:
                return None
            raise _explain(error, url, deadline) from None

    # -- many objects: what changed --------------------------------------------------------

    def etags(self, urls: Iterable[str]) -> dict[str, str]:
        """{url: ETag now, or GONE}; URLs S3 could not answer for (network) are left out.

        One listing per bucket over the range of keys asked for (1,000 keys per request);
        where listing is not allowed, one HEAD per object, `workers` at a time.
        """
        by_bucket: dict[str, dict[str, str]] = {}
        for url in urls:
            bucket, key = split_s3_url(url)
            by_bucket.setdefault(bucket, {})[key] = url
        found: dict[str, str] = {}
        for bucket, keys in by_bucket.items():
            try:
                listed = self._list_range(bucket, sorted(keys))
            except Exception as error:
                if _explain(error, bucket, None).gone:  # listing not granted: ask per object
                    found.update(self._heads(bucket, keys))
                continue  # S3 unreachable: these objects stay as they were indexed
            found.update({url: listed.get(key, GONE) for key, url in keys.items()})
        return found

    def _list_range(self, bucket: str, keys: list[str]) -> dict[str, str]:
        first, last = keys[0], keys[-1].encode()
        prefix = _common_prefix(keys)
        options: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        if len(first) > len(prefix):
            options["StartAfter"] = first[:-1]  # sorts just before the first key
        etags: dict[str, str] = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(**options):
            for item in page.get("Contents", []):
                if item["Key"].encode() > last:
                    return etags
                etags[item["Key"]] = item["ETag"]
        return etags

    def _heads(self, bucket: str, keys: dict[str, str]) -> dict[str, str]:
        def head(key: str) -> str | None:
            try:
                return self.client.head_object(Bucket=bucket, Key=key)["ETag"]
            except Exception as error:
                return GONE if _explain(error, keys[key], None).gone else None

        with ThreadPoolExecutor(self.workers, thread_name_prefix="s3-head") as pool:
            answers = dict(zip(keys, pool.map(head, keys), strict=True))
        return {keys[key]: etag for key, etag in answers.items() if etag is not None}

    # -- a prefix: every image under it ----------------------------------------------------

    def list_images(self, prefix_url: str) -> Iterator[tuple[str, str]]:
        """(key, ETag) of every image object (by file suffix) under s3://bucket/prefix."""
        bucket, _, prefix = prefix_url[len(SCHEME) :].partition("/")
        if not is_s3_url(prefix_url) or not bucket:
            raise FetchError(f"{prefix_url!r} is not an S3 location (s3://bucket/prefix/)")
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix
            )
            for page in pages:
                for item in page.get("Contents", []):
                    if item["Key"].lower().endswith(IMAGE_SUFFIXES):
                        yield item["Key"], item["ETag"]
        except S3Error:
            raise
        except Exception as error:
            raise _explain(error, prefix_url, None) from None


def _read_body(body: Any, url: str, limit: int, deadline: float, total: float) -> bytes:
    """Read at most limit bytes before the deadline; read1 returns what has arrived, so a
    server that sends a byte at a time is still cut off at the deadline."""
    raw = getattr(body, "_raw_stream", body)  # urllib3's response under botocore's wrapper
    read = getattr(raw, "read1", raw.read)
    data = bytearray()
    try:
        while time.monotonic() < deadline:
            chunk = read(min(_CHUNK, limit + 1 - len(data)))
            if not chunk:
                return bytes(data)
            data += chunk
            if len(data) > limit:
                raise S3Error(f"{url}: the object is larger than the {_size(limit)} limit")
        raise S3Error(f"{url}: took longer than {total:g} s to download")
    finally:
        body.close()


def _status(error: Exception) -> int | None:
    response = getattr(error, "response", None) or {}
    return response.get("ResponseMetadata", {}).get("HTTPStatusCode")


def _explain(error: Exception, url: str, deadline: float | None) -> S3Error:
    """A sentence for the failure report, without library internals."""
    from botocore.exceptions import ClientError, NoCredentialsError

    if isinstance(error, ClientError):
        code = str(error.response.get("Error", {}).get("Code", ""))
        if code == "NoSuchBucket":
            return S3Error(f"{url}: no such bucket", gone=True)
        if code in _MISSING or _status(error) == 404:
            return S3Error(f"{url}: no such object", gone=True)
        if code in _DENIED or _status(error) == 403:
            return S3Error(
                f"{url}: access denied (the server's credentials may not read it; see the IAM "
                "policy in docs/s3.md)",
                gone=True,
            )
        return S3Error(f"{url}: S3 answered {code or _status(error)}")
    if isinstance(error, NoCredentialsError):
        return S3Error(
            f"{url}: no AWS credentials found; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
            "or give the server an IAM role"
        )
    if deadline is not None and time.monotonic() >= deadline:
        return S3Error(f"{url}: took longer than the time limit to download")
    return S3Error(f"{url}: S3 could not be reached or broke off ({type(error).__name__})")


def _common_prefix(keys: list[str]) -> str:
    first, last = keys[0], keys[-1]  # sorted: their common prefix is everyone's
    size = 0
    while size < min(len(first), len(last)) and first[size] == last[size]:
        size += 1
    return first[:size]


def _size(limit: int) -> str:
    return f"{limit / _MB:g} MB" if limit >= _MB else f"{limit} bytes"
