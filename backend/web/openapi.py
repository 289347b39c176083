"""The OpenAPI 3 description of the JSON API (a test keeps it in step with the routes)."""

from __future__ import annotations

from typing import Any

from ..config import Settings
from ..options import OPTION_FIELDS, OptionField
from .params import MAX_PER_PAGE, PER_PAGE


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    reasons = {
        400: "Invalid input, or an image that cannot be read or fetched",
        404: "No such product",
        401: "Missing or wrong admin token",
        403: "The admin API is disabled (no ADMIN_TOKEN on the server)",
        413: "The upload is too large",
        429: "Too many image URLs are being downloaded; retry after `Retry-After` seconds",
    }
    return {str(status): _json(_ref("Error"), reasons[status]) for status in statuses}


def _option_schema(field: OptionField, settings: Settings) -> dict[str, Any]:
    """The JSON schema of one search option, its default the running server's."""
    schema: dict[str, Any] = {"type": {int: "integer", float: "number", str: "string"}[field.kind]}
    if field.minimum is not None:
        schema["minimum"] = field.minimum
    if field.maximum is not None:
        schema["maximum"] = field.maximum
    default = getattr(settings.search_defaults, field.name)
    if default is not None:
        schema["default"] = default
    return schema


def _options(settings: Settings) -> list[dict[str, Any]]:
    """The search options as query parameters (see `backend.options`)."""
    return [
        {"name": field.name, "in": "query", "description": field.description,
         "schema": _option_schema(field, settings)}
        for field in OPTION_FIELDS
    ]  # fmt: skip


def _category() -> dict[str, Any]:
    (category,) = (field for field in OPTION_FIELDS if field.name == "category")
    return {
        "name": "category",
        "in": "query",
        "description": category.description,
        "schema": {"type": "string"},
    }


def _search_body(settings: Settings) -> dict[str, Any]:
    fields = {
        field.name: _option_schema(field, settings) | {"description": field.description}
        for field in OPTION_FIELDS
    }
    fields["image_url"] = {
        "type": "string",
        "format": "uri",
        "description": "A public http(s) image.",
    }
    multipart = {"file": {"type": "string", "format": "binary"}} | fields
    return {
        "required": True,
        "content": {
            "multipart/form-data": {"schema": {"type": "object", "properties": multipart}},
            "application/json": {
                "schema": {"type": "object", "properties": fields, "required": ["image_url"]}
            },
        },
    }


SCHEMAS: dict[str, Any] = {
    "Product": {
        "type": "object",
        "required": ["id", "name", "category", "price", "image_url"],
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "category": {"type": "string"},
            "price": {"type": ["number", "null"]},
            "image_url": {
                "type": "string",
                "format": "uri-reference",
                "description": "Served by this app: on PUBLIC_BASE_URL when it is set, else a "
                "path relative to the API's address; `v` is the image's content version.",
            },
        },
    },
    "Hit": {
        "allOf": [
            _ref("Product"),
            {
                "type": "object",
                "required": ["similarity", "match"],
                "properties": {
                    "similarity": {
                        "type": "number",
                        "minimum": -1,
                        "maximum": 1,
                        "description": "The raw score (cosine similarity).",
                    },
                    "match": {
                        "type": ["integer", "null"],
                        "minimum": 0,
                        "maximum": 100,
                        "description": "The measured chance, in whole percent, that this is "
                        "the product in the photo; null when the model has no calibration, "
                        'and for "more like this".',
                    },
                },
            },
        ]
    },  # fmt: skip
    "SearchResponse": {
        "type": "object",
        "required": [
            "results",
            "threshold",
            "threshold_unit",
            "k",
            "hidden_below_threshold",
            "took_ms",
        ],
        "properties": {
            "results": {"type": "array", "items": _ref("Hit"), "description": "Best first."},
            "threshold": {"type": "number"},
            "threshold_unit": {
                "type": "string",
                "enum": ["match", "similarity"],
                "description": "What the threshold was compared with: `match` / 100 when the "
                "results carry a match, else the similarity.",
            },
            "k": {"type": "integer"},
            "category": {"type": ["string", "null"]},
            "min_price": {"type": ["number", "null"]},
            "max_price": {"type": ["number", "null"]},
            "hidden_below_threshold": {
                "type": "integer",
                "description": "Of the k nearest, how many fell below.",
            },
            "took_ms": {"type": "number"},
        },
    },  # fmt: skip
    "ProductPage": {
        "type": "object",
        "required": ["products", "page", "per_page", "pages", "total"],
        "properties": {
            "products": {"type": "array", "items": _ref("Product")},
            "page": {"type": "integer"},
            "per_page": {"type": "integer"},
            "pages": {"type": "integer"},
            "total": {"type": "integer"},
            "category": {"type": ["string", "null"]},
            "categories": {"type": "array", "items": {"type": "string"}},
        },
    },
    "ProductEdit": {
        "type": "object",
        "description": "Fields left out keep the product's current values; a new product needs "
        "an image (`image_url`, or a multipart `file`). An empty price clears it.",
        "properties": {
            "name": {"type": "string"},
            "category": {"type": "string"},
            "price": {"type": ["number", "string", "null"]},
            "image_url": {
                "type": "string",
                "description": "http(s) URL, or a path relative to the catalog folder.",
            },
        },
    },
    "ProductSaved": {
        "type": "object",
        "required": ["product", "created"],
        "properties": {"product": _ref("Product"), "created": {"type": "boolean"}},
    },
    "SyncReport": {
        "type": "object",
        "required": ["summary", "added", "updated", "removed", "unchanged", "failed", "seconds"],
        "properties": {
            "summary": {"type": "string"},
            "added": {"type": "integer"},
            "updated": {"type": "integer"},
            "removed": {"type": "integer"},
            "unchanged": {"type": "integer"},
            "failed": {"type": "integer"},
            "skipped_rows": {"type": "integer"},
            "failures": {"type": "array", "items": {"type": "object"}},
            "skipped": {"type": "array", "items": {"type": "object"}},
            "seconds": {"type": "number"},
        },
    },
    "Error": {
        "type": "object",
        "required": ["error", "message"],
        "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
    },
    "Ready": {
        "type": "object",
        "required": ["ready", "status", "random_weights"],
        "properties": {
            "ready": {"type": "boolean"},
            "status": {
                "type": "string",
                "enum": [
                    "ready",
                    "loading",
                    "nothing_searchable",
                    "index_damaged",
                    "store_unavailable",
                ],
            },
            "random_weights": {"type": "boolean"},
            "model": {"type": "string"},
            "catalog_size": {"type": "integer"},
            "indexed": {"type": "integer"},
            "skipped_rows": {"type": "integer"},
            "failed_images": {"type": "integer"},
            "skipped": {
                "type": "array",
                "description": "The first 20 rows of products.csv that were skipped, and why "
                "(with the admin token only).",
                "items": {
                    "type": "object",
                    "properties": {"row": {"type": "integer"}, "reason": {"type": "string"}},
                },
            },
            "failed": {
                "type": "array",
                "description": "The first 20 products whose image could not be indexed, and why "
                "(with the admin token only).",
                "items": {
                    "type": "object",
                    "properties": {"id": {"type": "string"}, "reason": {"type": "string"}},
                },
            },
            "problem": {
                "type": "string",
                "description": "What is wrong: an index on disk of another catalog or model "
                "(not loaded), damaged rows, a refused pack, a store that does not answer.",
            },
        },
    },
}


def _product_edit_body() -> dict[str, Any]:
    multipart = {
        "file": {
            "type": "string",
            "format": "binary",
            "description": "The product photo, kept in the catalog folder.",
        }
    }
    return {
        "required": True,
        "content": {
            "application/json": {"schema": _ref("ProductEdit")},
            "multipart/form-data": {"schema": {"allOf": [
                _ref("ProductEdit"), {"type": "object", "properties": multipart}]}},
        },
    }  # fmt: skip


_PRODUCT_ID = {"name": "product_id", "in": "path", "required": True, "schema": {"type": "string"}}
_FORMAT = {
    "name": "format", "in": "query", "schema": {"type": "string", "enum": ["json", "csv"]},
    "description": "csv: the results shown as a CSV download (formula cells neutralised).",
}  # fmt: skip


def _matches() -> dict[str, Any]:
    """A search's answer: JSON, or CSV with format=csv."""
    answer = _json(_ref("SearchResponse"), "Matches, best first")
    answer["content"]["text/csv"] = {"schema": {"type": "string"}}
    return answer


def openapi_document(settings: Settings) -> dict[str, Any]:
    """Describe every JSON route; defaults come from the running settings."""
    page_params = [
        {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "default": 1}},
        {"name": "per_page", "in": "query",
         "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE, "default": PER_PAGE}},
        _category(),
    ]  # fmt: skip
    paths = {
        "/api/search": {"post": {
            "summary": "Find the catalog products that look most like an image",
            "parameters": [_FORMAT],
            "requestBody": _search_body(settings),
            "responses": {"200": _matches()} | _errors(400, 413, 429),
        }},
        "/api/products/{product_id}/similar": {"get": {
            "summary": "More like this: the products closest to a catalog product",
            "parameters": [_PRODUCT_ID, *_options(settings), _FORMAT],
            "responses": {"200": _matches()} | _errors(400, 404),
        }},
        "/api/products": {"get": {
            "summary": "Browse the catalog, a page at a time",
            "parameters": page_params,
            "responses": {"200": _json(_ref("ProductPage"), "One page")} | _errors(400),
        }},
        "/api/openapi.json": {"get": {
            "summary": "This document",
            "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1 document")},
        }},
        "/images/{product_id}": {"get": {
            "summary": "A catalog product's image, served by this app",
            "parameters": [_PRODUCT_ID],
            "responses": {"200": {"description": "The image",
                                  "content": {"image/*": {"schema": {"type": "string",
                                                                     "format": "binary"}}}}}
            | _errors(404),
        }},
        "/api/admin/reindex": {"post": {
            "summary": "Re-read the catalog and embed what is new or changed (admin token)",
            "security": [{"adminToken": []}],
            "responses": {"200": _json(_ref("SyncReport"), "What the sync changed")}
            | _errors(401, 403),
        }},
        "/api/admin/products/{product_id}": {
            "put": {
                "summary": "Add or replace one product; searches see it at once (admin token)",
                "security": [{"adminToken": []}],
                "parameters": [_PRODUCT_ID],
                "requestBody": _product_edit_body(),
                "responses": {"200": _json(_ref("ProductSaved"), "Replaced"),
                              "201": _json(_ref("ProductSaved"), "Added")}
                | _errors(400, 401, 403, 413),
            },
            "delete": {
                "summary": "Delete one product from the catalog and the index (admin token)",
                "security": [{"adminToken": []}],
                "parameters": [_PRODUCT_ID],
                "responses": {"204": {"description": "Deleted"}} | _errors(401, 403, 404),
            },
        },
        "/healthz": {"get": {
            "summary": "Liveness: the process answers",
            "responses": {"200": _json({"type": "object"}, "Alive")},
        }},
        "/readyz": {"get": {
            "summary": "Readiness: the index is loaded and something is searchable; counts, failures",
            "responses": {"200": _json(_ref("Ready"), "Ready"),
                          "503": _json(_ref("Ready"), "Loading, nothing searchable, a damaged "
                                                      "index or a store that does not answer")},
        }},
    }  # fmt: skip
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Image similarity search",
            "version": "1.0.0",
            "description": "Visual product search over a catalog's image embeddings.",
        },
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"adminToken": {"type": "http", "scheme": "bearer"}},
        },
    }
