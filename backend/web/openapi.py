"""The OpenAPI 3 description of the JSON API (a test keeps it in step with the routes).

The component schemas are derived from the shapes the routes send (`shapes`); each operation's
error answers from the errors it can raise, by their status.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from werkzeug.exceptions import HTTPException, RequestedRangeNotSatisfiable

from ..config import Settings
from ..errors import (
    Busy,
    CatalogNotWritable,
    CatalogReadOnly,
    EndpointDisabled,
    FetchError,
    ImageError,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    SearchAppError,
    Unauthorized,
)
from ..options import OPTION_FIELDS, OptionField
from ..parsing import MAX_TEXT_CHARS, MAX_URL_CHARS
from ..stores.base import StoreError
from .dataschema import ref, schema_of
from .errors import HTTP_CODES, JSON_PREFIXES
from .params import MAX_PER_PAGE, PER_PAGE
from .shapes import ProductEdit, schemas

# What a text field may hold: one line, no control characters (see `parsing.parse_text`).
ONE_LINE = "^[^\\u0000-\\u001f\\u007f]*$"
STATUS_REASONS = {
    400: "Invalid input, or an image that cannot be read or fetched",
    401: "Missing or wrong admin token",
    403: "The admin API is disabled (no ADMIN_TOKEN on the server)",
    404: "No such product",
    409: "The catalog is read from S3 and cannot be edited here",
    413: "The upload is too large",
    416: "The requested byte range is outside the image",
    429: "The server is busy with other images; retry after `Retry-After` seconds",
    500: "The catalog's files cannot be written (the server log says why)",
    503: "The vector store does not answer; retry after `Retry-After` seconds",
}
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}}
Raised = type[SearchAppError] | type[HTTPException]
# Errors met by every route that reads the index: the vector store away, and on first use (the
# index synced then) a catalog on S3 that cannot be read.
READS_INDEX: tuple[Raised, ...] = (StoreError, FetchError)
ADMIN = (Unauthorized, EndpointDisabled)
SEARCH_INPUT = (InvalidInput, FetchError, ImageError)
IMAGE_INPUT = (*SEARCH_INPUT, PayloadTooLarge, Busy)
EDITS = (CatalogReadOnly, CatalogNotWritable)


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _status_and_code(error: Raised) -> tuple[int, str]:
    """The status and the `error` code an error is answered with (see `errors`)."""
    if issubclass(error, SearchAppError):
        return error.status, error.code
    status = error.code or 500
    return status, HTTP_CODES.get(status, error().name.lower().replace(" ", "_"))


def _errors(path: str, *raised: Raised) -> dict[str, Any]:
    """The error answers of an operation, one per status of the errors it raises, each naming
    the codes it may carry. Off the JSON paths an error follows Accept: HTML or JSON."""
    codes: dict[int, list[str]] = defaultdict(list)
    for error in raised:
        status, code = _status_and_code(error)
        if code not in codes[status]:
            codes[status].append(code)
    answers = {}
    for status in sorted(codes):
        named = ", ".join(f"`{code}`" for code in codes[status])
        answer = _json(ref("Error"), f"{STATUS_REASONS[status]} ({named})")
        if not path.startswith(JSON_PREFIXES):
            answer["content"]["text/html"] = {"schema": {"type": "string"}}
        if status in (429, 503):
            answer["headers"] = RETRY_AFTER
        answers[str(status)] = answer
    return answers


def _option_schema(field: OptionField, settings: Settings) -> dict[str, Any]:
    """The JSON schema of one search option, its default the running server's."""
    schema: dict[str, Any] = {"type": {int: "integer", float: "number", str: "string"}[field.kind]}
    if field.kind is str:
        schema |= {"maxLength": MAX_TEXT_CHARS, "pattern": ONE_LINE}
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
        {
            "name": field.name,
            "in": "query",
            "description": field.description,
            "schema": _option_schema(field, settings),
        }
        for field in OPTION_FIELDS
    ]


def _category(settings: Settings) -> dict[str, Any]:
    (category,) = (field for field in OPTION_FIELDS if field.name == "category")
    return {
        "name": "category",
        "in": "query",
        "description": category.description,
        "schema": _option_schema(category, settings),
    }


def _page_params(settings: Settings) -> list[dict[str, Any]]:
    """Paging is lenient, as for the catalog pages: a number out of range is brought into range,
    and anything that is not a whole number means the default."""
    lenient = "; out of range: the nearest; not a whole number: the default"
    return [
        {
            "name": "page",
            "in": "query",
            "description": f"From 1{lenient}.",
            "schema": {"type": ["integer", "string"], "default": 1},
        },
        {
            "name": "per_page",
            "in": "query",
            "description": f"From 1 to {MAX_PER_PAGE}{lenient}.",
            "schema": {"type": ["integer", "string"], "default": PER_PAGE},
        },
        _category(settings),
    ]


def _search_body(settings: Settings) -> dict[str, Any]:
    fields = {
        field.name: _option_schema(field, settings) | {"description": field.description}
        for field in OPTION_FIELDS
    }
    fields["image_url"] = {
        "type": "string",
        "format": "uri",
        "maxLength": MAX_URL_CHARS,
        "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://",
        "description": "A public http(s) image, downloaded by the server: one it cannot fetch "
        "or read is a 400.",
    }
    # With a file, image_url is not read at all: any text goes.
    unread = {"type": "string", "description": "Read only when no `file` is sent."}
    multipart = {"file": {"type": "string", "format": "binary"}} | fields | {"image_url": unread}
    return {
        "required": True,
        "content": {
            "multipart/form-data": {"schema": {"type": "object", "properties": multipart}},
            "application/json": {
                "schema": {"type": "object", "properties": fields, "required": ["image_url"]}
            },
        },
    }


def _product_edit_body() -> dict[str, Any]:
    """The fields of a product edit, as JSON or as a multipart form that may carry the photo;
    no field at all keeps the product as it is."""
    edit = schema_of(ProductEdit)
    photo = {
        "type": "string",
        "format": "binary",
        "description": "The product photo, kept in the catalog folder.",
    }
    multipart = edit | {"properties": edit["properties"] | {"file": photo}}
    return {
        "required": False,
        "content": {
            "application/json": {"schema": ref(ProductEdit.__name__)},
            "multipart/form-data": {"schema": multipart},
        },
    }


# A product id is one line of text (see `catalog.edits`); one that starts with a slash would be
# another address (the router merges the slashes).
_PRODUCT_ID = {
    "name": "product_id",
    "in": "path",
    "required": True,
    "schema": {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_TEXT_CHARS,
        "pattern": "^[^/\\u0000-\\u001f\\u007f][^\\u0000-\\u001f\\u007f]*$",
    },
}
_FORMAT = {
    "name": "format",
    "in": "query",
    "schema": {"type": "string", "enum": ["json", "csv"]},
    "description": "csv: the results shown as a CSV download (formula cells neutralised).",
}
_ADMIN: dict[str, Any] = {"security": [{"adminToken": []}]}


def _matches() -> dict[str, Any]:
    """A search's answer: JSON, or CSV with format=csv."""
    answer = _json(ref("SearchResponse"), "Matches, best first")
    answer["content"]["text/csv"] = {"schema": {"type": "string"}}
    return answer


def _image() -> dict[str, Any]:
    binary = {"schema": {"type": "string", "format": "binary"}}
    return {
        "200": {"description": "The image", "content": {"image/*": binary}},
        "206": {"description": "The byte range asked for (Range)", "content": {"image/*": binary}},
        "304": {"description": "Not modified since the copy the client holds"},
    }


def _paths(settings: Settings) -> dict[str, Any]:
    """Every operation, its error answers derived from what it raises (`raises`)."""
    paths = _operations(settings)
    for path, item in paths.items():
        for operation in item.values():
            operation["responses"] |= _errors(path, *operation.pop("raises", ()))
    return paths


def _operations(settings: Settings) -> dict[str, Any]:
    return {
        "/api/search": {
            "post": {
                "summary": "Find the catalog products that look most like an image",
                "parameters": [_FORMAT],
                "requestBody": _search_body(settings),
                "responses": {"200": _matches()},
                "raises": (*IMAGE_INPUT, *READS_INDEX),
            }
        },
        "/api/products/{product_id}/similar": {
            "get": {
                "summary": "More like this: the products closest to a catalog product",
                "parameters": [_PRODUCT_ID, *_options(settings), _FORMAT],
                "responses": {"200": _matches()},
                "raises": (InvalidInput, NotFound, *READS_INDEX),
            }
        },
        "/api/products": {
            "get": {
                "summary": "Browse the catalog, a page at a time",
                "parameters": _page_params(settings),
                "responses": {"200": _json(ref("ProductPage"), "One page")},
                "raises": (InvalidInput, *READS_INDEX),
            }
        },
        "/api/openapi.json": {
            "get": {
                "summary": "This document",
                "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1 document")},
            }
        },
        "/images/{product_id}": {
            "get": {
                "summary": "A catalog product's image, served by this app",
                "parameters": [_PRODUCT_ID],
                "responses": _image(),
                "raises": (NotFound, RequestedRangeNotSatisfiable, *READS_INDEX),
            }
        },
        "/api/admin/reindex": {
            "post": _ADMIN
            | {
                "summary": "Re-read the catalog and embed what is new or changed (admin token)",
                "responses": {"200": _json(ref("SyncReport"), "What the sync changed")},
                "raises": (*ADMIN, *READS_INDEX),
            }
        },
        "/api/admin/products/{product_id}": {
            "put": _ADMIN
            | {
                "summary": "Add or replace one product; searches see it at once (admin token)",
                "parameters": [_PRODUCT_ID],
                "requestBody": _product_edit_body(),
                "responses": {
                    "200": _json(ref("ProductSaved"), "Replaced"),
                    "201": _json(ref("ProductSaved"), "Added"),
                },
                # NotFound: an id the router cannot take (a line break in it).
                "raises": (*ADMIN, *IMAGE_INPUT, NotFound, *EDITS, *READS_INDEX),
            },
            "delete": _ADMIN
            | {
                "summary": "Delete one product from the catalog and the index (admin token)",
                "parameters": [_PRODUCT_ID],
                "responses": {"204": {"description": "Deleted"}},
                "raises": (*ADMIN, NotFound, *EDITS, *READS_INDEX),
            },
        },
        "/healthz": {
            "get": {
                "summary": "Liveness: the process answers",
                "responses": {"200": _json(ref("Health"), "Alive")},
            }
        },
        "/readyz": {
            "get": {
                "summary": "Readiness: the index is loaded and something is searchable; counts, failures",
                "responses": {
                    "200": _json(ref("Ready"), "Ready"),
                    "503": _json(
                        ref("Ready"),
                        "Loading, nothing searchable, a damaged "
                        "index or a store that does not answer",
                    ),
                },
            }
        },
    }


def openapi_document(settings: Settings) -> dict[str, Any]:
    """Describe every JSON route; defaults come from the running settings."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Image similarity search",
            "version": "1.0.0",
            "description": "Visual product search over a catalog's image embeddings.",
        },
        "paths": _paths(settings),
        "components": {
            "schemas": schemas(),
            "securitySchemes": {"adminToken": {"type": "http", "scheme": "bearer"}},
        },
    }
