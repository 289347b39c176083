"""The milvus backend: products and embeddings in a Milvus collection, searched with HNSW.

Milvus shards and replicates by itself (Standalone, Distributed on Kubernetes, Zilliz Cloud: the
same client code), so the catalog may outgrow any one machine. Every app process talks to it
through pymilvus (gRPC), imported only when VECTOR_BACKEND=milvus.

The collection is made on first use with the schema and HNSW index below, its schema version
and index parameters recorded in its description. Searches read with Session consistency: a
process sees its own writes at once (pymilvus waits for them), the other processes as soon as
Milvus has applied them (its time tick, 200 ms by default), without Strong's wait of a whole
tick on every search. What a sync compares (`versions`, `count`, `vector`) reads Strong.
Filters run in Milvus during the graph walk; an answer that still comes back short of k while
more rows match is ranked again here, exactly, over the matching rows (up to `exact_limit`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as CallTimeout
from dataclasses import asdict
from functools import partial
from typing import TypeVar

import numpy as np
from pymilvus import MilvusClient, MilvusException

from ..catalog import Product
from ..config import mask_url
from .base import (
    NO_FILTERS,
    Filters,
    StoreError,
    StoreHit,
    VectorStore,
    cut,
    exact_top_k,
    prepare_batch,
)
from .milvus_schema import (
    COLLECTION,
    DEFAULT_INDEX,
    PRODUCT_FIELDS,
    SCHEMA_VERSION,
    HnswIndex,
    as_row,
    collection_schema,
    filter_expression,
    literal,
    read_meta,
    read_product,
    vector_dim,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

BATCH = 2000  # rows per insert (~2 KB each at 512-d: well under gRPC's 64 MB message limit)
ID_BATCH = 1000  # ids per `id in [...]` expression
PAGE = 10_000  # rows per page when reading every id and version
SLOT_WAIT = 1.0  # seconds a request waits for a free Milvus slot before a 503
# Seconds for opening the store: creating and loading a collection takes Milvus seconds to
# minutes (a big one is read into memory), unlike any call made while serving.
OPEN_TIMEOUT = 300.0


def store_error(uri: str, what: str, error: Exception) -> StoreError:
    """One line naming MILVUS_URI (its password masked) and Milvus's reason."""
    reason = getattr(error, "message", None) or str(error) or type(error).__name__
    return StoreError(f"{what} Milvus at MILVUS_URI={mask_url(uri)}: {' '.join(reason.split())}")


class BoundedCalls:
    """Calls to Milvus on threads of their own, one per slot: a request waits for its answer
    at most `timeout`, whatever pymilvus's own retries and reconnections take."""

    def __init__(self, uri: str, slots: int) -> None:
        self.uri = uri
        self._slots = threading.BoundedSemaphore(slots)
        self._threads = ThreadPoolExecutor(slots, thread_name_prefix="milvus")

    def run(self, work: Callable[[], T], what: str, timeout: float) -> T:
        """Run one call to Milvus, bounded: at most `slots` at once per process (a slow Milvus
        holds no more threads than that), answered or abandoned within `timeout`; Milvus's
        errors become StoreError (503). An abandoned call keeps its slot until it ends."""
        if not self._slots.acquire(timeout=SLOT_WAIT):
            raise StoreError(
                f"every Milvus call of this process is still waiting after {SLOT_WAIT:g} s "
                f"(Milvus at MILVUS_URI={mask_url(self.uri)} is slow or unreachable)"
            )
        try:
            future = self._threads.submit(work)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _: self._slots.release())
        try:
            return future.result(timeout=timeout)
        except CallTimeout:
            raise StoreError(
                f"Milvus at MILVUS_URI={mask_url(self.uri)} did not answer within {timeout:g} s"
            ) from None
        except MilvusException as error:
            raise store_error(self.uri, what, error) from None

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)


class MilvusStore(VectorStore):
    """Vectors in a Milvus collection, searched there by HNSW with the filters applied in the walk."""

    name = "milvus"

    def __init__(
        self,
        uri: str,
        dim: int,
        *,
        token: str | None = None,
        model: str = "",
        ef_search: int = 64,
        timeout: float = 5.0,
        slots: int = 4,
        exact_limit: int = 20_000,
        index: HnswIndex = DEFAULT_INDEX,
        collection: str = COLLECTION,
    ) -> None:
        self.uri = uri
        self.dim = dim
        self.model = model
        self.ef_search = ef_search
        self.timeout = timeout
        self.exact_limit = exact_limit
        self.collection = collection
        self._calls = BoundedCalls(uri, slots)
        try:
            self._client = self._run(
                lambda: MilvusClient(uri=uri, token=token or "", timeout=timeout),
                "cannot connect to",
            )
            self.index = self._run(
                lambda: self._ensure_collection(index), "cannot use", max(timeout, OPEN_TIMEOUT)
            )
        except BaseException:
            self._calls.close()
            raise

    def _run(
        self, work: Callable[[], T], what: str = "lost the connection to", timeout: float = 0
    ) -> T:
        """One call to Milvus through the bounded calls, within `timeout` (else MILVUS_TIMEOUT)."""
        return self._calls.run(work, what, timeout or self.timeout)

    # -- the collection ------------------------------------------------------------------------

    def _ensure_collection(self, index: HnswIndex) -> HnswIndex:
        """Create the collection on first use; refuse a newer schema; remake it for another width."""
        client = self._client
        if client.has_collection(self.collection, timeout=OPEN_TIMEOUT):
            described = client.describe_collection(self.collection, timeout=OPEN_TIMEOUT)
            meta = read_meta(described.get("description", ""))
            if meta.get("schema_version", 0) > SCHEMA_VERSION:
                raise StoreError(
                    f"the Milvus collection {self.collection} at MILVUS_URI={mask_url(self.uri)} "
                    f"is schema v{meta['schema_version']}, this app knows v{SCHEMA_VERSION}; "
                    "upgrade the app"
                )
            if not meta:
                raise StoreError(
                    f"the Milvus collection {self.collection} at MILVUS_URI={mask_url(self.uri)} "
                    "was not made by this app; drop it or give the app a database of its own "
                    "(http://host:19530/<database>)"
                )
            stored = vector_dim(described)
            if stored == self.dim:
                client.load_collection(self.collection, timeout=OPEN_TIMEOUT)  # no-op if loaded
                return HnswIndex(**meta["index"])
            log.warning(
                "the Milvus collection %s held %s-dimensional vectors of another model; remade "
                "for this model's %d-dimensional ones (the next index sync fills it again)",
                self.collection,
                stored,
                self.dim,
            )
            client.drop_collection(self.collection, timeout=OPEN_TIMEOUT)
        self._create(index)
        return index

    def _create(self, index: HnswIndex) -> None:
        schema = collection_schema(self.dim, index)
        params = self._client.prepare_index_params()
        # Inner product of unit vectors is their cosine similarity, without Milvus normalising.
        params.add_index("embedding", index_type="HNSW", metric_type="IP", params=asdict(index))
        try:
            self._client.create_collection(
                self.collection,
                schema=schema,
                index_params=params,
                consistency_level="Session",
                timeout=OPEN_TIMEOUT,
            )
        except MilvusException as error:
            if "already exist" not in str(error):  # another process made it first
                raise
        self._client.load_collection(self.collection, timeout=OPEN_TIMEOUT)
        log.info(
            "created the Milvus collection %s (schema v%d, %s)",
            self.collection,
            SCHEMA_VERSION,
            index.describe(),
        )

    # -- writes -----------------------------------------------------------------------------

    def upsert(
        self, products: Sequence[Product], vectors: np.ndarray, versions: Sequence[str]
    ) -> None:
        products, vectors, versions = prepare_batch(products, vectors, versions, self.dim)
        for start in range(0, len(products), BATCH):
            rows = [
                as_row(products[i], vectors[i], versions[i], self.model)
                for i in range(start, min(start + BATCH, len(products)))
            ]
            self._run(partial(self._client.upsert, self.collection, rows))

    def delete(self, ids: Iterable[str]) -> int:
        ids = list(dict.fromkeys(ids))
        deleted = 0
        for start in range(0, len(ids), ID_BATCH):
            deleted += self._run(partial(self._delete, ids[start : start + ID_BATCH]))
        return deleted

    def _delete(self, ids: list[str]) -> int:
        # Milvus counts the ids asked for, stored or not: count the stored ones first. (By
        # expression, not `ids=`: pymilvus quotes those without escaping them.)
        expression = f"id in {literal(ids)}"
        there = self._client.query(
            self.collection, filter=expression, output_fields=["id"], consistency_level="Strong"
        )
        if there:
            self._client.delete(self.collection, filter=expression)
        return len(there)

    # -- reads ------------------------------------------------------------------------------

    def count(self) -> int:
        rows = self._run(
            lambda: self._client.query(
                self.collection, filter="", output_fields=["count(*)"], consistency_level="Strong"
            )
        )
        return int(rows[0]["count(*)"])

    def versions(self) -> dict[str, str]:
        versions: dict[str, str] = {}
        after = None
        while True:  # pages in id order (a Milvus query returns at most 16,384 rows)
            expression = "" if after is None else f"id > {literal(after)}"
            rows = self._run(
                partial(
                    self._client.query,
                    self.collection,
                    filter=expression,
                    output_fields=["id", "version"],
                    limit=PAGE,
                    consistency_level="Strong",
                )
            )
            versions.update((row["id"], row["version"]) for row in rows)
            if len(rows) < PAGE:
                return versions
            after = max(row["id"] for row in rows)

    def vector(self, product_id: str) -> np.ndarray | None:
        rows = self._run(
            lambda: self._client.query(
                self.collection,
                filter=f"id == {literal(product_id)}",
                output_fields=["embedding"],
                consistency_level="Strong",
            )
        )
        return np.asarray(rows[0]["embedding"], dtype=np.float32) if rows else None

    def search(
        self,
        query: np.ndarray,
        k: int,
        *,
        threshold: float | None = None,
        filters: Filters = NO_FILTERS,
    ) -> list[StoreHit]:
        if k <= 0:
            return []
        query = np.asarray(query, dtype=np.float32)  # (D,)
        expression = filter_expression(filters)
        found = self._run(
            lambda: self._client.search(
                self.collection,
                data=[query.tolist()],
                filter=expression,
                limit=k,
                output_fields=PRODUCT_FIELDS,
                consistency_level="Session",
                search_params={"metric_type": "IP", "params": {"ef": max(self.ef_search, k)}},
            )[0]
        )
        hits = [StoreHit(read_product(hit["entity"]), float(hit["distance"])) for hit in found]
        if len(hits) < k and self.exact_limit > 0:
            hits = self._exact_if_short(query, k, expression, hits)
        return cut(hits, threshold)

    def _exact_if_short(self, query, k, expression, hits) -> list[StoreHit]:
        """The graph walk came back short: if more rows match, rank them exactly here."""
        matching = self._run(
            lambda: self._client.query(
                self.collection,
                filter=expression,
                output_fields=["count(*)"],
                consistency_level="Session",
            )[0]["count(*)"]
        )
        if matching <= len(hits) or matching > self.exact_limit:
            return hits
        rows = self._run(
            lambda: self._client.query(
                self.collection,
                filter=expression or 'id != ""',
                output_fields=[*PRODUCT_FIELDS, "embedding"],
                limit=matching,
                consistency_level="Session",
            )
        )
        log.info(
            "milvus store: the walk found %d of %d; ranked %d rows exactly", len(hits), k, len(rows)
        )
        vectors = np.asarray([row["embedding"] for row in rows], dtype=np.float32)  # (M, D)
        chosen, scores = exact_top_k(vectors, None, query, k)
        return [
            StoreHit(read_product(rows[i]), float(s)) for i, s in zip(chosen, scores, strict=True)
        ]

    def close(self) -> None:
        self._calls.close()
        with contextlib.suppress(Exception):
            self._client.close()
