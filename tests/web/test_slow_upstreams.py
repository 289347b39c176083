"""Slow image URLs: a query's download has its own short deadline and a few slots; when they are
taken, further URL searches get 429 with Retry-After while uploads, pages and probes answer."""

from __future__ import annotations

import io
import threading

import pytest

from backend import create_app
from tests.support.catalogs import draw_image, image_bytes
from tests.support.http_servers import ImageServer, serve

TENT = image_bytes(draw_image("yellow", "triangle"))


@pytest.fixture
def held():
    """An image host whose /held.png answers only once released (or after 20 s)."""
    arrived, release = threading.Semaphore(0), threading.Event()

    def held_png(handler) -> None:
        arrived.release()
        release.wait(20)
        handler.reply(200, "image/png", TENT)

    for server in serve(ImageServer({"/held.png": held_png})):
        yield server, arrived, release
        release.set()


def test_url_searches_beyond_the_slots_get_429_and_the_rest_of_the_site_answers(app_config, held):
    server, arrived, release = held
    app = create_app(app_config | {"fetch_allow_loopback": True, "query_fetch_slots": 2})
    client = app.test_client()
    client.get("/api/products")  # load the index before the slots fill up
    url = server.url("/held.png")
    answers: list[int] = []
    holders = [
        threading.Thread(
            target=lambda: answers.append(
                app.test_client().post("/api/search", json={"image_url": url}).status_code
            )
        )
        for _ in range(2)
    ]
    for holder in holders:
        holder.start()
    assert arrived.acquire(timeout=10) and arrived.acquire(timeout=10)  # both slots taken
    try:
        third = client.post("/api/search", json={"image_url": url})
        form = client.post("/search", data={"image_url": url})
        upload = client.post(
            "/api/search",
            data={"file": (io.BytesIO(TENT), "tent.png")},
            content_type="multipart/form-data",
        )
        page, probe = client.get("/"), client.get("/healthz")
    finally:
        release.set()
        for holder in holders:
            holder.join(30)
    assert third.status_code == 429 and third.headers["Retry-After"] == "8"
    assert third.get_json()["error"] == "busy"
    assert "busy downloading other image URLs" in third.get_json()["message"]
    assert form.status_code == 429 and form.headers["Retry-After"] == "8"
    assert "busy downloading other image URLs" in form.get_data(as_text=True)
    assert upload.status_code == 200 and upload.get_json()["results"][0]["id"] == "p5"
    assert (page.status_code, probe.status_code) == (200, 200)
    assert answers == [200, 200]  # the held downloads finish normally once the host answers


def test_a_query_url_has_a_shorter_deadline_than_catalog_images(app_config):
    app = create_app(
        app_config | {"fetch_allow_loopback": True, "query_fetch_timeout": 1, "fetch_timeout": 20}
    )
    for server in serve(ImageServer()):
        response = app.test_client().post("/api/search", json={"image_url": server.url("/drip")})
    assert response.status_code == 400
    assert response.get_json()["message"] == "image URL took longer than 1 s to download"
