"""The API's answers built from domain objects: every JSON body a blueprint sends is made here,
as one of the shapes declared in `shapes`, and turned into JSON by `json_response`."""

from __future__ import annotations

from itertools import islice
from typing import TYPE_CHECKING

from flask import Response, jsonify, url_for

from ..extensions import get_service
from .dataschema import as_json
from .security import public_url
from .shapes import (
    FailedImage,
    Hit,
    Product,
    ProductPage,
    ProductSaved,
    Ready,
    ReadyStatus,
    SearchResponse,
    SkippedRow,
    SyncReport,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from ..catalog import Catalog
    from ..catalog import Product as CatalogProduct
    from ..catalog import SkippedRow as CatalogSkippedRow
    from ..index.indexer import SyncReport as Sync
    from ..index.snapshot import Snapshot
    from ..search import SearchResult
    from .params import Page

READY_LISTED = 20  # skipped rows and failed images listed by /readyz; the rest are counted
REPORT_LISTED = 100  # failed images and skipped rows detailed in a sync report


def json_response(shape: object, status: int = 200) -> tuple[Response, int]:
    return jsonify(as_json(shape)), status


def image_link(product_id: str) -> str:
    """A product image's link as the API gives it: on PUBLIC_BASE_URL, else a relative path;
    never on the request's Host, which the client chooses. `v` is its content version."""
    version = get_service().image_version(product_id) or None  # None: no `v` in the URL
    return public_url(url_for("pages.product_image", product_id=product_id, v=version))


def product(item: CatalogProduct) -> Product:
    return Product(item.id, item.name, item.category, item.price, image_link(item.id))


def search_response(result: SearchResult) -> SearchResponse:
    hits = [
        Hit(**vars(product(hit.product)), similarity=round(hit.similarity, 6), match=hit.match)
        for hit in result.shown
    ]
    return SearchResponse(
        results=hits,
        threshold=result.threshold,
        threshold_unit="match" if result.calibrated else "similarity",
        k=result.k,
        category=result.category,
        min_price=result.options.min_price,
        max_price=result.options.max_price,
        hidden_below_threshold=result.hidden_below_threshold,
        took_ms=round(result.took_ms, 2),
    )


def product_page(page: Page, category: str | None, categories: list[str]) -> ProductPage:
    return ProductPage(
        [product(item) for item in page.products],
        page.number,
        page.per_page,
        page.pages,
        page.total,
        category,
        categories,
    )


def product_saved(item: CatalogProduct, created: bool) -> ProductSaved:
    return ProductSaved(product(item), created)


def sync_report(catalog: Catalog, report: Sync) -> SyncReport:
    return SyncReport(
        summary=report.summary(),
        added=len(report.added),
        updated=len(report.updated),
        removed=len(report.removed),
        unchanged=report.unchanged,
        failed=len(report.failed),
        skipped_rows=len(catalog.skipped),
        failures=failed_images(report.failed, REPORT_LISTED),
        skipped=skipped_rows(catalog.skipped, REPORT_LISTED),
        seconds=round(report.seconds, 3),
    )


def failed_images(failed: Mapping[str, str], limit: int) -> list[FailedImage]:
    return [FailedImage(pid, reason) for pid, reason in islice(failed.items(), limit)]


def skipped_rows(skipped: Iterable[CatalogSkippedRow], limit: int) -> list[SkippedRow]:
    return [SkippedRow(row.row, row.reason) for row in islice(skipped, limit)]


def ready_loading(random_weights: bool) -> Ready:
    return Ready(ready=False, status="loading", random_weights=random_weights)


def ready_counts(
    snapshot: Snapshot,
    status: ReadyStatus,
    problem: str | None,
    *,
    model: str,
    random_weights: bool,
    operator: bool,
) -> Ready:
    """The counts anyone may see; which rows failed and why only for the operator."""
    catalog = snapshot.catalog
    failed = snapshot.unsearchable
    return Ready(
        ready=status == "ready",
        status=status,
        random_weights=random_weights,
        model=model,
        catalog_size=len(catalog),
        indexed=len(snapshot.products),
        skipped_rows=len(catalog.skipped),
        failed_images=len(failed),
        skipped=skipped_rows(catalog.skipped, READY_LISTED) if operator else None,
        failed=failed_images(failed, READY_LISTED) if operator else None,
        problem=problem or None,
    )
