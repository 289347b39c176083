"""The web layer: pages, the JSON API, the admin API and the owner's insights, over one SearchService."""

from __future__ import annotations

from flask import Flask

from ..config import Settings


def init_app(app: Flask, settings: Settings) -> None:
    """Register the blueprints, the error rendering and the security headers."""
    from . import admin, api, errors, insights, pages, security, telemetry

    security.init_app(app, settings)
    errors.init_app(app)
    telemetry.init_app(app, settings)  # the search log and /metrics
    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(insights.bp)
