"""Request limits, the secret key and the security headers every response carries."""

from __future__ import annotations

import logging
import os
import secrets

from flask import Flask, Response

from .config import Settings

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


def init_app(app: Flask, settings: Settings) -> None:
    """Set the request limits and the secret key, and add the headers to every response."""
    app.config["MAX_CONTENT_LENGTH"] = settings.max_upload_bytes + FORM_OVERHEAD_BYTES
    app.config["MAX_FORM_MEMORY_SIZE"] = MAX_FORM_MEMORY_SIZE
    app.config["MAX_FORM_PARTS"] = MAX_FORM_PARTS
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = secret_key()
    app.after_request(add_security_headers)


def secret_key() -> str:
    """The SECRET_KEY from the environment, or a random one for this process only."""
    key = os.environ.get("SECRET_KEY", "").strip()
    if key:
        return key
    log.warning(
        "SECRET_KEY is not set: using a random key for this process, so refining a search "
        "fails after a restart or on another server process; set SECRET_KEY to fix this"
    )
    return secrets.token_urlsafe(32)


def add_security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response
