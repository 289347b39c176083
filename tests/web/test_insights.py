"""Shop insights over HTTP: searches land in the log, the owner's page and exports, CSV results,
and a log that cannot be written never touches a search."""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
import json
import logging
import re
import sqlite3
from pathlib import Path

import pytest

from backend import create_app
from backend.extensions import get_service
from backend.web.telemetry import get_search_log
from tests.support.catalogs import (
    DEFAULT_ITEMS,
    draw_image,
    image_bytes,
    make_app_config,
    write_catalog,
)
from tests.support.http_servers import ImageServer, serve
from tests.support.searchlog import at, make_record, seed

ADMIN = "owner-token-0123456789"
EVIL_NAME = '=HYPERLINK("http://evil.example","Cyan box")'
ITEMS = [*DEFAULT_ITEMS[:-1], ("p7", EVIL_NAME, "outdoor", "cyan", "square")]
RED_PNG = image_bytes(draw_image("red", "circle", (320, 240)))
TODAY = dt.datetime.now(dt.UTC).date()
YESTERDAY = TODAY - dt.timedelta(days=1)


def basic(password: str, user: str = "owner") -> dict[str, str]:
    raw = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


BEARER = {"Authorization": f"Bearer {ADMIN}"}


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("insights")
    write_catalog(root / "shop", ITEMS)
    return root


def make_app(root: Path, **settings):
    config = make_app_config(root, root / "shop" / "products.csv")
    return create_app(config | {"SECRET_KEY": "test-secret"} | settings)


@pytest.fixture(scope="module")
def live_app(root):
    app = make_app(
        root, admin_token=ADMIN, fetch_allow_loopback=True, search_log_path=root / "live.sqlite"
    )
    get_service(app).sync()
    return app


@pytest.fixture(scope="module")
def image_server():
    photo = {"/photos/": lambda h: h.reply(200, "image/png", RED_PNG)}
    yield from serve(ImageServer(photo))


def last_rows(app, count: int) -> list[dict]:
    search_log = get_search_log(app)
    assert search_log.flush()
    conn = sqlite3.connect(search_log.path)
    conn.row_factory = sqlite3.Row
    try:
        found = conn.execute("SELECT * FROM searches ORDER BY id DESC LIMIT ?", (count,))
        return [dict(row) for row in reversed(found.fetchall())]
    finally:
        conn.close()


def upload(client, path: str = "/api/search", **fields):
    return client.post(path, data={"file": (io.BytesIO(RED_PNG), "red.png"), **fields})


def test_api_searches_are_logged_with_their_fields(live_app, image_server):
    client = live_app.test_client()
    body = upload(client, category="toys", k="5", threshold="0.5").json
    by_url = client.post(
        "/api/search",
        json={
            "image_url": image_server.url("/photos/red.png?token=secret"),
            "threshold": 0.99,
        },
    ).json
    assert "results" in by_url, by_url
    similar = client.get("/api/products/p1/similar?k=3&threshold=0&max_price=12").json
    first, second, third = last_rows(live_app, 3)

    shown = [hit["id"] for hit in body["results"]]
    assert {
        key: first[key]
        for key in (
            "channel",
            "kind",
            "ref",
            "category",
            "k",
            "threshold",
            "min_price",
            "max_price",
        )
    } == {
        "channel": "api",
        "kind": "upload",
        "ref": None,
        "category": "toys",
        "k": 5,
        "threshold": 0.5,
        "min_price": None,
        "max_price": None,
    }
    assert (first["shown"], first["hidden"]) == (len(shown), body["hidden_below_threshold"])
    top = [pid for pid, _ in json.loads(first["top"])]
    assert top[: len(shown)] == shown and len(top) == len(shown) + first["hidden"]
    assert first["best_id"] == top[0]
    assert first["took_ms"] == pytest.approx(body["took_ms"], abs=0.01)
    assert all(first[f"{stage}_ms"] > 0 for stage in ("decode", "embed", "rank"))
    assert first["model"] == get_service(live_app).embedder.identity

    assert (second["kind"], second["ref"], second["threshold"]) == ("url", "127.0.0.1", 0.99)
    assert second["shown"] == len(by_url["results"])

    assert (third["kind"], third["ref"], third["k"], third["max_price"]) == ("similar", "p1", 3, 12)
    assert [pid for pid, _ in json.loads(third["top"])] == [h["id"] for h in similar["results"]]
    assert third["decode_ms"] is None and third["rank_ms"] > 0


def test_page_searches_are_logged_upload_url_refine_and_similar(live_app, image_server):
    client = live_app.test_client()
    page = upload(client, "/search", threshold="60", k="6").get_data(as_text=True)
    token = re.search(r'name="query" value="([^"]+)"', page).group(1)
    client.post("/search", data={"query": token, "threshold": "10", "category": "clothes"})
    client.post("/search", data={"image_url": image_server.url("/photos/red.png")})
    client.get("/products/p2/similar?threshold=0&k=4")
    rows = last_rows(live_app, 4)
    assert [(r["channel"], r["kind"], r["ref"]) for r in rows] == [
        ("page", "upload", None),
        ("page", "refine", None),
        ("page", "url", "127.0.0.1"),
        ("page", "similar", "p2"),
    ]
    assert (rows[0]["threshold"], rows[0]["k"]) == (0.6, 6)
    assert (rows[1]["threshold"], rows[1]["category"]) == (0.1, "clothes")
    assert rows[1]["decode_ms"] is None  # a refinement reuses the embedding
    assert rows[3]["k"] == 4


def test_the_log_keeps_no_image_no_address_no_agent_and_no_url_path(live_app, image_server):
    client = live_app.test_client()
    visitor = {"REMOTE_ADDR": "203.0.113.77", "HTTP_USER_AGENT": "Agent-Smith/4.2"}
    upload(client, environ_base=visitor)
    client.post(
        "/api/search",
        environ_base=visitor,
        json={"image_url": image_server.url("/photos/red.png?session=s3cr3t")},
    )
    get_search_log(live_app).flush()
    stored = b"".join(path.read_bytes() for path in live_app_log_files(live_app))
    for secret in (b"203.0.113.77", b"Agent-Smith", b"s3cr3t", b"/photos/", b"\x89PNG", b"IDAT"):
        assert secret not in stored


def live_app_log_files(app) -> list[Path]:
    path = get_search_log(app).path
    return [p for p in path.parent.glob(path.name + "*") if p.is_file()]


def test_a_failed_search_is_not_logged(live_app):
    client = live_app.test_client()
    before = last_rows(live_app, 1)
    assert (
        client.post("/api/search", data={"file": (io.BytesIO(b"junk"), "x.png")}).status_code == 400
    )
    assert last_rows(live_app, 1) == before


# Results as CSV


def parse_csv(response) -> list[dict]:
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith("attachment;")
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def test_api_results_as_csv_match_the_json_and_neutralise_formulas(live_app):
    client = live_app.test_client()
    as_json = client.get("/api/products/p1/similar?threshold=0").json["results"]
    rows = parse_csv(client.get("/api/products/p1/similar?threshold=0&format=csv"))
    assert [row["id"] for row in rows] == [hit["id"] for hit in as_json]
    assert list(rows[0]) == [
        "rank",
        "id",
        "name",
        "category",
        "price",
        "similarity",
        "match",
        "image_url",
    ]
    assert [row["rank"] for row in rows] == [str(n) for n in range(1, len(rows) + 1)]
    evil = next(row for row in rows if row["id"] == "p7")
    assert evil["name"] == "'" + EVIL_NAME
    assert float(rows[0]["similarity"]) == pytest.approx(as_json[0]["similarity"], abs=1e-6)
    uploaded = parse_csv(upload(client, threshold="0", format="csv"))
    assert len(uploaded) == 7 and uploaded[0]["id"] == "p1"


def test_the_results_page_downloads_its_results_as_csv(live_app):
    client = live_app.test_client()
    page = upload(client, "/search", threshold="0").get_data(as_text=True)
    assert 'name="format" value="csv"' in page  # the "Download results (CSV)" button
    token = re.search(r'name="query" value="([^"]+)"', page).group(1)
    rows = parse_csv(
        client.post("/search", data={"query": token, "threshold": "0", "k": "3", "format": "csv"})
    )
    assert [row["id"] for row in rows][:1] == ["p1"] and len(rows) == 3
    similar = parse_csv(client.get("/products/p1/similar?threshold=0&format=csv"))
    assert "p1" not in [row["id"] for row in similar] and len(similar) == 6


def test_an_unknown_format_is_refused(live_app):
    response = live_app.test_client().get("/api/products/p1/similar?format=xml")
    assert response.status_code == 400
    assert response.json["message"] == "format=xml must be csv, or left out"


# The owner's page


@pytest.fixture(scope="module")
def seeded_app(root):
    path = root / "seeded.sqlite"
    seed(
        path,
        [
            make_record(
                at(TODAY, 0, 1),
                top=(("p1", 0.95),),
                shown=1,
                hidden=0,
                took_ms=20.0,
                category="toys",
            ),
            make_record(
                at(TODAY, 0, 2),
                top=(("p1", 0.88),),
                shown=1,
                hidden=0,
                took_ms=40.0,
                category="toys",
                channel="page",
            ),
            make_record(
                at(TODAY, 0, 3),
                top=(("p3", 0.42),),
                shown=0,
                hidden=1,
                took_ms=60.0,
                kind="url",
                ref="shop.example",
                category="=HYPERLINK(1)",
                min_price=5.0,
            ),
            make_record(
                at(TODAY, 0, 4),
                top=(("gone", 0.3),),
                shown=0,
                hidden=1,
                took_ms=80.0,
                kind="similar",
                ref="p2",
            ),
            make_record(at(YESTERDAY, 12), top=(("p2", 0.71),), shown=1, hidden=0, took_ms=100.0),
            make_record(at(YESTERDAY, 13), top=(("p1", 0.75),), shown=1, hidden=0, took_ms=120.0),
            make_record(at(TODAY - dt.timedelta(days=40)), took_ms=500.0),
        ],
    )
    return make_app(root, admin_token=ADMIN, search_log_path=path)


def stat(page: str, name: str) -> str:
    return re.search(rf'data-stat="{name}">([^<]*)<', page).group(1)


def test_the_insights_page_shows_the_logs_figures(seeded_app):
    response = seeded_app.test_client().get("/insights", headers=basic(ADMIN))
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    page = response.get_data(as_text=True)
    # Six searches in the last 30 days; 2 showed nothing; best >= 0.5 (the app's threshold): 4.
    assert stat(page, "searches") == "6"
    assert stat(page, "no-match") == "33%"
    assert stat(page, "best-at-or-above") == "67%"
    # took_ms sorted: 20 40 60 80 100 120 -> nearest-rank p50 = 3rd = 60, p95 = 6th = 120.
    assert (stat(page, "p50"), stat(page, "p95")) == ("60 ms", "120 ms")
    for title in (
        "Searches per day",
        "Searches with no result at or above their threshold",
        "Products most often shown first",
        "Categories shoppers filter by",
        "Similarity of the best match",
        "Search time per day, median and 95th percentile",
    ):
        assert f">{title}</title>" in page
    searches_chart = page.split('id="chart-searches"')[1].split("</svg>")[0]
    assert searches_chart.count('class="chart-bar"') == 30
    assert f"{TODAY}: 4 searches" in searches_chart and f"{YESTERDAY}: 2 searches" in page
    products = page.split('id="chart-products"')[1].split("</svg>")[0]
    assert "<title>Red ball (p1): 3</title>" in products
    assert "threshold 0.50" in page  # marked on the similarity histogram


def test_the_demand_we_dont_serve_lists_unserved_searches_and_what_came_closest(seeded_app):
    page = seeded_app.test_client().get("/insights", headers=BEARER).get_data(as_text=True)
    table = page.split("data-unserved>")[1].split("</table>")[0]
    rows = re.findall(r"<tr>(.*?)</tr>", table, re.DOTALL)[1:]
    text = [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row)).strip() for row in rows]
    assert text == [
        f"{TODAY} 00:04 More like Red box API — 0.50 gone (no longer in the catalog) 0.30",
        f"{TODAY} 00:03 Photo from shop.example API =HYPERLINK(1), 5–any 0.50 Green ball (p3) 0.42",
    ]


def test_the_window_can_be_chosen(seeded_app):
    client = seeded_app.test_client()
    page = client.get("/insights?days=90", headers=BEARER).get_data(as_text=True)
    assert stat(page, "searches") == "7"
    page = client.get(f"/insights?from={YESTERDAY}&to={YESTERDAY}", headers=BEARER)
    assert stat(page.get_data(as_text=True), "searches") == "2"
    bad = client.get("/insights?from=2026-13-01", headers=BEARER)
    assert bad.status_code == 400 and "must be a date like 2026-05-01" in bad.get_data(as_text=True)
    backwards = client.get(f"/insights?from={TODAY}&to={YESTERDAY}", headers=BEARER)
    assert backwards.status_code == 400
    assert client.get("/insights?days=400", headers=BEARER).status_code == 400


def test_an_empty_log_says_so(root):
    app = make_app(root, admin_token=ADMIN, search_log_path=root / "empty" / "none.sqlite")
    page = app.test_client().get("/insights", headers=BEARER).get_data(as_text=True)
    assert stat(page, "searches") == "0"
    assert "No searches were logged in this period" in page


@pytest.mark.parametrize(
    "headers",
    [
        {},
        basic("wrong-token-0123456789"),
        {"Authorization": "Bearer nope"},
        {"Authorization": "Basic !!!"},
        {"Authorization": f"Digest {ADMIN}"},
    ],
)
def test_the_page_and_exports_need_the_admin_token(seeded_app, headers):
    client = seeded_app.test_client()
    for path in ("/insights", "/insights/searches.csv", "/insights/searches.json"):
        response = client.get(path, headers=headers)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith('Basic realm="Shop insights"')
        assert "data-stat" not in response.get_data(as_text=True)


def test_any_user_name_with_the_token_as_password_signs_in(seeded_app):
    client = seeded_app.test_client()
    assert client.get("/insights", headers=basic(ADMIN, user="")).status_code == 200
    assert client.get("/insights", headers=basic(ADMIN, user="shop")).status_code == 200


def test_without_an_admin_token_insights_are_off(root):
    app = make_app(root)
    response = app.test_client().get("/insights", headers=basic("anything"))
    assert response.status_code == 403
    assert "set ADMIN_TOKEN" in response.get_data(as_text=True)
    assert "Shop insights" not in app.test_client().get("/products").get_data(as_text=True)


# Exports of the log


def test_the_log_exports_as_csv_for_a_date_range(seeded_app):
    client = seeded_app.test_client()
    response = client.get(f"/insights/searches.csv?from={TODAY}&to={TODAY}", headers=BEARER)
    assert response.headers["Content-Disposition"] == (
        f'attachment; filename="searches-{TODAY}-to-{TODAY}.csv"'
    )
    rows = parse_csv(response)
    assert [row["took_ms"] for row in rows] == ["20.0", "40.0", "60.0", "80.0"]
    assert rows[2]["category"] == "'=HYPERLINK(1)"
    assert rows[2]["query"] == "shop.example"
    assert rows[0]["time"] == f"{TODAY}T00:01:00.000Z"


def test_the_log_exports_as_json(seeded_app):
    response = seeded_app.test_client().get("/insights/searches.json?days=90", headers=BEARER)
    assert response.status_code == 200 and response.mimetype == "application/json"
    items = json.loads(response.get_data(as_text=True))
    assert len(items) == 7
    assert items[0]["took_ms"] == 500.0  # oldest first
    assert items[-1]["top"] == [{"id": "gone", "similarity": 0.3}]


# A log that cannot be written


def test_an_unwritable_log_leaves_searches_working(root, caplog):
    blocker = root / "not-a-folder"
    blocker.write_text("a file where the log's folder should be")
    app = make_app(root, search_log_path=blocker / "searches.sqlite")
    client = app.test_client()
    with caplog.at_level(logging.WARNING, logger="backend.insights.log"):
        assert upload(client, threshold="0").json["results"][0]["id"] == "p1"
        assert upload(client, "/search", threshold="0").status_code == 200
        assert get_search_log(app).flush()
    assert get_search_log(app).failed == 2
    assert "could not write" in caplog.text


def test_a_locked_log_leaves_searches_working_and_catches_up(root):
    path = root / "locked.sqlite"
    seed(path, [])
    app = make_app(root, search_log_path=path)
    search_log = get_search_log(app)
    search_log.busy_timeout = 0.2
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        assert upload(app.test_client(), threshold="0").status_code == 200
        assert search_log.flush()
        assert search_log.failed == 1
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_logging_off_writes_nothing(root):
    path = root / "off" / "searches.sqlite"
    app = make_app(root, admin_token=ADMIN, search_log_days=0, search_log_path=path)
    assert get_search_log(app) is None
    client = app.test_client()
    assert upload(client, threshold="0").status_code == 200
    assert not path.parent.exists()
    page = client.get("/insights", headers=BEARER).get_data(as_text=True)
    assert "The search log is off" in page


def test_openapi_describes_the_csv_format(live_app):
    document = live_app.test_client().get("/api/openapi.json").json
    for path, method in (("/api/search", "post"), ("/api/products/{product_id}/similar", "get")):
        operation = document["paths"][path][method]
        (param,) = [p for p in operation["parameters"] if p["name"] == "format"]
        assert param["schema"]["enum"] == ["json", "csv"]
        assert "text/csv" in operation["responses"]["200"]["content"]


def test_csv_image_links_ignore_a_forged_host(live_app, root):
    evil = {"Host": "evil.example"}
    rows = parse_csv(
        live_app.test_client().get("/api/products/p1/similar?threshold=0&format=csv", headers=evil)
    )
    assert rows and all(row["image_url"].startswith("/images/") for row in rows)
    app = make_app(root, public_base_url="https://shop.example")
    get_service(app).sync()
    for path in (
        "/api/products/p1/similar?threshold=0&format=csv",
        "/products/p1/similar?threshold=0&format=csv",
    ):
        rows = parse_csv(app.test_client().get(path, headers=evil))
        assert rows and all(
            row["image_url"].startswith("https://shop.example/images/") for row in rows
        )


# Dates at the ends of the calendar, and a log that cannot be read


@pytest.mark.parametrize(
    "query",
    [
        "from=0001-01-01&to=0001-01-01",
        "to=0001-01-05",
        "from=9999-12-31&to=9999-12-31",
        "from=0001-01-01",
        "from=9999-12-31",
        f"from=0001-01-01&to={TODAY}",
    ],
)
def test_dates_at_the_ends_of_the_calendar_are_a_400_before_any_body(seeded_app, query):
    client = seeded_app.test_client()
    for path in ("/insights", "/insights/searches.csv", "/insights/searches.json"):
        response = client.get(f"{path}?{query}", headers=BEARER | {"Accept": "application/json"})
        assert response.status_code == 400, (path, query)
        assert response.json["error"] == "invalid_input"


def test_a_range_into_the_future_ends_today(seeded_app):
    client = seeded_app.test_client()
    start = YESTERDAY
    page = client.get(f"/insights?from={start}&to=9999-12-31", headers=BEARER)
    assert page.status_code == 200 and stat(page.get_data(as_text=True), "searches") == "6"
    response = client.get(f"/insights/searches.json?from={start}&to=9999-12-31", headers=BEARER)
    assert response.status_code == 200 and len(json.loads(response.get_data(as_text=True))) == 6
    assert response.headers["Content-Disposition"].endswith(f'searches-{start}-to-{TODAY}.json"')


def junk_log(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(range(256)) * 64)
    return path


def damaged_log(path: Path) -> Path:
    """A real log whose pages after the file header were overwritten."""
    seed(path, [make_record(at(TODAY)) for _ in range(50)])
    with path.open("r+b") as file:
        file.seek(100)
        file.write(b"\xff" * 8000)
    return path


@pytest.mark.parametrize("damage", [junk_log, damaged_log])
def test_an_unreadable_log_answers_503_on_insights_while_searches_go_on(root, damage):
    path = damage(root / damage.__name__ / "searches.sqlite")
    app = make_app(root, admin_token=ADMIN, search_log_path=path)
    get_service(app).sync()
    client = app.test_client()
    assert upload(client, threshold="0").json["results"][0]["id"] == "p1"
    for path_ in ("/insights", "/insights/searches.csv", "/insights/searches.json"):
        response = client.get(path_, headers=BEARER)
        assert response.status_code == 503, path_
        assert "The search log (searches.sqlite) cannot be read" in response.get_data(as_text=True)
        as_json = client.get(path_, headers=BEARER | {"Accept": "application/json"}).json
        assert as_json["error"] == "search_log_unreadable"
    assert upload(client, "/search", threshold="0").status_code == 200
    assert client.get("/api/products/p1/similar").status_code == 200


# A log at its size bound


SEEDED = 20_000


def test_a_full_log_deletes_its_oldest_searches_and_says_so_on_the_page_and_metrics(root):
    path = root / "full" / "searches.sqlite"
    old = TODAY - dt.timedelta(days=20)
    seed(path, [make_record(at(old) + number) for number in range(SEEDED)])  # about 2.6 MB
    scraper = "scraper-token-0123456789"
    app = make_app(
        root, admin_token=ADMIN, metrics_token=scraper, search_log_path=path, search_log_max_mb=1
    )
    get_service(app).sync()
    client = app.test_client()
    assert upload(client, threshold="0").status_code == 200
    assert get_search_log(app).flush()
    conn = sqlite3.connect(path)
    (kept,) = conn.execute("SELECT COUNT(*) FROM searches").fetchone()
    conn.close()
    assert 0 < kept < SEEDED + 1
    page = client.get("/insights?days=90", headers=BEARER).get_data(as_text=True)
    assert stat(page, "searches") == str(kept)
    assert stat(page, "pruned-for-size") == str(SEEDED + 1 - kept)
    assert (
        "The search log reached its size limit" in page and f"{SEEDED + 1 - kept:,} of the" in page
    )
    assert "within 1.0 MB" in page
    metrics = client.get("/metrics", headers={"Authorization": f"Bearer {scraper}"})
    line = f'image_search_search_log_pruned_total{{reason="size"}} {float(SEEDED + 1 - kept)}'
    assert line in metrics.get_data(as_text=True)


def test_a_log_locked_past_the_busy_timeout_answers_503_try_again(root, monkeypatch):
    from backend.insights import records

    monkeypatch.setattr(records, "BUSY_TIMEOUT_SECONDS", 0.1)
    path = root / "held" / "searches.sqlite"
    seed(path, [make_record(at(TODAY))])
    app = make_app(root, admin_token=ADMIN, search_log_path=path)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")  # held until the connection closes
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("DELETE FROM searches WHERE id = 0")
    holder.execute("COMMIT")
    try:
        response = app.test_client().get("/insights", headers=BEARER)
    finally:
        holder.close()
    assert response.status_code == 503
    assert "database is locked. Try again in a moment." in response.get_data(as_text=True)
    assert app.test_client().get("/insights", headers=BEARER).status_code == 200
