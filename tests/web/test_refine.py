"""The signed refine token: round trip, tampering and expiry."""

from __future__ import annotations

import time

import numpy as np
import pytest

from backend.errors import InvalidInput
from backend.web.refine import MAX_AGE_SECONDS, Query, decode_query, encode_query

THUMBNAIL = "data:image/jpeg;base64,AAAA"


def unit_vector(dim: int = 8) -> np.ndarray:
    vector = np.arange(1, dim + 1, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def test_round_trip_keeps_vector_and_thumbnail():
    token = encode_query(Query(unit_vector(), THUMBNAIL), "m/w/p1", "secret")
    query = decode_query(token, "m/w/p1", 8, "secret")
    assert float(query.vector @ unit_vector()) > 0.9999
    assert query.thumbnail == THUMBNAIL


@pytest.mark.parametrize(
    ("model", "dim", "key"),
    [("other/w/p1", 8, "secret"), ("m/w/p1", 16, "secret"), ("m/w/p1", 8, "another key")],
    ids=["model-changed", "dimension-changed", "wrong-key"],
)
def test_a_token_for_another_model_or_key_is_refused(model, dim, key):
    token = encode_query(Query(unit_vector(), THUMBNAIL), "m/w/p1", "secret")
    with pytest.raises(InvalidInput, match="can no longer be refined"):
        decode_query(token, model, dim, key)


def test_a_token_expires(monkeypatch):
    token = encode_query(Query(unit_vector(), THUMBNAIL), "m/w/p1", "secret")
    later = time.time() + MAX_AGE_SECONDS + 60
    monkeypatch.setattr(time, "time", lambda: later)
    with pytest.raises(InvalidInput, match="can no longer be refined"):
        decode_query(token, "m/w/p1", 8, "secret")
