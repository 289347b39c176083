"""The milvus backend's collection: its schema and HNSW parameters, rows, filter expressions.

What is written to Milvus and read back, without a connection: the store (`milvus.py`) makes the
collection from `collection_schema`, writes `row`s, filters with `expression` and reads
`product`s. The schema version and the HNSW parameters are kept in the collection's
description, as JSON (`read_meta`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from pymilvus import CollectionSchema, DataType, MilvusClient

from ..catalog import Product
from ..catalog.products import MAX_FIELD_CHARS
from .base import Filters

COLLECTION = "search_products"
SCHEMA_VERSION = 1
TEXT_BYTES = MAX_FIELD_CHARS * 4  # Milvus counts VARCHAR lengths in UTF-8 bytes
BATCH = 2000  # rows per insert (~2 KB each at 512-d: well under gRPC's 64 MB message limit)
ID_BATCH = 1000  # ids per `id in [...]` expression
PAGE = 10_000  # rows per page when reading every id and version
SLOT_WAIT = 1.0  # seconds a request waits for a free Milvus slot before a 503
# Seconds for opening the store: creating and loading a collection takes Milvus seconds to
# minutes (a big one is read into memory), unlike any call made while serving.
OPEN_TIMEOUT = 300.0
TEXT_FIELDS = ("name", "category", "image_url")
PRODUCT_FIELDS = ["id", "name", "category", "price", "priced", "image_url"]


@dataclass(frozen=True)
class HnswIndex:
    """How the HNSW graph is built; the defaults come from the sweep in docs/scaling.md."""

    M: int = 16
    efConstruction: int = 128  # noqa: N815 (Milvus's own parameter names)

    def describe(self) -> str:
        return f"HNSW index (M {self.M}, efConstruction {self.efConstruction})"


DEFAULT_INDEX = HnswIndex()


def collection_schema(dim: int, index: HnswIndex) -> CollectionSchema:
    """The collection's fields, with the schema version and HNSW parameters in its description."""
    meta = {"schema_version": SCHEMA_VERSION, "index": asdict(index)}
    schema = MilvusClient.create_schema(
        auto_id=False, enable_dynamic_field=False, description=json.dumps(meta)
    )
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=TEXT_BYTES)
    for field in TEXT_FIELDS:
        schema.add_field(field, DataType.VARCHAR, max_length=TEXT_BYTES)
    # Milvus 2.3 has no NULL: `priced` says whether `price` holds one.
    schema.add_field("price", DataType.DOUBLE)
    schema.add_field("priced", DataType.BOOL)
    schema.add_field("version", DataType.VARCHAR, max_length=256)
    schema.add_field("model", DataType.VARCHAR, max_length=TEXT_BYTES)
    schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=dim)
    return schema


def as_row(product: Product, vector: np.ndarray, version: str, model: str) -> dict[str, Any]:
    return {
        "id": product.id,
        "name": product.name,
        "category": product.category,
        "price": 0.0 if product.price is None else float(product.price),
        "priced": product.price is not None,
        "image_url": product.image_url,
        "version": version,
        "model": model,
        "embedding": vector,  # (D,) float32
    }


def literal(value: str | Sequence[str]) -> str:
    """A string (or list of strings) as a Milvus expression literal: JSON's escapes are Milvus's."""
    return json.dumps(value if isinstance(value, str) else list(value))


def filter_expression(filters: Filters) -> str:
    clauses = []
    if filters.category is not None:
        clauses.append(f"category == {literal(filters.category)}")
    if filters.has_price:
        clauses.append("priced == true")
    if filters.min_price is not None:
        clauses.append(f"price >= {float(filters.min_price)!r}")
    if filters.max_price is not None:
        clauses.append(f"price <= {float(filters.max_price)!r}")
    return " and ".join(clauses)


def read_product(entity: dict) -> Product:
    price = entity["price"] if entity["priced"] else None
    return Product(entity["id"], entity["name"], entity["category"], price, entity["image_url"])


def read_meta(description: str) -> dict:
    try:
        meta = json.loads(description)
    except ValueError:
        return {}
    return meta if isinstance(meta, dict) and "index" in meta else {}


def vector_dim(described: dict) -> int | None:
    for field in described.get("fields", []):
        if field.get("name") == "embedding":
            return int(field.get("params", {}).get("dim", 0))
    return None
