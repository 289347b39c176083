"""Vector stores: one interface, five backends chosen by VECTOR_BACKEND.

`memory` (default) is exact numpy search; `faiss` an HNSW graph on one machine; `pgvector`
PostgreSQL shared by several app processes; `mysql` MySQL / MariaDB shared by several app
processes, each searching its own in-memory copy exactly; `milvus` a Milvus server or cluster
shared by several app processes. index.csv stays the embedding cache of record:
`sync_store` pushes into the chosen backend only what changed since it last saw it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import NamedTuple

from ..catalog import Catalog
from ..config import Settings
from ..errors import ConfigError
from ..index.index_file import IndexTable
from .base import (
    ITEM_VERSION_SCHEME,
    NO_FILTERS,
    Filters,
    StoreError,
    StoreHit,
    VectorStore,
    item_version,
)

__all__ = [
    "ITEM_VERSION_SCHEME",
    "NO_FILTERS",
    "Filters",
    "StoreError",
    "StoreHit",
    "StorePush",
    "VectorStore",
    "item_version",
    "open_store",
    "row_versions",
    "sync_store",
]

log = logging.getLogger(__name__)


def open_store(settings: Settings, dim: int, model: str = "") -> VectorStore:
    """Open the configured backend; its heavy imports (faiss, psycopg, pymysql, pymilvus) happen only here.

    `model` is the embedder's identity, recorded with each row by the backends that keep one.
    """
    if settings.vector_backend == "faiss":
        from .faiss_hnsw import FaissStore

        return FaissStore(settings.faiss_path, dim, ef_search=settings.faiss_ef_search)
    if settings.vector_backend == "pgvector":
        from .postgres import PgVectorStore

        return PgVectorStore(
            _required(settings.database_url, "DATABASE_URL", settings),
            dim,
            pool_size=settings.database_pool_size,
            ef_search=settings.pgvector_ef_search,
        )
    if settings.vector_backend == "mysql":
        from .mysql import MySQLStore

        return MySQLStore(
            _required(settings.database_url, "DATABASE_URL", settings),
            dim,
            model=model,
            pool_size=settings.database_pool_size,
        )
    if settings.vector_backend == "milvus":
        from .milvus import MilvusStore

        return MilvusStore(
            _required(settings.milvus_uri, "MILVUS_URI", settings),
            dim,
            token=settings.milvus_token,
            model=model,
            ef_search=settings.milvus_ef_search,
            timeout=settings.milvus_timeout,
            slots=settings.database_pool_size,
        )
    from .memory import MemoryStore

    return MemoryStore(dim)


def _required(value: str | None, name: str, settings: Settings) -> str:
    """A server address load_settings requires for the backend (Settings built without it fail here)."""
    if not value:
        raise ConfigError(f"VECTOR_BACKEND={settings.vector_backend} needs {name}")
    return value


class StorePush(NamedTuple):
    upserted: int
    deleted: int


def row_versions(catalog: Catalog, table: IndexTable) -> list[str]:
    """Each row's item_version ("" for a row whose product is not in the catalog)."""
    products = catalog.products
    return [
        item_version(entry.fingerprint, entry.model, products[entry.id])
        if entry.id in products
        else ""
        for entry in table.entries
    ]


def sync_store(
    store: VectorStore, catalog: Catalog, table: IndexTable, known: Sequence[str] | None = None
) -> StorePush:
    """Make the store hold exactly the indexed catalog products, writing only the differences.

    `known`: `row_versions(catalog, table)` when computed already (a worker's start).
    """
    have = store.versions()
    rows, products, versions = [], [], []
    wanted: set[str] = set()
    for row, entry in enumerate(table.entries):
        product = catalog.products.get(entry.id)
        if product is None:
            continue
        wanted.add(entry.id)
        if known is None:
            version = item_version(entry.fingerprint, entry.model, product)
        else:
            version = known[row]
        if have.get(entry.id) != version:
            rows.append(row)
            products.append(product)
            versions.append(version)
    stale = [product_id for product_id in have if product_id not in wanted]
    # All rows changed (a first fill): hand over the table's array itself, not a copy.
    vectors = table.vectors if len(rows) == len(table.vectors) else table.vectors[rows]
    deleted = store.apply(stale, products, vectors, versions)
    store.flush()
    if products or deleted:
        log.info("%s store: %d upserted, %d deleted", store.name, len(products), deleted)
    return StorePush(len(products), deleted)
