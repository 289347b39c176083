"""Image similarity search: a Flask app over a product catalog's image embeddings."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .config import load_settings
from .errors import ConfigError

if TYPE_CHECKING:
    from flask import Flask


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: settings from env (then test_config), the search service, routes, CLI.

    `test_config` may hold Settings fields (lower case, e.g. `catalog_path`) and Flask keys
    (upper case, e.g. `TESTING`).
    """
    # Imported here, not above: the Python API (`backend.search`, ...) runs without Flask.
    from flask import Flask

    app = Flask(__name__)
    test_config = dict(test_config or {})
    flask_keys = {key: test_config.pop(key) for key in list(test_config) if key.isupper()}
    app.config.from_prefixed_env()
    app.config.update(flask_keys)
    try:
        settings = load_settings(overrides=test_config)
    except ConfigError as error:
        _stop_command_on_bad_setting(error)
        raise
    app.config["SETTINGS"] = settings
    _configure_logging(app)

    from . import extensions, web
    from .cli import catalog, quality, search

    extensions.init_app(app, settings)
    web.init_app(app, settings)
    for command in (*search.COMMANDS, *catalog.COMMANDS, *quality.COMMANDS):
        app.cli.add_command(command)
    if _served_by_flask_run():
        from .serving.boot import sync_in_background

        sync_in_background(app)  # gunicorn syncs before its workers start; `flask run` here
    return app


def _served_by_flask_run() -> bool:
    """Whether this process is the one `flask run` serves from (not its reloader's watcher)."""
    import click
    from flask.helpers import get_debug_flag
    from werkzeug.serving import is_running_from_reloader

    context = click.get_current_context(silent=True)
    if context is None or context.info_name != "run":
        return False
    reload = context.params.get("reload")
    if reload is None:  # `flask run` reloads by default in debug mode
        reload = get_debug_flag()
    return not reload or is_running_from_reloader()


def _stop_command_on_bad_setting(error: ConfigError) -> None:
    """Under the `flask` command, a bad setting is one line and exit status 2, not a traceback."""
    import click

    if click.get_current_context(silent=True) is not None:
        from .cli import SettingsError

        raise SettingsError(error.message) from None


def _configure_logging(app: Flask) -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
