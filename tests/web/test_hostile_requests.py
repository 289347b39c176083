"""Requests that once made the server answer 500: each is a 400 naming the problem, and
nothing is written."""

from __future__ import annotations

import pytest

from backend import create_app
from tests.support.catalogs import draw_image, image_bytes, make_app_config, write_catalog

TOKEN = "s3cret-admin-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
DEEP = "[" * 100_000 + "]" * 100_000


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> dict:
    """One app for the module: every request here is refused, so none changes it."""
    root = tmp_path_factory.mktemp("hostile")
    return make_app_config(root, write_catalog(root / "shop")) | {"admin_token": TOKEN}


@pytest.fixture(scope="module")
def admin_client(shop):
    return create_app(shop).test_client()


@pytest.fixture
def client(admin_client):
    return admin_client


@pytest.fixture
def app_config(shop):
    return shop


def json_body(client, method: str, path: str, text: str, **kwargs):
    return client.open(path, method=method, data=text, content_type="application/json", **kwargs)


@pytest.mark.parametrize(
    ("method", "path", "text"),
    [
        ("POST", "/api/search", DEEP),
        ("POST", "/api/search", '{"image_url": ' + DEEP + "}"),
        ("PUT", "/api/admin/products/p9", '{"name": ' + DEEP + "}"),
    ],
    ids=["search-array", "search-field", "admin-field"],
)
def test_deeply_nested_json_is_a_400(admin_client, method, path, text):
    response = json_body(admin_client, method, path, text, headers=AUTH)
    assert response.status_code == 400
    assert response.get_json() == {
        "error": "invalid_input",
        "message": "the JSON body is nested too deeply",
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"k": 1' + "0" * 400 + "}", "k=10000000000000000000 is not a number"),
        ('{"threshold": 1e999}', "threshold must be a finite number"),
        ('{"threshold": -1e999}', "threshold must be a finite number"),
        ('{"min_price": 1' + "0" * 400 + "}", "min_price=10000000000000000000 is not a number"),
    ],
    ids=["k-beyond-float", "threshold-infinite", "threshold-minus-infinite", "price-beyond-float"],
)
def test_json_numbers_beyond_float_range_are_a_400(client, text, message):
    response = json_body(client, "POST", "/api/search", text)
    assert response.status_code == 400
    assert message in response.get_json()["message"]


def nameless_part(filename: bool) -> tuple[bytes, str]:
    disposition = b'form-data; filename="x.png"' if filename else b"form-data"
    body = (
        b"--b\r\nContent-Disposition: "
        + disposition
        + b"\r\n\r\n"
        + image_bytes(draw_image("red"))
        + b"\r\n--b--\r\n"
    )
    return body, "multipart/form-data; boundary=b"


@pytest.mark.parametrize("filename", [True, False], ids=["file-part", "field-part"])
@pytest.mark.parametrize(
    ("method", "path"), [("PUT", "/api/admin/products/p9"), ("POST", "/api/search")]
)
def test_a_multipart_part_without_a_name_is_a_400(admin_client, app_config, filename, method, path):
    before = app_config["catalog_path"].read_bytes()
    body, content_type = nameless_part(filename)
    response = admin_client.open(
        path, method=method, data=body, content_type=content_type, headers=AUTH
    )
    assert response.status_code == 400
    assert response.get_json()["message"] == (
        "a part of the multipart body has no name; name every field"
    )
    assert app_config["catalog_path"].read_bytes() == before


@pytest.mark.parametrize("surrogate", ["\\ud800", "\\udcff", "\\udfff"])
@pytest.mark.parametrize("field", ["name", "category", "image_url"])
def test_a_lone_surrogate_in_an_admin_field_is_refused_and_nothing_is_written(
    admin_client, app_config, surrogate, field
):
    before = app_config["catalog_path"].read_bytes()
    fields = {"name": "Oat milk", "category": "Milk", "image_url": "images/p1.png"}
    fields[field] = "x" + surrogate
    text = "{" + ", ".join(f'"{key}": "{value}"' for key, value in fields.items()) + "}"
    response = json_body(admin_client, "PUT", "/api/admin/products/p9", text, headers=AUTH)
    assert response.status_code == 400
    assert response.get_json()["message"] == (
        f"{field} contains an invalid character (a lone UTF-16 surrogate)"
    )
    assert app_config["catalog_path"].read_bytes() == before


def test_a_lone_surrogate_in_a_search_field_is_a_400(client):
    response = json_body(client, "POST", "/api/search", '{"image_url": "http://a.example/\\udcff"}')
    assert response.status_code == 400
    assert "image_url contains an invalid character" in response.get_json()["message"]
