"""The HTML pages: search form, results, "more like this", catalog browser, catalog images."""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    current_app,
    make_response,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)

from ..errors import FetchError, ImageError, InvalidInput, NotFound, SearchAppError
from ..extensions import get_service
from ..images.decode import decode_image, image_format
from ..options import K_CHOICES, MAX_K, MIN_K, SearchOptions, parse_category, parse_text
from ..search import SearchResult, SearchService
from .errors import with_retry_after
from .params import paginate, parse_search_options, read_query_image, request_values
from .refine import THUMBNAIL_SIZE, Query, decode_query, encode_query, thumbnail_data_url

bp = Blueprint("pages", __name__)

IMAGE_MAX_AGE = 24 * 3600
MAX_TOKEN_CHARS = 64 * 1024
NO_IMAGE = "choose an image: pick a file, drop or paste one, or give an image URL"


@bp.app_context_processor
def site_context() -> dict[str, Any]:
    return {"random_weights": current_app.config["SETTINGS"].random_weights}


@bp.app_template_filter("sentence")
def sentence(text: str) -> str:
    """Turn an error message ("image is empty") into a sentence ("Image is empty.")."""
    text = text.strip()
    if not text:
        return text
    return text[0].upper() + text[1:] + ("" if text.endswith((".", "!", "?")) else ".")


@bp.app_template_filter("price_field")
def price_field(value: float | None) -> str:
    """A price as a form field shows it: "2.5", "3", or empty."""
    return "" if value is None else f"{value:g}"


@bp.get("/")
def index():
    return render_form({})


@bp.get("/search")
def search_again():
    """A reloaded or bookmarked results page: the search itself cannot be repeated by GET."""
    return redirect(url_for("pages.index"), 303)


@bp.post("/search")
def search():
    service = get_service()
    values: dict[str, Any] = {}
    try:
        values = request_values(request)
        options = parse_search_options(values, service, percent=True)
        query, result = run_query(service, values, options)
    except SearchAppError as error:
        if error.status >= 500:
            raise
        return with_retry_after(
            make_response(render_form(values, error.message, error.status)), error
        )
    token = encode_query(query, service.embedder.identity, current_app.secret_key)
    return render_results(result, options, query_image=query.thumbnail, token=token)


@bp.get("/products/<path:product_id>/similar")
def similar(product_id: str):
    service = get_service()
    product = service.catalog.get(product_id)
    if product is None:
        raise NotFound(f"there is no product {product_id!r} in the catalog")
    options = parse_search_options(request.args, service, percent=True)
    result = service.search_similar(product_id, options)
    return render_results(result, options, source=product)


@bp.get("/products")
def products():
    catalog = get_service().catalog
    category = parse_category(request.args.get("category"), catalog.categories)
    page = paginate(catalog, category, request.args)
    return render_template(
        "products.html", page=page, category=category, categories=catalog.categories
    )


@bp.get("/images/<path:product_id>")
def product_image(product_id: str):
    """Serve a catalog image from disk (a remote one from its cached copy), never hot-linked."""
    try:
        path = get_service().image_path(product_id)
        with path.open("rb") as handle:
            kind = image_format(handle.read(16))
    except (FetchError, ImageError, OSError):
        raise NotFound(f"the image of product {product_id!r} is not available") from None
    if kind is None:
        raise NotFound(f"the image of product {product_id!r} is not in an image format we serve")
    return send_file(
        path, mimetype=f"image/{kind.lower()}", max_age=IMAGE_MAX_AGE, conditional=True
    )


def run_query(
    service: SearchService, values: dict[str, Any], options: SearchOptions
) -> tuple[Query, SearchResult]:
    """Search with the new image if one came, else refine the signed earlier query."""
    data = read_query_image(request, values, service)
    if data is not None:
        # Decoded once, for the search and the thumbnail alike: decoding is the costly part.
        image = decode_image(data, min_size=max(service.embedder.min_decode_size, THUMBNAIL_SIZE))
        result = service.search_image(image, options)
        return Query(result.query, thumbnail_data_url(image)), result
    token = values.get("query")
    if not token:
        raise InvalidInput(NO_IMAGE)
    embedder = service.embedder
    query = decode_query(
        parse_text(token, "query", MAX_TOKEN_CHARS),
        embedder.identity,
        embedder.dim,
        current_app.secret_key,
    )
    return query, service.search_vector(query.vector, options)


def render_form(values: dict[str, Any], error: str | None = None, status: int = 200):
    """The search form, with the visitor's inputs kept when it comes back with an error."""
    settings = current_app.config["SETTINGS"]
    form = {
        "threshold": _field(values, "threshold", str(round(settings.similarity_threshold * 100))),
        "k": _field(values, "k", str(settings.top_k)),
        "category": _field(values, "category", ""),
        "min_price": _field(values, "min_price", ""),
        "max_price": _field(values, "max_price", ""),
        "image_url": _field(values, "image_url", ""),
    }
    page = render_template(
        "index.html",
        form=form,
        error=error,
        categories=get_service().catalog.categories,
        k_choices=k_choices(form["k"]),
    )
    return page, status


def render_results(result: SearchResult, options: SearchOptions, **context: Any):
    return render_template(
        "results.html",
        result=result,
        options=options,
        categories=get_service().catalog.categories,
        k_choices=k_choices(str(options.k)),
        **context,
    )


def k_choices(current: str) -> list[int]:
    """The top-k menu: the usual sizes, the default, and the one asked for."""
    choices = set(K_CHOICES) | {current_app.config["SETTINGS"].top_k}
    if current.isdecimal() and current.isascii() and MIN_K <= int(current) <= MAX_K:
        choices.add(int(current))
    return sorted(choices)


def _field(values: dict[str, Any], name: str, default: str) -> str:
    value = values.get(name)
    return value[:2048] if isinstance(value, str) else default
