"""The admin API: disabled without ADMIN_TOKEN, bearer token required, re-index swaps the index."""

from __future__ import annotations

import pytest

from backend import create_app
from backend.errors import ConfigError
from tests.support.catalogs import draw_image

TOKEN = "s3cret-admin-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def admin_client(app_config):
    return create_app(app_config | {"admin_token": TOKEN}).test_client()


def test_disabled_when_no_token_is_configured(client, app_config):
    response = client.post("/api/admin/reindex", headers=AUTH)
    assert response.status_code == 403
    assert response.get_json() == {
        "error": "admin_disabled",
        "message": "the admin API is disabled; set ADMIN_TOKEN on the server to enable it",
    }
    assert not app_config["index_path"].exists()  # nothing ran


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(None, id="missing"),
        pytest.param("", id="empty"),
        pytest.param("Bearer", id="no-token"),
        pytest.param("Bearer wrong-token-of-some-length", id="wrong"),
        pytest.param(f"Bearer {TOKEN[:-1]}", id="prefix"),
        pytest.param(f"Bearer {TOKEN}x", id="longer"),
        pytest.param(f"Basic {TOKEN}", id="other-scheme"),
        pytest.param(TOKEN, id="bare-token"),
        pytest.param("Bearer tökén-ünïcödé-😀", id="non-ascii"),
    ],
)
def test_refuses_without_the_right_token(admin_client, app_config, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    response = admin_client.post("/api/admin/reindex", headers=headers)
    assert response.status_code == 401
    assert response.get_json()["error"] == "unauthorized"
    assert "Authorization: Bearer <token>" in response.get_json()["message"]
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="admin"'
    assert not app_config["index_path"].exists()


def test_only_post_is_accepted(admin_client):
    assert admin_client.get("/api/admin/reindex", headers=AUTH).status_code == 405


def test_reindex_reports_and_swaps_in_the_new_index(admin_client, app_config):
    first = admin_client.post("/api/admin/reindex", headers=AUTH)
    assert first.status_code == 200
    assert first.headers["Cache-Control"] == "no-store"
    report = first.get_json()
    assert (
        report["summary"] == "7 added, 0 updated, 0 removed, 0 unchanged, 0 failed, 0 rows skipped"
    )
    assert (report["added"], report["failed"], report["skipped_rows"]) == (7, 0, 0)

    shop = app_config["catalog_path"].parent
    draw_image("cyan", "triangle").save(shop / "images" / "new.png")
    with app_config["catalog_path"].open("a", encoding="utf-8") as handle:
        handle.write("p8,Cyan tent,outdoor,3.00,images/new.png\nbad,Bad,toys,abc,images/p1.png\n")
    assert admin_client.get("/api/products/p8/similar").status_code == 404  # not yet

    second = admin_client.post("/api/admin/reindex", headers=AUTH).get_json()
    assert second["summary"] == (
        "1 added, 0 updated, 0 removed, 7 unchanged, 0 failed, 1 row skipped (row 10)"
    )
    assert [row["row"] for row in second["skipped"]] == [10]
    assert second["skipped"][0]["reason"].startswith("price 'abc' is not a number")
    assert admin_client.get("/api/products/p8/similar").status_code == 200


def test_a_short_token_is_refused_at_startup(app_config):
    with pytest.raises(ConfigError, match="ADMIN_TOKEN must be at least 16 characters"):
        create_app(app_config | {"admin_token": "short"})
