"""A vector damaged on disk (NaN, a row overwritten or moved) is never served.

The pack is refused for index.csv, which is checked row by row; a running server keeps the
index it has, one that has nothing yet serves the intact rows and is not ready, saying why.
"""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest

from backend import create_app
from backend.extensions import get_service
from backend.index.index_file import DAMAGED_ROW, read_index
from backend.index.packed import packed_path, read_packed
from tests.support.catalogs import DEFAULT_ITEMS, draw_image, image_bytes

TOKEN = "owner-admin-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def synced(app_config):
    config = app_config | {"admin_token": TOKEN, "_similarity_threshold": 0.0}
    get_service(create_app(config)).sync()
    return config


def damage_pack(index_path, how: str) -> None:
    """Change the pack's vectors in place: same size, same header, same sources."""
    path = packed_path(index_path)
    table = read_index(index_path)
    rows, dim = table.vectors.shape
    data = bytearray(path.read_bytes())
    offset = len(data) - rows * dim * 4 - rows * 4  # the vectors, then one check per row
    vectors = np.frombuffer(data, dtype="<f4", offset=offset, count=rows * dim)
    vectors = vectors.reshape(rows, dim).copy()
    if how == "nan":
        vectors[2, 5] = np.nan
    elif how == "swapped":
        vectors[[1, 4]] = vectors[[4, 1]]
    elif how == "scaled":
        vectors[3] *= 1.5
    else:  # another unit vector written over one row
        vectors[6] = np.roll(vectors[6], 1)
    data[offset : offset + rows * dim * 4] = vectors.astype("<f4").tobytes()
    path.write_bytes(bytes(data))


def search_api(client):
    photo = image_bytes(draw_image("red", "circle"))
    form = {"file": (io.BytesIO(photo), "q.png"), "threshold": "0"}
    return client.post("/api/search", data=form, content_type="multipart/form-data")


@pytest.mark.parametrize("how", ["nan", "swapped", "scaled", "overwritten"])
def test_a_pack_damaged_in_place_is_refused_for_index_csv(synced, how):
    index_path, catalog_path = synced["index_path"], synced["catalog_path"]
    good = get_service(create_app(synced))
    good.load_index()
    expected = [hit.product.id for hit in good.search_similar("p1", k=6).hits]
    damage_pack(index_path, how)

    worker_app = create_app(synced)
    worker = get_service(worker_app)
    worker.load_index()
    assert worker.indexed_count() == len(DEFAULT_ITEMS)
    assert [hit.product.id for hit in worker.search_similar("p1", k=6).hits] == expected
    client = worker_app.test_client()
    found = search_api(client)
    assert found.status_code == 200 and len(found.json["results"]) == len(DEFAULT_ITEMS)
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json["status"] == "ready"
    assert "index.csv.packed was refused" in ready.json["problem"]

    # The next sync packs the files again (the damaged pack is not taken as current).
    get_service(create_app(synced)).sync()
    assert read_packed(index_path, catalog_path) is not None


def write_damaged_index(index_path, product_id: str) -> None:
    """Put NaNs in one product's vector cell of index.csv (the file stays well-formed)."""
    lines = index_path.read_text().splitlines(keepends=True)
    dim = read_index(index_path).vectors.shape[1]
    nan = base64.b64encode(np.full(dim, np.nan, dtype="<f2").tobytes()).decode()
    for number, line in enumerate(lines):
        if line.startswith(f"{product_id},"):
            lines[number] = line.rsplit(",", 1)[0] + f",{nan}\n"
    index_path.write_text("".join(lines))
    packed_path(index_path).unlink(missing_ok=True)


def test_a_server_starting_on_a_damaged_index_csv_serves_the_intact_rows_and_is_not_ready(synced):
    write_damaged_index(synced["index_path"], "p3")
    app = create_app(synced)
    get_service(app).load_index()
    client = app.test_client()
    found = search_api(client)
    assert found.status_code == 200 and len(found.json["results"]) == len(DEFAULT_ITEMS) - 1
    assert "p3" not in {row["id"] for row in found.json["results"]}
    assert client.get("/products/p1/similar").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.json["status"] == "index_damaged"
    assert ready.json["indexed"] == len(DEFAULT_ITEMS) - 1
    assert "1 damaged row" in ready.json["problem"] and "flask index" in ready.json["problem"]
    details = client.get("/readyz", headers=AUTH).json
    assert {"id": "p3", "reason": DAMAGED_ROW} in details["failed"]


def test_a_running_server_keeps_its_index_when_the_synced_one_is_damaged(synced):
    app = create_app(synced)
    server = get_service(app)
    server.load_index()
    expected = [hit.product.id for hit in server.search_similar("p1", k=6).hits]
    write_damaged_index(synced["index_path"], "p3")
    from backend.index.locks import publish_sync

    publish_sync(synced["index_path"])  # as a sync by another process would
    server.stamp_check_seconds = 0
    assert server.reload_if_synced_elsewhere()
    assert [hit.product.id for hit in server.search_similar("p1", k=6).hits] == expected
    ready = app.test_client().get("/readyz")
    assert ready.status_code == 200 and "1 damaged row" in ready.json["problem"]


def test_flask_index_says_it_embedded_damaged_rows_again(synced):
    write_damaged_index(synced["index_path"], "p3")
    result = create_app(synced).test_cli_runner().invoke(args=["index"])
    assert result.exit_code == 0, result.output
    assert "had 1 damaged row(s)" in result.output
    assert "1 added" in result.output  # p3, embedded again
    assert len(read_index(synced["index_path"])) == len(DEFAULT_ITEMS)
