"""Product photos and catalogs in S3, against a real S3-protocol server (moto) over loopback HTTP."""

from __future__ import annotations

import csv
import html
import io

import pytest

from backend import create_app
from backend.config import load_settings
from backend.errors import ConfigError
from backend.extensions import get_service
from backend.images.s3 import GONE, S3Reader
from tests.support.catalogs import COLOURS, TEST_MODEL, count_embeds, draw_image, image_bytes
from tests.support.http_servers import ImageServer, serve
from tests.support.openapi import check_documented
from tests.support.s3 import BUCKET, reader_policy

SHAPES = ("circle", "square", "stripes", "triangle")
PREFIX = "shop/photos/"


def photo(i: int) -> bytes:
    colours = list(COLOURS)
    return image_bytes(draw_image(colours[i % len(colours)], SHAPES[i // len(colours) % 4]))


def write_csv(path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "name", "category", "price", "image_url"])
        writer.writerows(rows)


@pytest.fixture
def s3_app(tmp_path, s3):
    """An app whose catalog lists 20 photos in the bucket; build it after changing S3."""

    def factory(rows=None, **config):
        catalog = tmp_path / "shop" / "products.csv"
        if rows is not None:
            write_csv(catalog, rows)
        app = create_app(
            {
                "TESTING": True,
                "SECRET_KEY": "test",
                "catalog_path": catalog,
                "index_path": tmp_path / "index" / "index.csv",
                "cache_dir": tmp_path / "cache",
                "model": TEST_MODEL,
                "model_weights": "random",
                "_similarity_threshold": 0.0,
                "s3_endpoint_url": s3.endpoint,
            }
            | config
        )
        return app

    return factory


def test_s3_bucket_of_20_photos_replaced_deleted_missing_and_denied(s3, s3_app, monkeypatch):
    rows = [
        [f"p{i}", f"Photo {i}", "c", "1", s3.put(f"{PREFIX}p{i}.png", photo(i))] for i in range(20)
    ]
    rows.append(["missing", "Missing", "c", "1", f"s3://{BUCKET}/{PREFIX}gone.png"])
    rows.append(["denied", "Denied", "c", "1", s3.put("private/secret.png", photo(3))])
    s3.enforce_policy(reader_policy(BUCKET, PREFIX), monkeypatch)
    service = get_service(s3_app(rows))
    embedded = count_embeds(service, monkeypatch)
    _, report = service.sync()
    assert report.summary().startswith("20 added, 0 updated, 0 removed, 0 unchanged, 2 failed")
    assert report.failed == {
        "missing": f"s3://{BUCKET}/{PREFIX}gone.png: no such object",
        "denied": f"s3://{BUCKET}/private/secret.png: access denied (the server's credentials "
        "may not read it; see the IAM policy in docs/s3.md)",
    }
    assert sum(embedded) == 20 and service.store.count() == 20

    # Unchanged: nothing downloaded or embedded again.
    _, report = service.sync()
    assert report.summary().startswith("0 added, 0 updated, 0 removed, 20 unchanged, 2 failed")
    assert sum(embedded) == 20

    # One photo replaced in the bucket: only it is embedded again, and found as the new picture.
    new_picture = image_bytes(draw_image("yellow", "circle", size=(90, 200)))
    s3.put(f"{PREFIX}p7.png", new_picture)
    _, report = service.sync()
    assert report.updated == ["p7"] and report.unchanged == 19 and sum(embedded) == 21
    assert service.image_path("p7").read_bytes() == new_picture  # the cached copy follows

    # One deleted: it drops out of the index, the store and /images.
    s3.admin.delete_object(Bucket=BUCKET, Key=f"{PREFIX}p8.png")
    _, report = service.sync()
    assert report.failed["p8"] == f"s3://{BUCKET}/{PREFIX}p8.png: no such object"
    assert report.summary().startswith("0 added, 0 updated, 0 removed, 19 unchanged, 3 failed")
    assert sum(embedded) == 21 and service.store.count() == 19
    assert "p8" not in service.store.versions() and service.indexed_count() == 19
    assert service.search_bytes(new_picture, k=1).hits[0].product.id == "p7"
    client = service_client(service)
    assert client.get("/images/p8").status_code == 404
    with client.get("/images/p9") as served:
        assert served.status_code == 200 and served.data == photo(9)
    assert client.get("/readyz").get_json()["failed_images"] == 3


def service_client(service):
    app = create_app({"TESTING": True, "SECRET_KEY": "t"} | vars_of(service.settings))
    app.extensions["search_service"] = service
    return app.test_client()


def vars_of(settings) -> dict:
    return {
        name: getattr(settings, name)
        for name in ("catalog_path", "index_path", "cache_dir", "model_weights", "s3_endpoint_url")
    }


def test_s3_etags_come_from_one_listing_or_from_heads_where_listing_is_denied(s3, monkeypatch):
    urls = [s3.put(f"{PREFIX}a{i}.png", b"x%d" % i) for i in range(3)]
    s3.put(f"{PREFIX}a1.png.thumb", b"not in the catalog")
    asked = [*urls, f"s3://{BUCKET}/{PREFIX}zz.png"]
    listed = S3Reader(s3.endpoint).etags(asked)
    assert listed[asked[3]] == GONE and all(listed[u].startswith('"') for u in urls)
    only_get = reader_policy(BUCKET, PREFIX)
    only_get["Statement"] = only_get["Statement"][1:]  # no s3:ListBucket at all
    s3.enforce_policy(only_get, monkeypatch)
    assert S3Reader(s3.endpoint).etags(asked) == listed


def test_s3_images_have_the_limits_of_http_images(s3, s3_app):
    big = s3.put(f"{PREFIX}big.png", b"\x89PNG" + b"\0" * 3000)
    text = s3.put(f"{PREFIX}notes.png", b"this is not a picture")
    good = s3.put(f"{PREFIX}good.png", photo(1))
    rows = [
        ["big", "Big", "c", "", big],
        ["text", "Text", "c", "", text],
        ["good", "G", "c", "", good],
    ]
    assert len(photo(1)) < 2000
    _, report = get_service(s3_app(rows, max_upload_mb=0.002)).sync()
    assert report.failed["big"] == f"{big}: the object is larger than the 2097 bytes limit"
    assert report.failed["text"].startswith("not a recognised image")
    assert report.added == ["good"] and len(report.failed) == 2


@pytest.mark.slow
def test_s3_endpoint_that_drips_is_cut_off_at_the_fetch_timeout(s3_app, tmp_path):
    drip = ImageServer(
        {
            "/bucket/": lambda h: (
                h.reply(200, "image/png", b"", length="100000"),
                h.dribble(b"x" * 60),
            )
        }
    )
    for server in serve(drip):
        rows = [["slow", "Slow", "c", "", "s3://bucket/slow.png"]]
        app = s3_app(rows, s3_endpoint_url=server.url(""), fetch_timeout=1.0)
        _, report = get_service(app).sync()
        assert report.failed == {"slow": "s3://bucket/slow.png: took longer than 1 s to download"}


def test_s3_catalog_file_with_relative_photos_is_read_only_and_reread_on_reindex(s3, s3_app):
    for i in range(3):
        s3.put(f"shop/images/p{i}.png", photo(i))
    listing = io.StringIO()
    writer = csv.writer(listing)
    writer.writerows(
        [
            ["id", "name", "category", "price", "image_url"],
            *[[f"p{i}", f"P{i}", "c", "2", f"images/p{i}.png"] for i in range(2)],
        ]
    )
    s3.put("shop/products.csv", listing.getvalue().encode())
    app = s3_app(catalog_path=f"s3://{BUCKET}/shop/products.csv", admin_token="a" * 20)
    service = get_service(app)
    catalog, report = service.sync()
    assert report.added == ["p0", "p1"]
    assert catalog.get("p0").image_url == f"s3://{BUCKET}/shop/images/p0.png"
    client = app.test_client()
    auth = {"Authorization": "Bearer " + "a" * 20}
    refused = client.delete("/api/admin/products/p0", headers=auth)
    assert refused.status_code == 409
    document = client.get("/api/openapi.json").get_json()
    check_documented(document, "delete", "/api/admin/products/{product_id}", refused)
    assert refused.get_json()["message"].startswith(
        f"the catalog is read from s3://{BUCKET}/shop/products.csv; change products.csv there"
    )
    writer.writerow(["p2", "P2", "c", "2", "images/p2.png"])
    s3.put("shop/products.csv", listing.getvalue().encode())
    answer = client.post("/api/admin/reindex", headers=auth).get_json()
    assert answer["added"] == 1 and service.indexed_count() == 3


def test_s3_catalog_path_must_name_an_object():
    for url in ("s3://bucket", "s3://bucket/", "s3://bucket/folder/"):
        with pytest.raises(ConfigError, match="must name one object"):
            load_settings(environ={"CATALOG_PATH": url})
    with pytest.raises(ConfigError, match="S3_ENDPOINT_URL='minio:9000' must be an http"):
        load_settings(environ={"S3_ENDPOINT_URL": "minio:9000"})


@pytest.mark.parametrize(
    "url",
    [
        "s3://shop-photos/shop/photos/p1.png",
        "S3://b/k.png",
        "file:///etc/passwd",
        "ftp://images.example/x.png",
    ],
)
def test_s3_pasted_query_url_is_refused_on_page_and_api_and_never_reaches_s3(tmp_path, url):
    # S3_ENDPOINT_URL is a recording server: any S3 request at all would show up in `seen`.
    for recorder in serve(ImageServer()):
        from tests.support.catalogs import make_app_config, write_catalog

        config = make_app_config(tmp_path, write_catalog(tmp_path / "shop"))
        app = create_app(config | {"s3_endpoint_url": recorder.url(""), "SECRET_KEY": "t"})
        client = app.test_client()
        scheme = url.split(":")[0].lower()
        message = f"image_url must be an http:// or https:// address; {scheme}:// addresses are not fetched"
        api = client.post("/api/search", json={"image_url": url})
        assert api.status_code == 400 and api.get_json()["message"] == message
        page = client.post("/search", data={"image_url": url})
        assert page.status_code == 400
        worded = message.replace("image_url", "the image url")  # the page words it for people
        assert worded in html.unescape(page.get_data(as_text=True)).lower()
        service = get_service(app)
        with pytest.raises(Exception, match="scheme .* is not allowed"):
            service.search_url(url)
        assert recorder.seen == []


def test_s3_catalog_command_lists_every_image_under_a_prefix(s3, s3_app, tmp_path):
    s3.put(f"{PREFIX}milk/oat-milk_1l.jpg", image_bytes(draw_image("yellow"), "JPEG"))
    s3.put(f"{PREFIX}milk/oat-milk_1l.png", photo(2))
    s3.put(f"{PREFIX}Red_Apple.PNG", photo(0))
    s3.put(f"{PREFIX}notes.txt", b"not a photo")
    s3.put("elsewhere/x.png", photo(1))
    output = tmp_path / "built" / "products.csv"
    app = s3_app(catalog_path=output)
    runner = app.test_cli_runner()
    done = runner.invoke(args=["catalog", "from-s3", f"s3://{BUCKET}/{PREFIX}", str(output)])
    assert done.exit_code == 0, done.output
    assert f"wrote 3 products to {output}" in done.output
    with output.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows == [
        ["id", "name", "category", "price", "image_url"],
        ["Red_Apple", "Red Apple", "", "", f"s3://{BUCKET}/{PREFIX}Red_Apple.PNG"],
        [
            "milk/oat-milk_1l",
            "Oat milk 1l",
            "milk",
            "",
            f"s3://{BUCKET}/{PREFIX}milk/oat-milk_1l.jpg",
        ],
        [
            "milk/oat-milk_1l.png",
            "Oat milk 1l",
            "milk",
            "",
            f"s3://{BUCKET}/{PREFIX}milk/oat-milk_1l.png",
        ],
    ]
    again = runner.invoke(args=["catalog", "from-s3", f"s3://{BUCKET}/{PREFIX}", str(output)])
    assert again.exit_code == 2 and "pass --overwrite" in again.output
    _, report = get_service(app).sync()
    assert report.summary().startswith("3 added, 0 updated, 0 removed, 0 unchanged, 0 failed")
    missing = runner.invoke(
        args=["catalog", "from-s3", "s3://no-such-bucket/x/", str(tmp_path / "n.csv")]
    )
    assert missing.exit_code == 1 and "s3://no-such-bucket/x/: no such bucket" in missing.output


def test_s3_out_of_reach_keeps_the_indexed_photos(s3, s3_app):
    from tests.support.mariadb import free_port

    rows = [[f"p{i}", f"P{i}", "c", "", s3.put(f"{PREFIX}p{i}.png", photo(i))] for i in range(3)]
    _, report = get_service(s3_app(rows)).sync()
    assert report.added == ["p0", "p1", "p2"]
    away = get_service(s3_app(s3_endpoint_url=f"http://127.0.0.1:{free_port()}"))
    _, report = away.sync()
    assert report.summary().startswith("0 added, 0 updated, 0 removed, 3 unchanged, 0 failed")
    assert away.store.count() == 3
