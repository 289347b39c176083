"""The web layer: pages, the JSON API and the admin API, over one SearchService."""

from __future__ import annotations

from flask import Flask

from ..config import Settings


def init_app(app: Flask, settings: Settings) -> None:
    """Register the blueprints, the error rendering and the security headers."""
    from . import admin, api, errors, pages, security

    security.init_app(app, settings)
    errors.init_app(app)
    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(admin.bp)
