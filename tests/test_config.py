"""Settings: where index.csv goes, which folders images may come from, the currency shown; the
server's settings; each declared once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from backend.config import BUNDLED_CATALOG, ENV_VARS, PACKAGE_DIR, Settings, load_settings
from backend.config.declare import declared
from backend.config.server import SERVER_VARS, ServerSettings, load_server_settings, server_value
from backend.errors import ConfigError
from backend.model.calibration import shipped_calibration
from backend.model.specs import MODELS

ROOT = Path(__file__).resolve().parent.parent


def test_an_unset_index_path_follows_the_catalog(tmp_path):
    shop = tmp_path / "shop" / "products.csv"
    settings = load_settings({"CATALOG_PATH": str(shop)})
    assert settings.index_path == tmp_path / "shop" / "index.csv"
    assert load_settings({"CATALOG_PATH": str(shop), "INDEX_PATH": ""}).index_path == (
        tmp_path / "shop" / "index.csv"
    )  # empty counts as unset
    assert load_settings({}, overrides={"catalog_path": shop}).index_path == shop.with_name(
        "index.csv"
    )


def test_the_demo_keeps_its_index_beside_its_catalog_and_index_path_still_wins(tmp_path):
    assert load_settings({}).index_path == BUNDLED_CATALOG.with_name("index.csv")
    chosen = tmp_path / "elsewhere" / "index.csv"
    settings = load_settings({"CATALOG_PATH": str(tmp_path / "p.csv"), "INDEX_PATH": str(chosen)})
    assert settings.index_path == chosen


def test_only_the_bundled_catalog_may_take_images_from_static(tmp_path):
    demo = load_settings({})
    assert demo.bundled_catalog and demo.image_roots == (
        BUNDLED_CATALOG.parent,
        PACKAGE_DIR / "static",
    )
    shop = load_settings({"CATALOG_PATH": str(tmp_path / "products.csv")})
    assert not shop.bundled_catalog and shop.image_roots == (tmp_path,)
    # Code may add folders of its own (the benchmarks read their rows' images in place).
    extra = load_settings(
        {}, overrides={"catalog_path": tmp_path / "p.csv", "image_dirs": (PACKAGE_DIR,)}
    )
    assert extra.image_roots == (tmp_path, PACKAGE_DIR)
    # The same file by another spelling is still the bundled catalog.
    spelled = PACKAGE_DIR / "data" / ".." / "data" / "products.csv"
    assert load_settings({"CATALOG_PATH": str(spelled)}).bundled_catalog


@pytest.mark.parametrize("value", ["€", "CHF", "US$", "kr"])
def test_currency_is_a_short_symbol_or_code(value):
    assert load_settings({"CURRENCY": value}).currency == value
    assert load_settings({}).currency is None


@pytest.mark.parametrize("value", ["euros and cents", "\x1b[31m"])
def test_a_currency_that_cannot_be_shown_is_refused(value):
    with pytest.raises(ConfigError, match="CURRENCY=.* must be a symbol or code"):
        load_settings({"CURRENCY": value})


def test_relative_paths_are_relative_to_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings({"CATALOG_PATH": "shop/products.csv"})
    assert settings.index_path == Path("shop/index.csv")


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"PORT": "http"}, "PORT='http' is not a valid int"),
        ({"PORT": "70000"}, "PORT=70000 must be 1-65535"),
        ({"WEB_CONCURRENCY": "0"}, "WEB_CONCURRENCY=0 must be 1-256"),
        ({"THREADS": "-2"}, "THREADS=-2 must be 1-256"),
        ({"GUNICORN_TIMEOUT": "0"}, "GUNICORN_TIMEOUT=0 must be 1-3600 seconds"),
        ({"FRONT": "apache"}, "FRONT='apache' must be one of auto, nginx, none"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL='loud' must be one of debug, info, warning"),
        ({"FORWARDED_ALLOW_IPS": "10.0.0.0/8,proxy"}, "'proxy' is not an IP address or network"),
        ({"PROMETHEUS_MULTIPROC_DIR": __file__}, "PROMETHEUS_MULTIPROC_DIR=.* is a file"),
    ],
)
def test_each_server_setting_is_checked_with_a_message_naming_it(environ, message):
    with pytest.raises(ConfigError, match=message):
        load_server_settings(environ)


def test_server_settings_default_as_documented_and_parse_as_declared(tmp_path):
    assert load_server_settings({}) == ServerSettings()
    defaults = ServerSettings()
    assert (defaults.host, defaults.port, defaults.front) == ("0.0.0.0", 8000, "auto")
    settings = load_server_settings(
        {
            "PORT": " 8080 ",
            "LOG_LEVEL": "WARNING",
            "SECRET_KEY": "  ",
            "THREADS": "8",
            "FORWARDED_ALLOW_IPS": "*",
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
        }
    )
    assert (settings.port, settings.log_level, settings.threads) == (8080, "WARNING", 8)
    assert settings.secret_key is None  # blank is unset: the server makes one
    assert "hunter2" not in repr(load_server_settings({"SECRET_KEY": "hunter2-hunter2"}))
    assert (
        server_value("FORWARDED_ALLOW_IPS", {"FORWARDED_ALLOW_IPS": "10.0.0.0/8"}) == "10.0.0.0/8"
    )
    with pytest.raises(ConfigError, match="FORWARDED_ALLOW_IPS"):
        server_value("FORWARDED_ALLOW_IPS", {"FORWARDED_ALLOW_IPS": "10.0.0.0/33"})


def run_gunicorn_config(tmp_path, **environ: str) -> subprocess.CompletedProcess:
    """gunicorn.conf.py read as gunicorn reads it, without starting a server."""
    env = {key: value for key, value in os.environ.items() if key not in ("FRONT", "PORT")}
    env |= {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "FRONT": "none", **environ}
    code = "import runpy; runpy.run_path('gunicorn.conf.py')"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_a_bad_server_setting_stops_gunicorn_with_one_line_naming_it(tmp_path):
    done = run_gunicorn_config(tmp_path, WEB_CONCURRENCY="four")
    assert done.returncode == 1
    assert done.stderr == "cannot start: WEB_CONCURRENCY='four' is not a valid int\n"


def test_the_gunicorn_config_loads_with_bad_app_settings(tmp_path):
    """The index sync reports a bad app setting (and stops the server); the config still loads."""
    done = run_gunicorn_config(tmp_path, TOP_K="0", MIN_MATCH="many")
    assert done.returncode == 0, done.stderr


def test_the_one_public_threshold_is_the_resolved_one():
    """SIMILARITY_THRESHOLD and MIN_MATCH are inputs: code reads `threshold`, never a raw one."""
    public = {name for name in dir(Settings) if "threshold" in name and not name.startswith("_")}
    assert public == {"threshold"}
    settings = load_settings({"MODEL": "resnet18", "SIMILARITY_THRESHOLD": "0.4"})
    assert settings.threshold == 0.4 and settings.search_defaults.threshold == 0.4
    assert load_settings({"MODEL": "resnet18"}).threshold == 0.70  # the model's own default


def test_every_environment_variable_is_one_declared_field():
    variables = [declaration.variable for declaration in declared(Settings)]
    assert list(ENV_VARS) == variables and len(set(variables)) == len(variables)
    assert not set(ENV_VARS) & set(SERVER_VARS)
    assert all(declaration.doc for declaration in declared(Settings))


def test_python_m_backend_config_writes_the_tables_in_place(tmp_path):
    page = tmp_path / "configuration.md"
    text = (ROOT / "docs" / "configuration.md").read_text()
    page.write_text(text.replace("| `TOP_K` | `12` |", "| `TOP_K` | `10` |"))
    done = subprocess.run(
        [sys.executable, "-m", "backend.config", "--write", str(page)], cwd=ROOT, timeout=120
    )
    assert done.returncode == 0 and page.read_text() == text
    printed = subprocess.run(
        [sys.executable, "-m", "backend.config", "--markdown"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "| `TOP_K` | `12` | default number of results (1 to 100) |" in printed.stdout


def test_the_doc_lines_quote_each_models_record_and_calibration():
    """What the docs say of the models is what their records and calibration hold."""
    docs = {declaration.variable: declaration.doc for declaration in declared(Settings)}
    assert all(f"`{spec.name}` ({spec.dim}-d" in docs["MODEL"] for spec in MODELS.values())
    lite0 = MODELS["efficientnet_lite0"]
    assert (
        f"`{lite0.default_threshold:.2f}` with `MODEL_ADAPTER=none`" in docs["SIMILARITY_THRESHOLD"]
    )
    minimum = shipped_calibration("efficientnet_lite0").default_min_match
    assert f"unset, the calibration's measured default (`{minimum}` for" in docs["MIN_MATCH"]
