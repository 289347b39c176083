"""Carry an uploaded query to the next request: a signed token with its embedding and thumbnail.

Refining a search is a GET of its saved query's link (`saved_queries`); only when that cannot be
saved (CACHE_DIR not writable) does the form POST this token instead, the image not sent again.
The token is signed with SECRET_KEY, so a client cannot make the page show another image.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass

import numpy as np
from itsdangerous import BadSignature, URLSafeTimedSerializer
from PIL import Image

from ..errors import InvalidInput
from ..index.index_file import decode_vectors, encode_vector

THUMBNAIL_SIZE = 320  # pixels, longest side: sharp at the 160 CSS pixels the page uses
THUMBNAIL_QUALITY = 82
EXPIRED = "this search can no longer be refined; choose the image again"
# A refine link stays usable for a shopping session, not forever.
MAX_AGE_SECONDS = 24 * 60 * 60


@dataclass(frozen=True)
class Query:
    vector: np.ndarray  # (D,), unit length
    thumbnail: str  # a data: URL of a small JPEG


def thumbnail_data_url(image: Image.Image) -> str:
    """A small JPEG of the decoded upload as a data: URL (never the raw bytes)."""
    image = image.copy()
    image.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=THUMBNAIL_QUALITY, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def encode_query(query: Query, model: str, secret_key: str | bytes) -> str:
    payload = {"m": model, "v": encode_vector(query.vector), "t": query.thumbnail}
    return _serializer(secret_key).dumps(payload)


def decode_query(token: str, model: str, dim: int, secret_key: str | bytes) -> Query:
    """Verify a token and return its query; refuse tampered ones and those of another model."""
    try:
        payload = _serializer(secret_key).loads(token, max_age=MAX_AGE_SECONDS)
        vector = decode_vectors([payload["v"]])[0]  # (D,)
        thumbnail = payload["t"]
    except (BadSignature, KeyError, TypeError, ValueError):
        raise InvalidInput(EXPIRED) from None
    if payload.get("m") != model or vector.shape != (dim,):
        raise InvalidInput(EXPIRED)
    if not isinstance(thumbnail, str) or not thumbnail.startswith("data:image/jpeg;base64,"):
        raise InvalidInput(EXPIRED)
    return Query(vector, thumbnail)


def _serializer(secret_key: str | bytes) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt="query")
