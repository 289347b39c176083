"""The JSON API and the health checks: the same service as the pages, answered as JSON."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify, request, url_for

from ..catalog import Product
from ..errors import InvalidInput, NotFound
from ..extensions import get_service
from ..options import parse_category
from ..search import SearchResult
from .openapi import openapi_document
from .params import paginate, parse_search_options, read_query_image, request_values
from .security import public_url

bp = Blueprint("api", __name__)

NO_IMAGE = "send an image: a multipart field `file`, or `image_url` (JSON or form field)"


@bp.post("/api/search")
def search():
    service = get_service()
    values = request_values(request)
    options = parse_search_options(values, service, percent=False)
    data = read_query_image(request, values, service)
    if data is None:
        raise InvalidInput(NO_IMAGE)
    return jsonify(result_json(service.search_bytes(data, options)))


@bp.get("/api/products/<path:product_id>/similar")
def similar(product_id: str):
    service = get_service()
    if service.catalog.get(product_id) is None:
        raise NotFound(f"there is no product {product_id!r} in the catalog")
    options = parse_search_options(request.args, service, percent=False)
    return jsonify(result_json(service.search_similar(product_id, options)))


@bp.get("/api/products")
def products():
    catalog = get_service().catalog
    category = parse_category(request.args.get("category"), catalog.categories)
    page = paginate(catalog, category, request.args)
    return jsonify(
        products=[product_json(product) for product in page.products],
        page=page.number,
        per_page=page.per_page,
        pages=page.pages,
        total=page.total,
        category=category,
        categories=catalog.categories,
    )


@bp.get("/api/openapi.json")
def openapi():
    return jsonify(openapi_document(current_app.config["SETTINGS"]))


@bp.get("/healthz")
def healthz():
    """Liveness: the process answers (says nothing about the index)."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    """Readiness: the index is loaded; with counts and the model identity."""
    service = get_service()
    settings = service.settings
    snapshot = service.snapshot  # read once: a sync may swap it meanwhile
    body: dict[str, Any] = {
        "ready": snapshot is not None,
        "random_weights": settings.random_weights,
    }
    if snapshot is None:
        return jsonify(body | {"status": "loading"}), 503
    body.update(
        status="ready",
        model=service.embedder.identity,
        catalog_size=len(snapshot.catalog),
        indexed=len(snapshot.products),
        skipped_rows=len(snapshot.catalog.skipped),
        failed_images=len(snapshot.catalog) - len(snapshot.products),
    )
    return jsonify(body)


def product_json(product: Product) -> dict[str, Any]:
    return {
        "id": product.id,
        "name": product.name,
        "category": product.category,
        "price": product.price,
        "image_url": public_url(url_for("pages.product_image", product_id=product.id)),
    }


def result_json(result: SearchResult) -> dict[str, Any]:
    return {
        "results": [
            product_json(hit.product) | {"similarity": round(hit.similarity, 6)}
            for hit in result.shown
        ],
        "threshold": result.threshold,
        "k": result.k,
        "category": result.category,
        "min_price": result.options.min_price,
        "max_price": result.options.max_price,
        "hidden_below_threshold": result.hidden_below_threshold,
        "took_ms": round(result.took_ms, 2),
    }
