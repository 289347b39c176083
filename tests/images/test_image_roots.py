"""Only the bundled demo catalog may use the demo's photos in backend/static/."""

from __future__ import annotations

from backend import create_app
from backend.catalog import load_catalog
from backend.config import BUNDLED_CATALOG, PACKAGE_DIR
from backend.extensions import get_service
from tests.support.catalogs import TEST_MODEL, make_app_config, write_catalog

STATIC = PACKAGE_DIR / "static"


def a_static_photo() -> str:
    """The path, relative to static/, of one of the demo's photos."""
    photo = next(path for path in sorted(STATIC.rglob("*")) if path.suffix in (".jpg", ".png"))
    return photo.relative_to(STATIC).as_posix()


def test_a_shop_rows_missing_image_fails_instead_of_using_the_demos_photo(tmp_path):
    relative = a_static_photo()
    shop = write_catalog(tmp_path / "shop", extra_rows=[["x", "Borrowed", "toys", "1", relative]])
    service = get_service(create_app(make_app_config(tmp_path, shop)))
    catalog, report = service.sync()
    assert "x" in catalog.products
    assert report.failed == {"x": f"image file {relative!r} not found"}
    assert "x" not in {product.id for product in service.current().products}


def test_the_bundled_catalog_still_finds_its_photos_in_static(tmp_path):
    own_folders = {"index_path": tmp_path / "index.csv", "cache_dir": tmp_path / "cache"}
    service = get_service(
        create_app({"TESTING": True, "model": TEST_MODEL, "model_weights": "random"} | own_folders)
    )
    assert service.settings.catalog_path == BUNDLED_CATALOG
    product = next(iter(load_catalog(BUNDLED_CATALOG).products.values()))
    path = service.locator.path_for(product)
    assert path.is_file() and path.resolve().is_relative_to(PACKAGE_DIR.resolve())
