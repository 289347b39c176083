"""The bounds of single settings that a number range or a list of choices cannot say."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

MIN_ADMIN_TOKEN_CHARS = 16
MAX_SEARCH_LOG_DAYS = 3660
MIN_SEARCH_LOG_MB, MAX_SEARCH_LOG_MB = 1, 1_000_000
MAX_CURRENCY_CHARS = 8
MODEL_RUNTIMES = ("onnx", "torch")
VECTOR_BACKENDS = ("memory", "faiss", "pgvector", "mysql", "milvus")


def not_a_folder(variable: str, path: Path) -> str | None:
    if path.is_dir():
        return f"{variable}={str(path)!r} is a folder; give the path of a file in it"
    return None


def token(variable: str, value: str) -> str | None:
    """A bearer token long enough not to be guessed (never shown)."""
    if len(value) < MIN_ADMIN_TOKEN_CHARS:
        return (
            f"{variable} must be at least {MIN_ADMIN_TOKEN_CHARS} characters; generate one with "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`, or unset it"
        )
    return None


def search_log_size(variable: str, megabytes: float) -> str | None:
    if megabytes == 0 or MIN_SEARCH_LOG_MB <= megabytes <= MAX_SEARCH_LOG_MB:
        return None
    return (
        f"{variable}={megabytes:g} must be 0 (no size bound) or {MIN_SEARCH_LOG_MB} to "
        f"{MAX_SEARCH_LOG_MB} (megabytes)"
    )


def site_address(variable: str, url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        return (
            f"{variable}={url!r} must be the site's address, such as https://shop.example "
            "(http or https, a host, optionally a path; no query)"
        )
    return None


def http_address(variable: str, url: str) -> str | None:
    if url.lower().startswith(("http://", "https://")):
        return None
    return (
        f"{variable}={url!r} must be an http:// or https:// address, "
        "e.g. https://<account>.r2.cloudflarestorage.com"
    )


def currency(variable: str, value: str) -> str | None:
    if len(value) > MAX_CURRENCY_CHARS or not value.isprintable():
        return (
            f"{variable}={value[:20]!r} must be a symbol or code of at most "
            f"{MAX_CURRENCY_CHARS} characters, e.g. € or CHF"
        )
    return None


def weights_file(variable: str, weights: str) -> str | None:
    if weights == "random" or Path(weights).is_file():
        return None
    return (
        f"{variable}={weights!r} is not a file; give the path of a weights file, "
        "leave it unset to use torchvision's ImageNet weights, or set it to 'random'"
    )


def adapter_file(variable: str, adapter: str) -> str | None:
    if adapter.lower() == "none" or Path(adapter).is_file():
        return None
    return (
        f"{variable}={adapter!r} is not a file; give an adapter saved by "
        "scripts/train_adapter.py, 'none' to turn the bundled one off, or unset it"
    )


def head_file(variable: str, head: str) -> str | None:
    if Path(head).is_file():
        return None
    return (
        f"{variable}={head!r} is not a file; give the head saved by `flask finetune`, or unset it"
    )
