"""Every JSON shape of the API, declared once: the routes send these (see `serializers`), and the
OpenAPI document's component schemas are derived from them (see `dataschema`).

A class's name is its schema's name in the document; a one-line docstring its description.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from .dataschema import component_schemas, info

ReadyStatus = Literal[
    "ready", "loading", "nothing_searchable", "index_damaged", "store_unavailable"
]


@dataclass(frozen=True)
class Product:
    id: str
    name: str
    category: str
    price: float | None
    image_url: str = field(
        metadata=info(
            "Served by this app: on PUBLIC_BASE_URL when it is set, else a path relative to the "
            "API's address; `v` is the image's content version.",
            format="uri-reference",
        )
    )


@dataclass(frozen=True)
class Hit(Product):
    similarity: float = field(
        metadata=info("The raw score (cosine similarity).", minimum=-1, maximum=1)
    )
    match: int | None = field(
        metadata=info(
            "The measured chance, in whole percent, that this is the product in the photo; null "
            'when the model has no calibration, and for "more like this".',
            minimum=0,
            maximum=100,
        )
    )


@dataclass(frozen=True)
class SearchResponse:
    results: list[Hit] = field(metadata=info("Best first."))
    threshold: float
    threshold_unit: Literal["match", "similarity"] = field(
        metadata=info(
            "What the threshold was compared with: `match` / 100 when the results carry a match, "
            "else the similarity."
        )
    )
    k: int
    category: str | None
    min_price: float | None
    max_price: float | None
    hidden_below_threshold: int = field(metadata=info("Of the k nearest, how many fell below."))
    took_ms: float


@dataclass(frozen=True)
class ProductPage:
    products: list[Product]
    page: int
    per_page: int
    pages: int
    total: int
    category: str | None
    categories: list[str]


@dataclass(frozen=True)
class ProductEdit:
    """Fields left out (or null) keep the product's current values; a new product needs an
    image (`image_url`, or a multipart `file`). An empty price clears it."""

    closed: ClassVar[bool] = True  # any other field is refused (400), so the schema says so

    name: str | None = field(default=None, metadata=info(nullable=True))
    category: str | None = field(default=None, metadata=info(nullable=True))
    price: float | str | None = field(default=None, metadata=info(nullable=True))
    image_url: str | None = field(
        default=None,
        metadata=info("http(s) URL, or a path relative to the catalog folder.", nullable=True),
    )


@dataclass(frozen=True)
class ProductSaved:
    product: Product
    created: bool


@dataclass(frozen=True)
class FailedImage:
    """A product whose image could not be indexed, and why."""

    id: str
    reason: str


@dataclass(frozen=True)
class SkippedRow:
    """A row of products.csv that was skipped, and why."""

    row: int
    reason: str


@dataclass(frozen=True)
class SyncReport:
    summary: str
    added: int
    updated: int
    removed: int
    unchanged: int
    failed: int
    skipped_rows: int
    failures: list[FailedImage] = field(metadata=info("The first 100 products whose image failed."))
    skipped: list[SkippedRow] = field(
        metadata=info("The first 100 rows of products.csv that were skipped.")
    )
    seconds: float


@dataclass(frozen=True)
class Error:
    error: str = field(
        metadata=info("A stable code: invalid_input, not_found, busy, store_unavailable...")
    )
    message: str = field(metadata=info("What is wrong and what to do, in words."))


@dataclass(frozen=True)
class Health:
    status: Literal["ok"]


@dataclass(frozen=True)
class Ready:
    ready: bool
    status: ReadyStatus
    random_weights: bool
    model: str | None = None
    catalog_size: int | None = None
    indexed: int | None = None
    skipped_rows: int | None = None
    failed_images: int | None = None
    skipped: list[SkippedRow] | None = field(
        default=None,
        metadata=info(
            "The first 20 rows of products.csv that were skipped, and why (with the admin token "
            "only)."
        ),
    )
    failed: list[FailedImage] | None = field(
        default=None,
        metadata=info(
            "The first 20 products whose image could not be indexed, and why (with the admin token "
            "only).",
        ),
    )
    problem: str | None = field(
        default=None,
        metadata=info(
            "What is wrong: an index on disk of another catalog or model (not loaded), damaged "
            "rows, a refused pack, a store that does not answer.",
        ),
    )


SHAPES = (
    Product,
    Hit,
    SearchResponse,
    ProductPage,
    ProductEdit,
    ProductSaved,
    FailedImage,
    SkippedRow,
    SyncReport,
    Error,
    Health,
    Ready,
)


def schemas() -> dict[str, Any]:
    """The OpenAPI component schemas, one per shape."""
    return component_schemas(SHAPES)
