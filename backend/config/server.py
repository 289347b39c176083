"""The server's own settings: read by gunicorn.conf.py before any worker starts (no torch,
no Flask, and never the app's settings: a bad app setting is reported by the index sync), and
SECRET_KEY, the metrics folder and the trusted proxies also by the app."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from .declare import Setting, check_bounds, declared, one_of, read_environment, setting, within

FRONTS = ("auto", "nginx", "none")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


def _log_level(variable: str, value: str) -> str | None:
    if value.lower() in LOG_LEVELS:  # gunicorn reads it in any case
        return None
    return f"{variable}={value!r} must be one of {', '.join(LOG_LEVELS)}"


def _folder(variable: str, path: str) -> str | None:
    if os.path.exists(path) and not os.path.isdir(path):
        return f"{variable}={path!r} is a file; give a folder (it is made if missing), or unset it"
    return None


def _addresses(variable: str, value: str) -> str | None:
    """`*`, or addresses and networks (10.0.0.0/8), comma-separated."""
    for name in (name.strip() for name in value.split(",")):
        if name in ("", "*"):
            continue
        try:
            ipaddress.ip_network(name, strict=False)
        except ValueError:
            return (
                f"{variable}={value!r}: {name!r} is not an IP address or network; give "
                "addresses or networks separated by commas (127.0.0.1,10.0.0.0/8), or *"
            )
    return None


@dataclass(frozen=True)
class ServerSettings:
    host: str = setting("HOST", "0.0.0.0", "where to listen (the demo binds `127.0.0.1`)")
    front: str = setting(
        "FRONT",
        "auto",
        "`nginx`: nginx listens on `HOST:PORT`, reads each whole request and hands it to "
        "gunicorn over a private unix socket (see [Serving](operations.md#serving)); `none`: "
        "gunicorn listens itself (slow clients can then hold its threads); `auto`: `nginx` "
        "when it is installed, else `none` with a warning. The Docker image sets `nginx`",
        bound=one_of(FRONTS),
    )
    port: int = setting(
        "PORT", 8000, "the port to listen on (1 to 65535)", bound=within(1, 65535, "1-65535")
    )
    web_concurrency: int = setting(
        "WEB_CONCURRENCY",
        1,
        "worker processes (1 to 256); each holds its own copy of the model and index",
        bound=within(1, 256, "1-256"),
    )
    threads: int = setting(
        "THREADS", 4, "request threads per worker (1 to 256)", bound=within(1, 256, "1-256")
    )
    gunicorn_timeout: int = setting(
        "GUNICORN_TIMEOUT",
        120,
        "seconds a worker may stay silent (start-up included; 1 to 3600)",
        bound=within(1, 3600, "1-3600 seconds"),
    )
    log_level: str = setting(
        "LOG_LEVEL",
        "info",
        "gunicorn's log level (`debug`, `info`, `warning`, `error`, `critical`)",
        bound=_log_level,
    )
    secret_key: str | None = setting(
        "SECRET_KEY",
        None,
        "names the results' links (`/search?query=<id>`, a keyed hash of the photo's "
        'embedding) and signs the "refine this search" forms used when `CACHE_DIR` cannot be '
        "written; set it so they survive restarts and work across servers (the app warns when "
        "it is unset)",
        shown_default="random per start",
        secret=True,
    )
    prometheus_multiproc_dir: str | None = setting(
        "PROMETHEUS_MULTIPROC_DIR",
        None,
        "where the workers keep their metrics for `/metrics` to add up (prometheus_client's "
        "multiprocess mode); emptied when the server starts",
        shown_default="a new temp folder per start",
        bound=_folder,
    )
    forwarded_allow_ips: str | None = setting(
        "FORWARDED_ALLOW_IPS",
        None,
        "proxies trusted for `X-Forwarded-*` headers (gunicorn's own setting). Nothing the app "
        "builds depends on them (see `PUBLIC_BASE_URL`); when set, the nginx front takes the "
        "client's address from `X-Forwarded-For` sent by these addresses or ranges (e.g. "
        "`10.0.0.0/8`), so that its [per-client limits](operations.md#serving) hold per client "
        "behind a proxy or load balancer",
        shown_default="`127.0.0.1,::1`",
        bound=_addresses,
    )


SERVER_VARS = {declaration.variable: declaration for declaration in declared(ServerSettings)}


def load_server_settings(environ: Mapping[str, str] | None = None) -> ServerSettings:
    """The server settings from the environment, each checked against its declared bound."""
    values = read_environment(ServerSettings, os.environ if environ is None else environ)
    settings = replace(ServerSettings(), **values)
    check_bounds(settings)
    return settings


def server_value(variable: str, environ: Mapping[str, str] | None = None) -> Any:
    """One server setting, read and checked as declared (None or its default when unset)."""
    declaration: Setting = SERVER_VARS[variable]
    raw = (os.environ if environ is None else environ).get(variable, "").strip()
    if not raw:
        return declaration.default
    value = declaration.parse(raw)
    declaration.check(value)
    return value
