"""The Host header never reaches a URL the app hands out: image URLs and redirects are relative,
or on PUBLIC_BASE_URL; TRUSTED_HOSTS refuses other hosts."""

from __future__ import annotations

import re

import pytest

from backend import create_app
from backend.config import load_settings
from backend.errors import ConfigError

EVIL = {"Host": "evil.example"}


@pytest.fixture
def light_config(app_config):
    """The colour histogram: the same pages and API, no torch, a quick start."""
    return app_config | {"model": "color_histogram", "model_weights": None}


def image_urls(client, **headers) -> list[str]:
    response = client.get("/api/products", headers=headers)
    assert response.status_code == 200
    return [product["image_url"] for product in response.get_json()["products"]]


def test_image_urls_are_relative_whatever_the_host(shared_client):
    assert re.fullmatch(r"/images/p1\?v=[0-9a-f]{16}", image_urls(shared_client, **EVIL)[0])
    body = shared_client.get("/api/products/p1/similar?threshold=0", headers=EVIL).get_json()
    assert all(hit["image_url"].startswith("/images/") for hit in body["results"])


def test_image_urls_are_on_the_public_base_url(light_config):
    app = create_app(light_config | {"public_base_url": "https://shop.example/search/"})
    url = image_urls(app.test_client(), **EVIL)[0]
    assert re.fullmatch(r"https://shop\.example/search/images/p1\?v=[0-9a-f]{16}", url)


@pytest.mark.parametrize("path", ["//products", "//api//products?page=2"])
def test_router_redirects_keep_the_host_out(shared_client, path):
    response = shared_client.get(path, headers=EVIL)
    assert response.status_code == 308
    location = response.headers["Location"]
    assert location.startswith("/") and "evil" not in location


def test_router_redirects_use_the_public_base_url(light_config):
    app = create_app(light_config | {"public_base_url": "https://shop.example"})
    response = app.test_client().get("//products", headers=EVIL)
    assert response.headers["Location"].startswith("https://shop.example/")


def test_trusted_hosts_refuse_any_other_host(light_config):
    client = create_app(
        light_config | {"trusted_hosts": "shop.example, .shop.example"}
    ).test_client()
    refused = client.get("/healthz", headers=EVIL)
    assert refused.status_code == 400
    assert refused.get_json() == {
        "error": "bad_request",
        "message": "Host 'evil.example' is not trusted.",
    }
    for host in ("shop.example", "www.shop.example", "127.0.0.1:8000", "localhost"):
        assert client.get("/healthz", headers={"Host": host}).status_code == 200, host


@pytest.mark.parametrize(
    "url", ["shop.example", "ftp://shop.example", "https://", "https://shop.example/?a=1"]
)
def test_a_bad_public_base_url_is_refused(url):
    with pytest.raises(ConfigError, match="PUBLIC_BASE_URL=.* must be the site's address"):
        load_settings({"PUBLIC_BASE_URL": url})
