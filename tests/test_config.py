"""Settings: where index.csv goes, which folders images may come from, the currency shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.config import BUNDLED_CATALOG, PACKAGE_DIR, load_settings
from backend.errors import ConfigError


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
