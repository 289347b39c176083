"""Request parsing shared by the pages and the JSON API: every input is read and bounded here."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import Request, current_app
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge

from .catalog import Catalog, Product
from .config import Settings
from .errors import InvalidInput, PayloadTooLarge
from .fetch import fetch

K_CHOICES = (6, 12, 24, 48)
MAX_K = 100
MAX_URL_CHARS = 2048
MAX_TEXT_CHARS = 200
PER_PAGE = 24
MAX_PER_PAGE = 100


@dataclass(frozen=True)
class SearchOptions:
    """Validated search options; threshold is a cosine similarity in [0, 1]."""

    threshold: float
    k: int
    category: str | None

    @property
    def percent(self) -> int:
        return round(self.threshold * 100)

    def kwargs(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "k": self.k, "category": self.category}

    def query_args(self) -> dict[str, Any]:
        """The options as page query parameters (threshold in percent), for shareable links."""
        args: dict[str, Any] = {"threshold": self.percent, "k": self.k}
        if self.category:
            args["category"] = self.category
        return args


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
        return dict(request.form.items())
    except RequestEntityTooLarge:
        raise upload_too_large() from None
    except BadRequest as error:
        raise InvalidInput(f"the request body could not be read: {error.description}") from None


def parse_search_options(
    values: Mapping[str, Any], settings: Settings, categories: list[str], *, percent: bool
) -> SearchOptions:
    """Read threshold (0-1, or 0-100 when `percent`), k (1-100) and category from values."""
    return SearchOptions(
        threshold=parse_threshold(values.get("threshold"), settings.similarity_threshold, percent),
        k=parse_int(values.get("k"), "k", settings.top_k, 1, MAX_K),
        category=parse_category(values.get("category"), categories),
    )


def parse_threshold(raw: Any, default: float, percent: bool) -> float:
    if _blank(raw):
        return default
    scale, top = (100.0, "100") if percent else (1.0, "1")
    number = _number(raw, "threshold")
    if not 0.0 <= number <= scale:
        raise InvalidInput(f"threshold={raw!s:.20} must be between 0 and {top}")
    return number / scale


def parse_int(raw: Any, name: str, default: int, low: int, high: int) -> int:
    if _blank(raw):
        return default
    number = _number(raw, name)
    if not number.is_integer() or not low <= number <= high:
        raise InvalidInput(f"{name}={raw!s:.20} must be a whole number from {low} to {high}")
    return int(number)


def parse_category(raw: Any, categories: list[str]) -> str | None:
    if _blank(raw):
        return None
    category = parse_text(raw, "category", MAX_TEXT_CHARS)
    if category not in categories:
        raise InvalidInput(f"category {category!r} is not in the catalog")
    return category


def parse_text(raw: Any, name: str, max_chars: int) -> str:
    if not isinstance(raw, str):
        raise InvalidInput(f"{name} must be a string")
    text = raw.strip()
    if len(text) > max_chars:
        raise InvalidInput(f"{name} is longer than {max_chars} characters")
    if any(ord(char) < 32 for char in text):
        raise InvalidInput(f"{name} contains control characters")
    return text


def parse_image_url(values: Mapping[str, Any]) -> str | None:
    """The image URL field, if filled in (the fetcher checks it further)."""
    raw = values.get("image_url")
    if _blank(raw):
        return None
    url = parse_text(raw, "image_url", MAX_URL_CHARS)
    if not url.lower().startswith(("http://", "https://")):
        raise InvalidInput("image_url must be an http:// or https:// address")
    return url


def read_query_image(request: Request, values: Mapping[str, Any], service) -> bytes | None:
    """The query image's bytes: the uploaded file, else the downloaded image_url, else None."""
    data = read_upload(request, service.settings.max_upload_bytes)
    if data is not None:
        return data
    url = parse_image_url(values)
    if url is None:
        return None
    return fetch(url, service.locator.fetch_policy).content


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


def paginate(catalog: Catalog, category: str | None, values: Mapping[str, Any]) -> Page:
    """The page of products asked for by `page` and `per_page`, optionally in one category."""
    products = [p for p in catalog.products.values() if category is None or p.category == category]
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


def _number(raw: Any, name: str) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise InvalidInput(f"{name} must be a number")
    try:
        number = float(raw)
    except ValueError:
        raise InvalidInput(f"{name}={raw!s:.20} is not a number") from None
    if not math.isfinite(number):
        raise InvalidInput(f"{name} must be a finite number")
    return number


def _int_or(raw: Any, default: int) -> int:
    """Lenient integer for pagination: anything unreadable means the default."""
    try:
        return int(str(raw))
    except ValueError:
        return default


def _blank(raw: Any) -> bool:
    return raw is None or (isinstance(raw, str) and not raw.strip())
