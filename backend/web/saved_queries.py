"""Searched images kept for links: `/search?query=<id>` shows anyone the same results again.

A refined search is a GET whose address can be bookmarked or sent to someone. Only what the
results page shows of the image is kept: its embedding and the small thumbnail, never the upload
itself, one file per query under CACHE_DIR/queries. The id is a keyed hash (SECRET_KEY) of the
model and embedding: the same photo gets the same link, and ids cannot be guessed from a photo
without the key. Files live MAX_AGE_DAYS and at most MAX_QUERIES are kept, the oldest going
first, so a flood of uploads costs at most about MAX_QUERIES x 40 KB of disk.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import logging
import os
import re
import tempfile
import time
from pathlib import Path

from ..errors import NotFound
from ..index.index_file import decode_vectors, encode_vector
from .refine import Query

log = logging.getLogger(__name__)

MAX_QUERIES = 2000
MAX_AGE_DAYS = 30
MAX_FILE_BYTES = 256 * 1024  # a thumbnail of 320 px and a vector are far below it
STALE_TEMP_SECONDS = 60
EXPIRED = "this search link has expired or is not one of ours; choose the image again"
_ID = re.compile(r"[A-Za-z0-9_-]{22}\Z")  # 16 bytes, base64url without padding


class SavedQueries:
    """The folder of saved queries; a store that cannot be written only costs the links."""

    def __init__(self, folder: Path, secret_key: str | bytes) -> None:
        self.folder = folder
        self.key = secret_key.encode() if isinstance(secret_key, str) else secret_key

    @staticmethod
    def is_id(text: str) -> bool:
        return bool(_ID.match(text))

    def save(self, query: Query, model: str) -> str | None:
        """Keep a query and return its id, or None when the folder cannot be written."""
        vector = encode_vector(query.vector)
        query_id = self._id(model, vector)
        path = self.folder / f"{query_id}.json"
        try:
            if path.exists():
                os.utime(path)  # used again: it is kept as long as a new one
                return query_id
            payload = {"m": model, "v": vector, "t": query.thumbnail}
            self._write(path, json.dumps(payload, separators=(",", ":")).encode())
            self._prune()
        except OSError as error:
            log.warning("cannot save a search for its link in %s: %s", self.folder, error)
            return None
        return query_id

    def load(self, query_id: str, model: str, dim: int) -> Query:
        """The saved query of an id; NotFound when unknown, expired or of another model."""
        if not self.is_id(query_id):
            raise NotFound(EXPIRED)
        path = self.folder / f"{query_id}.json"
        try:
            with path.open("rb") as handle:
                if time.time() - os.fstat(handle.fileno()).st_mtime > MAX_AGE_DAYS * 86400:
                    raise NotFound(EXPIRED)
                payload = json.loads(handle.read(MAX_FILE_BYTES + 1))
            vector = decode_vectors([payload["v"]])[0]  # (D,)
            thumbnail = payload["t"]
        except (OSError, ValueError, KeyError, TypeError):
            raise NotFound(EXPIRED) from None
        if payload.get("m") != model or vector.shape != (dim,):
            raise NotFound(EXPIRED)  # the shop has changed its model since
        if not isinstance(thumbnail, str) or not thumbnail.startswith("data:image/jpeg;base64,"):
            raise NotFound(EXPIRED)
        return Query(vector, thumbnail)

    def _id(self, model: str, vector: str) -> str:
        digest = hmac.new(self.key, f"{model}\n{vector}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:16]).decode("ascii").rstrip("=")

    def _write(self, path: Path, data: bytes) -> None:
        """Write whole or not at all; no fsync: a query lost to a crash only costs its link."""
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=self.folder, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise

    def _prune(self) -> None:
        """Remove expired queries, then the oldest beyond MAX_QUERIES, and dead temp files."""
        now = time.time()
        kept: list[tuple[float, str]] = []
        with os.scandir(self.folder) as entries:
            for entry in entries:
                with contextlib.suppress(FileNotFoundError):  # another worker pruned it
                    age = now - entry.stat().st_mtime
                    if entry.name.endswith(".tmp"):
                        if age > STALE_TEMP_SECONDS:
                            os.unlink(entry.path)
                    elif age > MAX_AGE_DAYS * 86400:
                        os.unlink(entry.path)
                    else:
                        kept.append((entry.stat().st_mtime, entry.path))
        kept.sort()
        for _, path in kept[: max(len(kept) - MAX_QUERIES, 0)]:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
