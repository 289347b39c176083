"""The HTML pages: search form, results, "more like this", catalog browser, catalog images."""

from __future__ import annotations

import re
import time
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

from ..catalog import Product
from ..errors import FetchError, ImageError, InvalidInput, NotFound, SearchAppError
from ..extensions import get_service
from ..images.decode import decode_image, image_format
from ..model import display_name, threshold_meaning
from ..options import (
    K_CHOICES,
    MAX_K,
    MIN_K,
    OPTION_FIELDS,
    SearchOptions,
    match_percent,
    parse_category,
)
from ..parsing import blank, parse_text
from ..search import SearchResult, SearchService
from .errors import with_retry_after
from .exports import results_csv, wants_csv
from .params import paginate, parse_search_options, read_query_image, request_values
from .refine import THUMBNAIL_SIZE, Query, decode_query, encode_query, thumbnail_data_url
from .saved_queries import SavedQueries
from .telemetry import describe_query, record_search

bp = Blueprint("pages", __name__)

# Request parameters, spelled in messages as clients send them.
PARAMETER_NAMES = {field.name for field in OPTION_FIELDS} | {"image_url", "file", "query"}

# An image URL carries its content's hash (?v=...): a new photo gets a new URL, so the old one
# may be cached for good. Without it, or with an outdated one, browsers revalidate each time.
IMMUTABLE_MAX_AGE = 365 * 24 * 3600
EXAMPLE_MAX_AGE = 24 * 3600  # the home page's shopper photos change only with a new release
MAX_TOKEN_CHARS = 64 * 1024
NO_IMAGE = "choose an image: pick a file or give an image URL"


@bp.app_context_processor
def site_context() -> dict[str, Any]:
    settings = current_app.config["SETTINGS"]
    embedder = get_service().loaded_embedder
    return {
        "random_weights": settings.random_weights,
        "model_name": display_name(embedder.name if embedder else settings.model),
        "model_identity": embedder.identity if embedder else settings.model,
        "model_head": bool(settings.model_head),
        "calibrated": settings.calibration is not None,
        "threshold_meaning": _threshold_meaning(settings),
        "currency": settings.currency,
        "max_upload_bytes": settings.max_upload_bytes,
        "max_upload_mb": settings.max_upload_mb,
    }


bp.add_app_template_filter(match_percent, "match_percent")


def _threshold_meaning(settings) -> str | None:
    """What the default minimum hides, as measured: the calibration's own words, else the
    model's measured cosine default (for the model alone: a head spreads them differently)."""
    if settings.calibration is not None:
        return settings.calibration.meaning()
    if settings.model_head:
        return None
    return threshold_meaning(settings.model, adapted=settings.adapter_served)


@bp.app_template_global()
def image_src(product: Product, **url_args: Any) -> str:
    """The URL of a product's image, with its content version when it is indexed."""
    version = get_service().image_version(product.id)
    args: dict[str, Any] = {"v": version} if version else {}
    return url_for("pages.product_image", product_id=product.id, **args, **url_args)


@bp.app_template_filter("money")
def money(value: float | None) -> str:
    """A price as the pages show it: "2.50", "€2.50" or "2.50 CHF" (CURRENCY), or a dash."""
    if value is None:
        return "—"
    amount = f"{value:.2f}"
    currency = current_app.config["SETTINGS"].currency
    if not currency:
        return amount
    return f"{amount}\u00a0{currency}" if currency[0].isalpha() else f"{currency}{amount}"


@bp.app_template_filter("sentence")
def sentence(text: str) -> str:
    """Turn an error message ("image is empty") into a sentence ("Image is empty.").

    A message that starts with a parameter ("k=0 must be...") keeps its spelling, as the API's.
    """
    text = text.strip()
    if not text:
        return text
    end = "" if text.endswith((".", "!", "?")) else "."
    first = re.match(r"[a-z_]+", text)
    if first and first.group() in PARAMETER_NAMES:
        return text + end
    return text[0].upper() + text[1:] + end


@bp.app_template_filter("price_field")
def price_field(value: float | None) -> str:
    """A price as a form field shows it: "2.5", "3", or empty."""
    return "" if value is None else f"{value:g}"


@bp.get("/")
def index():
    return render_form({})


@bp.get("/search")
def search_again():
    """A refined or shared search: the saved query `query=<id>` with the options given.

    Without one (the address of a search that was POSTed, reloaded), the search form. A GET
    never fetches an image URL: a link must not make the server download anything.
    """
    if blank(request.args.get("query")):
        return redirect(url_for("pages.index"), 303)
    return _search(lambda: {k: v for k, v in request.args.items() if k != "image_url"})


@bp.post("/search")
def search():
    return _search(lambda: request_values(request))


def _search(read_values):
    """Search with the request's image or earlier query; an error comes back on the form, with
    the visitor's inputs and the earlier query's photo kept."""
    service = get_service()
    values: dict[str, Any] = {}
    try:
        values = read_values()
        options = parse_search_options(values, service, percent=True)
        as_csv = wants_csv(values)
        query, query_id, result = run_query(service, values, options)
    except SearchAppError as error:
        if error.status >= 500:
            raise
        page = render_form(values, error.plain, error.status, kept=kept_query(service, values))
        return with_retry_after(make_response(page), error)
    record_search(result, "page", *describe_query(request, values))
    if as_csv:
        return results_csv(result)
    query_id = query_id or saved_queries().save(query, service.embedder.identity)
    return render_results(
        result, options, query_image=query.thumbnail, refine=refine_form(query, query_id)
    )


def saved_queries() -> SavedQueries:
    settings = current_app.config["SETTINGS"]
    return SavedQueries(settings.cache_dir / "queries", secret_key())


def secret_key() -> str | bytes:
    """The app's SECRET_KEY, which the security setup always gives it."""
    key = current_app.secret_key
    if key is None:
        raise RuntimeError("the app has no SECRET_KEY: create it with create_app")
    return key


def refine_form(query: Query, query_id: str | None) -> dict[str, str]:
    """How the results page's form refines: a GET of the saved query's link, or, when it could
    not be saved (CACHE_DIR not writable), a POST of a signed token holding the query."""
    if query_id is not None:
        return {"method": "get", "query": query_id}
    embedder = get_service().embedder
    return {
        "method": "post",
        "query": encode_query(query, embedder.identity, secret_key()),
    }


@bp.get("/examples/<example_id>")
def example_search(example_id: str):
    """Search with one of the shopper photos on the home page (a link: works without JS)."""
    service = get_service()
    example, _ = service.example(example_id)
    options = parse_search_options(request.args, service, percent=True)
    _, result = service.search_example(example_id, options)
    record_search(result, "page", "example", example_id)
    return render_results(
        result,
        options,
        query_image=url_for("pages.example_image", example_id=example_id),
        example=example,
        example_product=service.catalog.get(example.product_id or ""),
    )


@bp.get("/examples/<example_id>/image")
def example_image(example_id: str):
    _, path = get_service().example(example_id)
    response = _send_image(path, f"example photo {example_id!r}")
    response.cache_control.max_age = EXAMPLE_MAX_AGE
    return response


@bp.get("/products/<path:product_id>/similar")
def similar(product_id: str):
    service = get_service()
    product = service.catalog.get(product_id)
    if product is None:
        raise NotFound(f"there is no product {product_id!r} in the catalog")
    options = parse_search_options(request.args, service, percent=True)
    as_csv = wants_csv(request.args)
    result = service.search_similar(product_id, options)
    record_search(result, "page", "similar", product_id)
    if as_csv:
        return results_csv(result)
    return render_results(result, options, source=product)


@bp.get("/products")
def products():
    """The searchable products (those whose image could not be indexed are left out)."""
    service = get_service()
    snapshot = service.current()
    category = parse_category(request.args.get("category"), snapshot.catalog.categories)
    page = paginate(snapshot.searchable, category, request.args)
    return render_template(
        "products.html", page=page, category=category, categories=snapshot.categories
    )


@bp.get("/images/<path:product_id>")
def product_image(product_id: str):
    """Serve a catalog image from disk (a remote one from its cached copy), never hot-linked."""
    service = get_service()
    try:
        path = service.image_path(product_id)
    except (FetchError, ImageError, OSError):
        raise NotFound(f"the image of product {product_id!r} is not available") from None
    response = _send_image(path, f"the image of product {product_id!r}")
    version = request.args.get("v")
    if version and service.is_indexed_image(product_id, version, path):
        response.cache_control.max_age = IMMUTABLE_MAX_AGE
        response.cache_control.public = True
        response.cache_control.immutable = True
        response.expires = None
    else:
        response.cache_control.no_cache = True
    return response


def _send_image(path, subject: str):
    """Serve an image file with its own type; anything else is a 404 naming `subject`."""
    try:
        with path.open("rb") as handle:
            kind = image_format(handle.read(16))
    except OSError:
        raise NotFound(f"{subject} is not available") from None
    if kind is None:
        raise NotFound(f"{subject} is not in an image format we serve")
    return send_file(path, mimetype=f"image/{kind.lower()}", max_age=0, conditional=True)


def run_query(
    service: SearchService, values: dict[str, Any], options: SearchOptions
) -> tuple[Query, str | None, SearchResult]:
    """Search with the new image if one came, else refine the earlier query (with its saved
    id, if it came as one)."""
    data = read_query_image(request, values, service)
    if data is not None:
        # Decoded once, for the search and the thumbnail alike: decoding is the costly part.
        started = time.perf_counter()
        image = decode_image(data, min_size=max(service.embedder.min_decode_size, THUMBNAIL_SIZE))
        result = service.search_image(image, options, decoding_started=started)
        assert result.query is not None  # a search by image carries its embedding
        return Query(result.query, thumbnail_data_url(image)), None, result
    query, query_id = earlier_query(service, values)
    return query, query_id, service.search_vector(query.vector, options)


def earlier_query(service: SearchService, values: dict[str, Any]) -> tuple[Query, str | None]:
    """The query the form carries: a saved query's id, or a signed token (see refine_form)."""
    raw = values.get("query")
    if blank(raw):
        raise InvalidInput(NO_IMAGE)
    text = parse_text(raw, "query", MAX_TOKEN_CHARS)
    embedder = service.embedder
    if SavedQueries.is_id(text):
        return saved_queries().load(text, embedder.identity, embedder.dim), text
    return decode_query(text, embedder.identity, embedder.dim, secret_key()), None


def kept_query(service: SearchService, values: dict[str, Any]) -> dict[str, str] | None:
    """The earlier query's photo and reference, for a form that comes back with an error."""
    try:
        query, _ = earlier_query(service, values)
    except SearchAppError:
        return None
    return {"query": values["query"].strip(), "thumbnail": query.thumbnail}


def render_form(
    values: dict[str, Any],
    error: str | None = None,
    status: int = 200,
    kept: dict[str, str] | None = None,
):
    """The search form, with the visitor's inputs (and earlier photo) kept after an error."""
    settings = current_app.config["SETTINGS"]
    form = {
        "threshold": _field(values, "threshold", str(settings.search_defaults.percent)),
        "k": _field(values, "k", str(settings.top_k)),
        "category": _field(values, "category", ""),
        "min_price": _field(values, "min_price", ""),
        "max_price": _field(values, "max_price", ""),
        "image_url": _field(values, "image_url", ""),
    }
    service = get_service()
    catalog = service.catalog
    examples = [(e, catalog.get(e.product_id or "")) for e in service.examples()]
    page = render_template(
        "index.html",
        form=form,
        error=error,
        categories=get_service().current().categories,
        k_choices=k_choices(form["k"]),
        examples=examples,
        kept=kept,
    )
    return page, status


def render_results(result: SearchResult, options: SearchOptions, **context: Any):
    return render_template(
        "results.html",
        result=result,
        options=options,
        categories=get_service().current().categories,
        k_choices=k_choices(str(options.k)),
        share_url=share_url(options, **context),
        **context,
    )


def share_url(
    options: SearchOptions,
    source: Product | None = None,
    example: Any = None,
    refine: dict[str, str] | None = None,
    **_: Any,
) -> str | None:
    """The address that shows these results again, to anyone; None for an unsaved upload."""
    args = options.query_args()
    if source is not None:
        return url_for("pages.similar", product_id=source.id, **args)
    if example is not None:
        return url_for("pages.example_search", example_id=example.id, **args)
    if refine is not None and refine["method"] == "get":
        return url_for("pages.search_again", query=refine["query"], **args)
    return None


def k_choices(current: str) -> list[int]:
    """The top-k menu: the usual sizes, the default, and the one asked for."""
    choices = set(K_CHOICES) | {current_app.config["SETTINGS"].top_k}
    if current.isdecimal() and current.isascii() and MIN_K <= int(current) <= MAX_K:
        choices.add(int(current))
    return sorted(choices)


def _field(values: dict[str, Any], name: str, default: str) -> str:
    value = values.get(name)
    return value[:2048] if isinstance(value, str) else default
