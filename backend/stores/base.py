"""The vector-store interface every backend implements, and the pieces they share."""

from __future__ import annotations

import abc
import hashlib
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from ..catalog import Product
from ..errors import SearchAppError
from .scoring import team


class StoreError(SearchAppError):
    """The vector store cannot serve: server down, extension or schema missing, bad files."""

    status = 503
    code = "store_unavailable"
    public_message = "the product database is not available at the moment; please try again shortly"


@dataclass(frozen=True)
class Filters:
    """Restrict a search to one category and/or a price range (bounds inclusive)."""

    category: str | None = None
    min_price: float | None = None
    max_price: float | None = None

    @property
    def active(self) -> bool:
        return self.category is not None or self.has_price

    @property
    def has_price(self) -> bool:
        return self.min_price is not None or self.max_price is not None

    def price_mask(self, prices: np.ndarray) -> np.ndarray:
        """Rows whose price is in range; a product without a price never matches a price filter."""
        mask = ~np.isnan(prices)
        if self.min_price is not None:
            mask &= prices >= self.min_price
        if self.max_price is not None:
            mask &= prices <= self.max_price
        return mask


NO_FILTERS = Filters()


@dataclass(frozen=True)
class StoreHit:
    product: Product
    score: float  # cosine similarity


class VectorStore(abc.ABC):
    """Products with their unit-length embeddings, searchable by cosine similarity.

    Every backend answers the same query with the same products in the same order (the ANN
    ones up to their recall), scores exact cosine similarities, and returns k hits whenever
    k products match the filters.
    """

    name: str

    @abc.abstractmethod
    def upsert(
        self, products: Sequence[Product], vectors: np.ndarray, versions: Sequence[str]
    ) -> None:
        """Add or replace products (by id) with their vectors (N, D) and version keys."""

    @abc.abstractmethod
    def delete(self, ids: Iterable[str]) -> int:
        """Remove products by id; return how many were there."""

    def apply(
        self,
        delete_ids: Sequence[str],
        products: Sequence[Product],
        vectors: np.ndarray,
        versions: Sequence[str],
    ) -> int:
        """Delete, then add or replace, as one change where the backend can; return how many went."""
        deleted = self.delete(delete_ids) if delete_ids else 0
        if products:
            self.upsert(products, vectors, versions)
        return deleted

    @abc.abstractmethod
    def count(self) -> int:
        """Return the number of products stored."""

    @abc.abstractmethod
    def versions(self) -> dict[str, str]:
        """Return {product id: version key} for everything stored (what a sync compares)."""

    @abc.abstractmethod
    def vector(self, product_id: str) -> np.ndarray | None:
        """Return one product's stored vector (D,), or None when it is not stored."""

    @abc.abstractmethod
    def search(
        self,
        query: np.ndarray,
        k: int,
        *,
        threshold: float | None = None,
        filters: Filters = NO_FILTERS,
    ) -> list[StoreHit]:
        """Return the k most similar products, best first, at or above `threshold` if given."""

    def flush(self) -> None:
        """Persist pending changes (backends that keep files); a no-op elsewhere."""

    # Whether `probe` asks something outside this process (a database) that may fail.
    remote = False

    def probe(self) -> None:
        """Raise StoreError when a search could not be answered now; cheap (for /readyz)."""

    def close(self) -> None:
        """Release connections and files; the store is unusable afterwards."""


# Names how item_version is computed: versions computed earlier and kept (index.csv.packed) are
# used only under the same name, so change it whenever item_version changes.
ITEM_VERSION_SCHEME = "blake2b-96/1"


def item_version(fingerprint: str, model: str, product: Product) -> str:
    """A short key that changes when the embedding or any stored product field changes."""
    price = "" if product.price is None else repr(product.price)
    text = "\x1f".join(
        (fingerprint, model, product.name, product.category, price, product.image_url)
    )
    return hashlib.blake2b(text.encode("utf-8", "surrogateescape"), digest_size=12).hexdigest()


def exact_top_k(
    vectors: np.ndarray, rows: np.ndarray | None, query: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Exact cosine top-k over `rows` of `vectors` (all when None): (rows, scores), best first.

    The one exact search of every backend (memory, FAISS's re-ranking and small filters).
    """
    candidates = vectors if rows is None else vectors[rows]  # (M, D)
    if len(candidates) == 0 or k <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    scores = cosine_scores(candidates, query)  # (M,)
    top = top_k_indices(scores, k)
    chosen = top if rows is None else rows[top]
    return np.asarray(chosen, dtype=np.int64), scores[top]


def cosine_scores(vectors: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Dot product of each unit row with the query, (M, D) x (D,) -> (M,) float32.

    A single-threaded BLAS product per core, shared by the cores that are free at that moment
    (`scoring.team`): as fast as numpy's threaded product on an idle machine, without its
    stalls when another core is busy.
    """
    vectors = np.asarray(vectors, dtype=np.float32)
    return team().dot(vectors, np.ascontiguousarray(query, dtype=np.float32))


def top_k_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest scores, best first (argpartition, then sort only those k)."""
    k = min(k, len(scores))
    part = np.arange(len(scores)) if k == len(scores) else np.argpartition(-scores, k - 1)[:k]
    # Stable order for equal scores: by score, then by row.
    return part[np.lexsort((part, -scores[part]))]


def cut(hits: list[StoreHit], threshold: float | None) -> list[StoreHit]:
    """Drop hits under the threshold (hits are best first, so this keeps a prefix)."""
    if threshold is None:
        return hits
    return [hit for hit in hits if hit.score >= threshold]


def prepare_batch(
    products: Sequence[Product], vectors: np.ndarray, versions: Sequence[str], dim: int | None
) -> tuple[list[Product], np.ndarray, list[str]]:
    """Check an upsert's shapes and keep the last occurrence of a repeated id, as a database would."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) != len(products) or len(versions) != len(products):
        raise ValueError(
            f"expected {len(products)} vectors (N, D) and versions, got {vectors.shape} and {len(versions)}"
        )
    if dim is not None and len(products) and vectors.shape[1] != dim:
        raise StoreError(
            f"vectors have {vectors.shape[1]} dimensions but the store holds {dim}-dimensional "
            "ones; rebuild the store for the new model"
        )
    latest = sorted({product.id: i for i, product in enumerate(products)}.values())
    if len(latest) == len(products):
        return list(products), vectors, list(versions)
    return [products[i] for i in latest], vectors[latest], [versions[i] for i in latest]


class ReadWriteLock:
    """Many readers or one writer: searches run together, an update waits for them."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writing = False
        self._writers_waiting = 0

    @contextmanager
    def reading(self) -> Iterator[None]:
        with self._cond:
            # A waiting writer goes first, so a stream of searches cannot starve an update.
            while self._writing or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextmanager
    def writing(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            while self._writing or self._readers:
                self._cond.wait()
            self._writers_waiting -= 1
            self._writing = True
        try:
            yield
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()
