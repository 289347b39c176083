"""Request limits, the secret key and the security headers every response carries."""

from __future__ import annotations

import hmac
import logging
import secrets
from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response, current_app, request

from ..config import Settings
from ..config.server import server_value
from ..errors import EndpointDisabled, Unauthorized

log = logging.getLogger(__name__)

# Form fields other than files: the URL, a few options and the signed query of a refinement.
MAX_FORM_MEMORY_SIZE = 256 * 1024
MAX_FORM_PARTS = 20
# Room for the multipart framing and the small fields next to an upload of the largest size.
FORM_OVERHEAD_BYTES = MAX_FORM_MEMORY_SIZE

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "img-src 'self' data: blob:",
        "script-src 'self'",
        "style-src 'self'",
        "object-src 'none'",
        "frame-ancestors 'none'",
        "base-uri 'self'",
        "form-action 'self'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


# Always answered, so that the container's own health check (127.0.0.1) passes.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def init_app(app: Flask, settings: Settings) -> None:
    """Set the request limits, trusted hosts and secret key; add the headers to every response."""
    app.config["MAX_CONTENT_LENGTH"] = settings.max_upload_bytes + FORM_OVERHEAD_BYTES
    if settings.trusted_hosts:
        # Flask refuses any other Host with a 400 before routing (TRUSTED_HOSTS).
        names = [name.strip() for name in settings.trusted_hosts.split(",") if name.strip()]
        app.config["TRUSTED_HOSTS"] = [*names, *LOOPBACK_HOSTS]
    app.config["MAX_FORM_MEMORY_SIZE"] = MAX_FORM_MEMORY_SIZE
    app.config["MAX_FORM_PARTS"] = MAX_FORM_PARTS
    if not app.config.get("SECRET_KEY"):
        key = server_value("SECRET_KEY") or ""
        app.config["SECRET_KEY"] = key or secrets.token_urlsafe(32)
        if not key:
            # Said when the server answers its first request, not by every CLI command.
            app.before_request(_warn_once_about_secret_key)
    app.after_request(add_security_headers)
    app.after_request(keep_host_out_of_location)


_warned = False


def _warn_once_about_secret_key() -> None:
    global _warned
    if not _warned:
        _warned = True
        log.warning(
            "SECRET_KEY is not set: using a random key for this process, so refining a search "
            "fails after a restart or on another server process; set SECRET_KEY to fix this"
        )


def public_url(path: str) -> str:
    """An app path ("/images/p1") as handed to clients: on PUBLIC_BASE_URL, else relative.

    Never built from the request's Host header, which a client chooses (cache poisoning).
    """
    base = current_app.config["SETTINGS"].public_base_url
    return f"{base}{path}" if base else path


def keep_host_out_of_location(response: Response) -> Response:
    """Rewrite a redirect built on the request's Host (the router's, for "//products")."""
    location = response.headers.get("Location")
    if location:
        target = urlsplit(location)
        if target.netloc and target.netloc == request.host:
            path = target.path + (f"?{target.query}" if target.query else "")
            response.headers["Location"] = public_url(path)
    return response


def add_security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def presents_token(token: str, *, basic: bool = False) -> bool:
    """Whether the request carries `token`: as a Bearer token, or (`basic`) as a Basic password.

    Compared in constant time, as bytes, so that any header compares (compare_digest refuses
    non-ASCII text).
    """
    auth = request.authorization
    given = None
    if auth is not None and auth.type == "bearer":
        given = auth.token
    elif auth is not None and auth.type == "basic" and basic:
        given = auth.password
    return given is not None and hmac.compare_digest(
        given.strip().encode("utf-8", "surrogateescape"), token.encode("utf-8")
    )


def require_token(
    bp: Blueprint, setting: str, *, realm: str, off: str, how: str, basic: bool = False
) -> None:
    """Guard every route of `bp` with the token in the setting named `setting`.

    An unset token turns the routes off (403, `off`); a request without it gets 401 (`how`) with
    the challenge for `realm`: Bearer, or Basic when a browser may sign in (`basic`). Answers
    are never cached.
    """
    scheme = "Basic" if basic else "Bearer"
    challenge = f'{scheme} realm="{realm}"' + (', charset="UTF-8"' if basic else "")

    @bp.before_request
    def check_token() -> None:
        token = getattr(current_app.config["SETTINGS"], setting)
        if not token:
            raise EndpointDisabled(off)
        if not presents_token(token, basic=basic):
            raise Unauthorized(how)

    @bp.after_request
    def add_challenge(response: Response) -> Response:
        if response.status_code == 401:
            response.headers["WWW-Authenticate"] = challenge
        response.headers["Cache-Control"] = "no-store"
        return response
