"""The admin API: every operation that changes state over HTTP, behind ADMIN_TOKEN.

Re-index the whole catalog, or add, replace and delete one product live.

Unset ADMIN_TOKEN disables all of it (403). Otherwise a request must carry
`Authorization: Bearer <ADMIN_TOKEN>`, compared in constant time (401 if not).
"""

from __future__ import annotations

from flask import Blueprint, request

from ..extensions import get_service
from .params import read_upload, request_body
from .security import require_token
from .serializers import json_response, product_saved, sync_report

bp = Blueprint("admin", __name__, url_prefix="/api/admin")
require_token(
    bp,
    "admin_token",
    realm="admin",
    off="the admin API is disabled; set ADMIN_TOKEN on the server to enable it",
    how="send the admin token as the header `Authorization: Bearer <token>`",
)


@bp.post("/reindex")
def reindex():
    """Re-read the catalog, embed what is new or changed, and swap in the new index."""
    catalog, report = get_service().sync()
    return json_response(sync_report(catalog, report))


@bp.put("/products/<path:product_id>")
def put_product(product_id: str):
    """Add or replace one product (JSON, or multipart with an image `file`); searched at once."""
    service = get_service()
    fields = request_body(request)  # a query string is no place for catalog fields
    image = read_upload(request, service.settings.max_upload_bytes)
    created = service.catalog.get(product_id) is None
    product = service.put_product(product_id, fields, image)
    return json_response(product_saved(product, created), 201 if created else 200)


@bp.delete("/products/<path:product_id>")
def delete_product(product_id: str):
    """Remove one product from the catalog, index.csv and the vector store."""
    get_service().delete_product(product_id)
    return "", 204
