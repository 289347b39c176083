"""The JSON API and the health checks: the same service as the pages, answered as JSON."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Blueprint, Response, current_app, jsonify, request

from ..errors import InvalidInput, NotFound
from ..extensions import get_service
from ..options import parse_category
from .exports import results_csv, wants_csv
from .openapi import openapi_document
from .params import paginate, parse_search_options, read_query_image, request_values
from .security import presents_token
from .serializers import (
    json_response,
    product_page,
    ready_counts,
    ready_loading,
    search_response,
)
from .shapes import Health, ReadyStatus
from .telemetry import describe_query, record_search

if TYPE_CHECKING:
    from ..index.snapshot import Snapshot
    from ..search import SearchService

bp = Blueprint("api", __name__)

NO_IMAGE = "send an image: a multipart field `file`, or `image_url` (JSON or form field)"


@bp.post("/api/search")
def search():
    service = get_service()
    values = request_values(request)
    options = parse_search_options(values, service, percent=False)
    as_csv = wants_csv(values)
    data = read_query_image(request, values, service)
    if data is None:
        raise InvalidInput(NO_IMAGE)
    result = service.search_bytes(data, options)
    record_search(result, "api", *describe_query(request, values))
    return results_csv(result) if as_csv else json_response(search_response(result))


@bp.get("/api/products/<path:product_id>/similar")
def similar(product_id: str):
    service = get_service()
    if service.catalog.get(product_id) is None:
        raise NotFound(f"there is no product {product_id!r} in the catalog")
    options = parse_search_options(request.args, service, percent=False)
    as_csv = wants_csv(request.args)
    result = service.search_similar(product_id, options)
    record_search(result, "api", "similar", product_id)
    return results_csv(result) if as_csv else json_response(search_response(result))


@bp.get("/api/products")
def products():
    """The searchable products, as the catalog pages show them."""
    snapshot = get_service().current()
    category = parse_category(request.args.get("category"), snapshot.catalog.categories)
    page = paginate(snapshot.searchable, category, request.args)
    return json_response(product_page(page, category, snapshot.categories))


@bp.get("/api/openapi.json")
def openapi():
    return jsonify(openapi_document(current_app.config["SETTINGS"]))


@bp.get("/healthz")
def healthz():
    """Liveness: the process answers (says nothing about the index)."""
    return json_response(Health(status="ok"))


@bp.get("/readyz")
def readyz():
    """Readiness: the index is loaded, something is searchable, the store answers; counts.

    Which rows failed and why (paths, URLs) only for a request with the admin token.
    """
    service = get_service()
    settings = service.settings
    # What this process would answer from now: a sync by another process is looked at first
    # (a stat every 2 s), so a re-index with another model is named here before any search.
    service.reload_if_synced_elsewhere()
    snapshot = service.snapshot  # read once: a sync may swap it meanwhile
    if snapshot is None:
        return _no_store(*json_response(ready_loading(settings.random_weights), 503))
    token = settings.admin_token
    operator = bool(token and presents_token(token))
    status, problem = _readiness(service, snapshot, operator)
    ready = ready_counts(
        snapshot,
        status,
        problem,
        model=service.embedder.identity,
        random_weights=settings.random_weights,
        operator=operator,
    )
    return _no_store(*json_response(ready, 200 if status == "ready" else 503))


def _readiness(
    service: SearchService, snapshot: Snapshot, operator: bool
) -> tuple[ReadyStatus, str | None]:
    """The status and what is wrong, if anything (the store's details for the operator)."""
    catalog = snapshot.catalog
    unavailable = service.store_problem()
    if unavailable is not None:
        return "store_unavailable", unavailable[1] if operator else unavailable[0]
    # A catalog with rows of which none can be searched is a broken deployment, not a ready one.
    if not snapshot.products and (catalog.products or catalog.skipped):
        return "nothing_searchable", snapshot.problem
    if snapshot.damaged:
        return "index_damaged", snapshot.problem
    return "ready", snapshot.problem


def _no_store(response: Response, status: int) -> tuple[Response, int]:
    response.headers["Cache-Control"] = "no-store"  # a proxy must not answer for the server
    return response, status
