"""The app's one SearchService: built lazily, kept in app.extensions, never at import time."""

from __future__ import annotations

from flask import Flask, current_app, request

from .config import Settings
from .model import Embedder
from .search import SearchService

EXTENSION_KEY = "search_service"


def init_app(app: Flask, settings: Settings, embedder: Embedder | None = None) -> None:
    app.extensions[EXTENSION_KEY] = SearchService(settings, embedder=embedder)
    app.before_request(_reload_if_synced_elsewhere)


# Probes and static files answer without touching the index (a liveness check must stay cheap).
_NO_RELOAD = {"static", "api.healthz", "api.readyz"}


def _reload_if_synced_elsewhere() -> None:
    # With several server processes, a re-index reaches one of them; the others catch up here.
    if request.endpoint not in _NO_RELOAD:
        get_service().reload_if_synced_elsewhere()


def get_service(app: Flask | None = None) -> SearchService:
    """Return the app's SearchService (the index is synced on first use)."""
    return (app or current_app).extensions[EXTENSION_KEY]
