"""Request parsing shared by the pages and the JSON API: every input is read and bounded here."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import Request, current_app
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge

from ..catalog import Product
from ..errors import InvalidInput, PayloadTooLarge
from ..options import SearchOptions, parse_options
from ..parsing import MAX_URL_CHARS, blank, parse_text
from ..search import SearchService

PER_PAGE = 24
MAX_PER_PAGE = 100


def request_values(request: Request) -> dict[str, Any]:
    """Query parameters overlaid with the body's fields (form or JSON object)."""
    return {**dict(request.args.items()), **request_body(request)}


def request_body(request: Request) -> dict[str, Any]:
    """The body's fields only (form or JSON object), for requests that change state."""
    try:
        if request.is_json:
            body = request.get_json()
            if not isinstance(body, dict):
                raise InvalidInput("the JSON body must be an object")
            return body
        form = request.form
        if None in form or None in request.files:
            raise InvalidInput("a part of the multipart body has no name; name every field")
        return dict(form.items())
    except RequestEntityTooLarge:
        raise upload_too_large() from None
    except BadRequest as error:
        raise InvalidInput(f"the request body could not be read: {error.description}") from None
    except RecursionError:
        # The JSON parser recurses per level: a body of 100,000 "[" exhausts the stack.
        raise InvalidInput("the JSON body is nested too deeply") from None


def parse_search_options(
    values: Mapping[str, Any], service: SearchService, *, percent: bool
) -> SearchOptions:
    """The search options in request values, over the served defaults (see `options`)."""
    return parse_options(
        values, service.settings.search_defaults, service.catalog.categories, percent=percent
    )


def parse_image_url(values: Mapping[str, Any]) -> str | None:
    """The image URL field, if filled in (the fetcher checks it further)."""
    raw = values.get("image_url")
    if blank(raw):
        return None
    url = parse_text(raw, "image_url", MAX_URL_CHARS)
    if not url.lower().startswith(("http://", "https://")):
        # s3:// is the shop's own storage, read with the server's credentials: never for a query.
        scheme = url.split(":", 1)[0].lower() if ":" in url else ""
        detail = f"; {scheme}:// addresses are not fetched" if scheme.isalnum() else ""
        raise InvalidInput(
            f"image_url must be an http:// or https:// address{detail}",
            plain=f"The image URL must be an http:// or https:// address{detail}",
        )
    return url


def read_query_image(
    request: Request, values: Mapping[str, Any], service: SearchService
) -> bytes | None:
    """The query image's bytes: the uploaded file, else the downloaded image_url, else None."""
    data = read_upload(request, service.settings.max_upload_bytes)
    if data is not None:
        return data
    url = parse_image_url(values)
    if url is None:
        return None
    return service.fetch_query_image(url)


def read_upload(request: Request, max_bytes: int) -> bytes | None:
    """The bytes of the uploaded `file` field, or None when no file was chosen."""
    try:
        upload = request.files.get("file")
    except RequestEntityTooLarge:
        raise upload_too_large() from None
    if upload is None or not upload.filename:
        return None
    data = upload.stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise upload_too_large()
    if not data:
        raise InvalidInput("the uploaded file is empty")
    return data


@dataclass(frozen=True)
class Page:
    """One page of catalog products (the page number clamped into the existing ones)."""

    products: list[Product]
    number: int
    per_page: int
    pages: int
    total: int


def paginate(products: list[Product], category: str | None, values: Mapping[str, Any]) -> Page:
    """The page of products asked for by `page` and `per_page`, optionally in one category."""
    products = [p for p in products if category is None or p.category == category]
    per_page = min(max(_int_or(values.get("per_page"), PER_PAGE), 1), MAX_PER_PAGE)
    pages = max(math.ceil(len(products) / per_page), 1)
    number = min(max(_int_or(values.get("page"), 1), 1), pages)
    start = (number - 1) * per_page
    return Page(products[start : start + per_page], number, per_page, pages, len(products))


def upload_too_large() -> PayloadTooLarge:
    limit = current_app.config["SETTINGS"].max_upload_mb
    return PayloadTooLarge(
        f"the upload is larger than the {limit:g} MB limit; choose a smaller image"
    )


def _int_or(raw: Any, default: int) -> int:
    """Lenient integer for pagination: anything unreadable means the default."""
    try:
        return int(str(raw))
    except ValueError:
        return default
