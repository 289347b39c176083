"""The admin API: every operation that changes state over HTTP, behind ADMIN_TOKEN.

Re-index the whole catalog, or add, replace and delete one product live.

Unset ADMIN_TOKEN disables all of it (403). Otherwise a request must carry
`Authorization: Bearer <ADMIN_TOKEN>`, compared in constant time (401 if not).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from ..catalog import Catalog
from ..extensions import get_service
from ..index.indexer import SyncReport
from .api import product_json
from .params import read_upload, request_body
from .security import require_token

bp = Blueprint("admin", __name__, url_prefix="/api/admin")
require_token(
    bp,
    "admin_token",
    realm="admin",
    off="the admin API is disabled; set ADMIN_TOKEN on the server to enable it",
    how="send the admin token as the header `Authorization: Bearer <token>`",
)

MAX_LISTED = 100  # failed images and skipped rows detailed in a report; the rest are counted


@bp.post("/reindex")
def reindex():
    """Re-read the catalog, embed what is new or changed, and swap in the new index."""
    catalog, report = get_service().sync()
    return jsonify(report_json(catalog, report))


@bp.put("/products/<path:product_id>")
def put_product(product_id: str):
    """Add or replace one product (JSON, or multipart with an image `file`); searched at once."""
    service = get_service()
    fields = request_body(request)  # a query string is no place for catalog fields
    image = read_upload(request, service.settings.max_upload_bytes)
    created = service.catalog.get(product_id) is None
    product = service.put_product(product_id, fields, image)
    return jsonify(product=product_json(product), created=created), 201 if created else 200


@bp.delete("/products/<path:product_id>")
def delete_product(product_id: str):
    """Remove one product from the catalog, index.csv and the vector store."""
    get_service().delete_product(product_id)
    return "", 204


def report_json(catalog: Catalog, report: SyncReport) -> dict[str, Any]:
    failed = list(report.failed.items())
    return {
        "summary": report.summary(),
        "added": len(report.added),
        "updated": len(report.updated),
        "removed": len(report.removed),
        "unchanged": report.unchanged,
        "failed": len(failed),
        "skipped_rows": len(catalog.skipped),
        "failures": [{"id": pid, "reason": reason} for pid, reason in failed[:MAX_LISTED]],
        "skipped": [{"row": row.row, "reason": row.reason} for row in catalog.skipped[:MAX_LISTED]],
        "seconds": round(report.seconds, 3),
    }
