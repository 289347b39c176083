"""Image similarity search: a Flask app over a product catalog's image embeddings."""

from __future__ import annotations

import logging
from typing import Any, Mapping

from flask import Flask

from .config import load_settings


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: settings from env (then test_config), the search service, routes, CLI.

    `test_config` may hold Settings fields (lower case, e.g. `catalog_path`) and Flask keys
    (upper case, e.g. `TESTING`).
    """
    app = Flask(__name__)
    test_config = dict(test_config or {})
    flask_keys = {key: test_config.pop(key) for key in list(test_config) if key.isupper()}
    app.config.from_prefixed_env()
    app.config.update(flask_keys)
    settings = load_settings(overrides=test_config)
    app.config["SETTINGS"] = settings
    _configure_logging(app)

    from . import admin, api, cli, errors, security, service, views

    security.init_app(app, settings)
    errors.init_app(app)
    service.init_app(app, settings)
    app.register_blueprint(views.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(admin.bp)
    cli.init_app(app)
    return app


def _configure_logging(app: Flask) -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
