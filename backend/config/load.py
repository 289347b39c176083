"""`load_settings`: the environment read through the declarations, then validated once."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..errors import ConfigError
from .declare import check_bounds, declared, read_environment
from .settings import Settings

# Environment variable -> field name.
ENV_VARS = {declaration.variable: declaration.name for declaration in declared(Settings)}
_DECLARATIONS = {declaration.name: declaration for declaration in declared(Settings)}
_MINIMUM = {"_similarity_threshold", "min_match"}


def load_settings(
    environ: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None
) -> Settings:
    """Build settings from defaults, then the environment, then explicit overrides."""
    environ = os.environ if environ is None else environ
    values = read_environment(Settings, environ)
    catalog = environ.get("CATALOG_PATH", "").strip()
    if _is_s3(catalog):
        values["catalog_path"] = catalog  # a URL, not a path: `_place_s3_catalog` takes it
    for name, value in (overrides or {}).items():
        values[name] = _coerce(name, value) if isinstance(value, str) else value
    _place_s3_catalog(values)
    if values.get("index_path") is None and "catalog_path" in values:
        values["index_path"] = Path(values["catalog_path"]).with_name("index.csv")
    settings = replace(Settings(), **values)
    validate(settings)
    if settings.public_base_url:
        settings = replace(settings, public_base_url=settings.public_base_url.rstrip("/"))
    return settings


def _coerce(name: str, raw: str) -> Any:
    """An override given as text, parsed as its variable would be (labelled by the field)."""
    if name == "catalog_path" and _is_s3(raw):
        return raw
    return _DECLARATIONS[name].parse(raw, label=name) if name in _DECLARATIONS else raw


def _is_s3(value: str) -> bool:
    return value.lower().startswith("s3://")


def _place_s3_catalog(values: dict[str, Any]) -> None:
    """CATALOG_PATH=s3://bucket/key: keep the URL, and read its local copy under CACHE_DIR."""
    url = values.get("catalog_path")
    if not isinstance(url, str):
        return
    bucket, _, key = url[len("s3://") :].partition("/")
    if not bucket or not key or key.endswith("/"):
        raise ConfigError(
            f"CATALOG_PATH={url!r} must name one object, e.g. s3://my-shop/catalog/products.csv"
        )
    values["catalog_url"] = url
    values["catalog_path"] = (
        Path(values.get("cache_dir", Settings.cache_dir)) / "catalog" / "products.csv"
    )


def _validate_minimum(settings: Settings) -> None:
    """MIN_MATCH for a calibrated model, SIMILARITY_THRESHOLD (a cosine) for the others."""
    calibrated = settings.calibration is not None
    if calibrated and settings._similarity_threshold is not None:
        raise ConfigError(
            f"SIMILARITY_THRESHOLD={settings._similarity_threshold} is a cosine similarity, but "
            f"MODEL={settings.model} is calibrated: its results are filtered by their chance of "
            "being the product; unset SIMILARITY_THRESHOLD and set MIN_MATCH (a whole percent, "
            "e.g. MIN_MATCH=10) instead"
        )
    if not calibrated and settings.min_match is not None:
        raise ConfigError(
            f"MIN_MATCH={settings.min_match} needs a calibrated model, and MODEL={settings.model}"
            f"{' with MODEL_WEIGHTS' if settings.model_weights else ''}"
            f"{' with MODEL_HEAD' if settings.model_head else ''} has no calibration; unset "
            "MIN_MATCH and set SIMILARITY_THRESHOLD (a cosine from 0 to 1) instead"
        )


def validate(settings: Settings) -> None:
    """Refuse settings that cannot work, naming the setting and the fix: each one's declared
    bound, then what joins several (the minimum and the model, the store and its address)."""
    # The minimum first: a model whose minimum is of the wrong kind is named before its files.
    check_bounds(settings, _MINIMUM)
    _validate_minimum(settings)
    check_bounds(settings, _DECLARATIONS.keys() - _MINIMUM)
    _validate_database_url(settings)
    _validate_milvus(settings)


# The URL schemes each database backend accepts in DATABASE_URL, and an example of the form.
DATABASE_SCHEMES = {
    "pgvector": (("postgresql", "postgres"), "postgresql://user:password@host:5432/shop"),
    "mysql": (("mysql", "mariadb", "mysql+pymysql"), "mysql://user:password@host:3306/shop"),
}


def _validate_database_url(settings: Settings) -> None:
    """A database backend needs DATABASE_URL, of its own kind (its password never shown)."""
    backend = settings.vector_backend
    if backend not in DATABASE_SCHEMES:
        return
    schemes, example = DATABASE_SCHEMES[backend]
    url = settings.database_url
    if not url:
        raise ConfigError(f"VECTOR_BACKEND={backend} needs DATABASE_URL, e.g. {example}")
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    # psycopg also takes "host=... dbname=..." strings, which have no scheme.
    if scheme not in schemes and (scheme or backend != "pgvector"):
        raise ConfigError(
            f"DATABASE_URL={mask_url(url)} does not match VECTOR_BACKEND={backend}: "
            f"it must start with {schemes[0]}://, e.g. {example}"
        )
    if not _parses(url, backend):
        percent = " (%25 for a literal %)" if "%" in url else ""
        raise ConfigError(
            f"DATABASE_URL={mask_url(url)} cannot be parsed; the form is {example}, with any "
            f"@ : / ? # % in the user name or password percent-encoded{percent}"
        )


def _parses(url: str, backend: str) -> bool:
    """Whether the database driver can read the URL (its error text, which may quote the
    password, is never shown)."""
    if backend == "pgvector":
        from psycopg import ProgrammingError
        from psycopg.conninfo import conninfo_to_dict

        try:
            conninfo_to_dict(url)
        except ProgrammingError:
            return False
        return True
    try:
        port = urlsplit(url).port
    except ValueError:  # a bracket left open, a port that is not a number or out of range
        return False
    return port is None or port > 0


# What may be shown of the server part of a database URL: host, port, database name.
_SERVER_PART = re.compile(r"[\w.\-\[\]:/%]*")


MILVUS_SCHEMES = ("http", "https", "tcp")


def _validate_milvus(settings: Settings) -> None:
    """VECTOR_BACKEND=milvus needs MILVUS_URI, the address of a Milvus server (never a database's)."""
    if settings.vector_backend != "milvus":
        return
    uri = settings.milvus_uri
    example = "http://milvus.example:19530"
    if not uri:
        raise ConfigError(f"VECTOR_BACKEND=milvus needs MILVUS_URI, e.g. {example}")
    scheme = uri.partition("://")[0].lower() if "://" in uri else ""
    if scheme not in MILVUS_SCHEMES:
        raise ConfigError(
            f"MILVUS_URI={mask_url(uri)} does not match VECTOR_BACKEND=milvus: it must start "
            f"with http:// or https://, e.g. {example}"
        )


def mask_url(url: str) -> str:
    """A URL as it may be shown: user, host, port and database; no password, no query.

    The last @ ends the user info, even with an unescaped @ or / in a password; what follows is
    shown up to the first character a host, port or database name does not hold.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "(not a URL)"
    userinfo, at, server = rest.rpartition("@")
    server = _shown_part(server)
    if not at:
        return f"{scheme}://{server}"
    user, colon, _ = userinfo.partition(":")
    user = _shown_part(user).split("/")[0]
    return f"{scheme}://{user}{':***' if colon else ''}@{server}"


def _shown_part(text: str) -> str:
    """`text` up to the first character a host, port or database name does not hold."""
    shown = _SERVER_PART.match(text)  # matches at least the empty string
    return shown.group() if shown else ""
