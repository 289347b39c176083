"""Shared fixtures: generated catalogs (PIL-drawn images), an app in random-weights mode."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from backend import create_app
from tests.support.catalogs import make_app_config, write_catalog

# The PostgreSQL + pgvector fixtures (`pg_server`, `database_url`) and the MariaDB ones
# (`mariadb_server`, `mysql_url`), the S3 ones (`s3_server`, `s3`) and the Milvus ones
# (`milvus_server`, `milvus_uri`), for every test that asks.
pytest_plugins = [
    "tests.support.postgres",
    "tests.support.mariadb",
    "tests.support.s3",
    "tests.support.milvus",
]


@pytest.fixture(scope="session", autouse=True)
def model_dir(tmp_path_factory) -> Iterator[Path]:
    """One MODEL_DIR for the whole run (subprocesses too): each model is exported once, not per test."""
    folder = tmp_path_factory.mktemp("models")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MODEL_DIR", str(folder))
        yield folder


@pytest.fixture
def catalog_path(tmp_path: Path) -> Path:
    return write_catalog(tmp_path / "shop")


@pytest.fixture
def app_config(tmp_path: Path, catalog_path: Path) -> dict:
    return make_app_config(tmp_path, catalog_path)


@pytest.fixture(scope="module")
def shared_app(tmp_path_factory):
    """One app per test module with its index already synced, for tests that change nothing."""
    from backend.extensions import get_service

    root = tmp_path_factory.mktemp("shared")
    config = make_app_config(root, write_catalog(root / "shop")) | {"SECRET_KEY": "test-secret"}
    app = create_app(config)
    get_service(app).sync()
    return app


@pytest.fixture
def shared_client(shared_app):
    return shared_app.test_client()


# A token as an owner sets ADMIN_TOKEN to open the insights pages.
OWNER_TOKEN = "owner-token-0123456789"


@pytest.fixture(scope="module")
def default_app(tmp_path_factory):
    """The app as a user starts it, with the shipped defaults: no setting from the environment
    (model, weights, threshold... all unset), only an own catalog, a cache folder under tmp and
    the ADMIN_TOKEN an owner sets for the insights pages. Its index goes beside its catalog."""
    from backend.config import ENV_VARS
    from backend.extensions import get_service

    root = tmp_path_factory.mktemp("defaults")
    with pytest.MonkeyPatch.context() as patch:
        for variable in ENV_VARS:
            if variable != "MODEL_DIR":  # the run's shared export folder: each model once
                patch.delenv(variable, raising=False)
        app = create_app(
            {
                "catalog_path": write_catalog(root / "shop"),
                "cache_dir": root / "cache",
                "admin_token": OWNER_TOKEN,
            }
        )
        get_service(app).sync()
        yield app


@pytest.fixture
def app(app_config: dict):
    return create_app(app_config)


@pytest.fixture
def service(app):
    from backend.extensions import get_service

    return get_service(app)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()
