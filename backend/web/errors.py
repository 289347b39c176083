"""Render every error once: JSON for API clients, a page in the site's style otherwise."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, make_response, render_template, request
from werkzeug.exceptions import HTTPException, InternalServerError

from ..errors import SearchAppError
from .dataschema import as_json
from .shapes import Error

log = logging.getLogger(__name__)

# Paths that always answer JSON, whatever the client accepts.
JSON_PREFIXES = ("/api/", "/healthz", "/readyz", "/metrics")
GENERIC_500 = "something went wrong on our side; please try again"
RETRY_AFTER_SECONDS = 5  # a 503 (vector store away) is worth retrying soon
# Where the nginx front sends a request it refused for its size (error_page 413), so that the
# answer is the app's own: the page in the site's style, or JSON by Accept (the front asks for
# JSON for /api/ requests).
TOO_LARGE_PATH = "/errors/too-large"


def init_app(app: Flask) -> None:
    """Answer every error as JSON for API clients and as a page in the site's style otherwise."""
    app.register_error_handler(SearchAppError, _domain_error)
    app.register_error_handler(HTTPException, _http_error)
    app.add_url_rule(TOO_LARGE_PATH, endpoint="too_large", view_func=_too_large)


def wants_json() -> bool:
    if request.path.startswith(JSON_PREFIXES):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def error_response(status: int, code: str, message: str, plain: str | None = None) -> Response:
    """Render one error, as `{"error": code, "message": ...}` or as the HTML error page (with
    the `plain` wording, for people, where the message names request parameters)."""
    if wants_json():
        return make_response(jsonify(as_json(Error(error=code, message=message))), status)
    text = plain or message
    return make_response(
        render_template("error.html", status=status, code=code, message=text), status
    )


def _too_large() -> Response:
    """The answer to an upload over the limit, for the front to show in place of its own."""
    from .params import upload_too_large

    raise upload_too_large()


def _domain_error(error: SearchAppError) -> Response:
    if error.status >= 500:
        # Server-side details (paths, settings) are for the operator's log, not the visitor.
        log.error("%s: %s", error.code, error.message)
        response = error_response(error.status, error.code, error.public_message or GENERIC_500)
        if error.status == 503:
            response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    response = error_response(error.status, error.code, error.message, error.plain)
    return with_retry_after(response, error)


def with_retry_after(response: Response, error: SearchAppError) -> Response:
    """Tell a client turned away for load when to come back (RFC 9110 Retry-After)."""
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


def _http_error(error: HTTPException) -> Response:
    status = error.code or 500
    if isinstance(error, InternalServerError):
        original = getattr(error, "original_exception", None)
        if original is not None:
            log.error("unhandled error on %s %s", request.method, request.path, exc_info=original)
        return error_response(500, "internal_error", GENERIC_500)
    code = HTTP_CODES.get(status, (error.name or "error").lower().replace(" ", "_"))
    message = HTTP_MESSAGES.get(status, error.description or error.name)
    response = error_response(status, code, message)
    for name, value in error.get_headers():
        if name.lower() != "content-type":  # e.g. Allow on a 405
            response.headers[name] = value
    return response


HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
}
HTTP_MESSAGES = {
    404: "there is nothing at this address; it may have moved, or the link is mistyped",
    405: "this address does not accept that kind of request",
    413: "the request is larger than this server accepts; choose a smaller image",
}
