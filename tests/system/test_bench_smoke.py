"""The benchmark suite's pieces run on tiny inputs, and its search methods agree."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from bench import indexing, remote, report, search_latency, search_log, startup
from bench.common import Context, Figure
from bench.slow_server import SlowImageServer
from tests.support.catalogs import draw_image, write_catalog


def test_every_search_method_returns_the_same_top_k():
    pytest.importorskip("faiss")
    vectors = search_latency.unit_vectors(3000, dim=64)
    search = search_latency.methods(vectors)
    for query in search_latency.unit_vectors(5, dim=64, seed=7):
        answers = {name: fn(query) for name, fn in search.items()}
        assert len(answers["engine"]) == search_latency.K
        assert all(answer == answers["engine"] for answer in answers.values()), answers


def test_search_measure_reports_a_median_per_method():
    pytest.importorskip("faiss")
    result = search_latency.measure(500, rounds=1, busy=False, block=2)
    assert result["agree"]
    assert set(result["ms"]) == {"engine", "faiss_flat_ip", "numpy_plain", "naive_loop"}
    assert all(ms > 0 for ms in result["ms"].values())
    figure = search_latency.figure({**result, "n": search_latency.CHECKED_N})
    assert figure.key == "search_50k" and figure.met is not None
    assert figure.ratio == pytest.approx(result["ms"]["numpy_plain"] / result["ms"]["engine"])


@pytest.mark.slow
def test_busy_core_runs_an_inference_loop_on_one_core_until_the_block_ends():
    with search_latency.busy_core() as loop:
        stat = Path(f"/proc/{loop.pid}/stat")
        cpu = lambda: sum(int(v) for v in stat.read_text().rsplit(")", 1)[1].split()[11:13])  # noqa: E731
        before = cpu()
        time.sleep(1.0)
        # Clock ticks (1/100 s): it computes, however loaded the machine is.
        assert cpu() - before >= 5
        assert os.sched_getaffinity(loop.pid) == {max(os.sched_getaffinity(0))}
    assert loop.poll() is not None  # stopped with the block


def test_slow_server_adds_latency_and_serves_only_images(tmp_path):
    (tmp_path / "images").mkdir()
    draw_image("red").save(tmp_path / "images" / "a.png")
    (tmp_path / "secret.txt").write_text("not for you")
    with SlowImageServer(tmp_path, latency=0.05) as server:
        start = time.perf_counter()
        with urllib.request.urlopen(server.url("images/a.png"), timeout=5) as response:
            assert response.read() == (tmp_path / "images" / "a.png").read_bytes()
        assert time.perf_counter() - start >= 0.05
        for path in ("secret.txt", "images/../secret.txt", "images/missing.png"):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(server.url(path), timeout=5)
            refused.value.close()
            assert refused.value.code == 404
    assert server.requests == 4


def test_slow_server_stops_by_itself(tmp_path):
    server = SlowImageServer(tmp_path, latency=0, lifetime=0.2)
    server.__enter__()
    time.sleep(1.0)
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(server.url("images/a.png"), timeout=2)


def test_index_probe_starts_a_process_on_a_synthetic_warm_index(tmp_path):
    catalog, index = startup.synthetic_catalog(tmp_path, 300, "m/w/p1")
    result = startup.probe("index", str(catalog), str(index))
    assert result["rows"] == 300
    seconds = result["seconds"]
    assert 0 < seconds["imported"] <= seconds["catalog"] <= seconds["index"] <= seconds["ready"]


@pytest.mark.slow
def test_local_indexing_and_unchanged_resync_on_a_tiny_catalog(tmp_path):
    ctx = Context(quick=True, bench_catalog=tmp_path / "shop", data_dir=tmp_path / "data")
    write_catalog(ctx.bench_catalog)
    local, lite0, resync = indexing.run(ctx)
    assert local.detail["images"] == 7
    assert local.value > 0 and local.baseline_value > 0
    assert local.ratio == pytest.approx(local.value / local.baseline_value)
    # The demo's model, with its real weights, on the same photos.
    assert lite0.key == "indexing_local_efficientnet_lite0" and lite0.detail["images"] == 7
    assert lite0.value > 0 and "ImageNet weights" in lite0.what
    assert resync.detail == {"images_read": 0, "images_decoded": 0}
    assert resync.met is None  # 7 items: the 6,308-item target is not checked


@pytest.mark.slow
def test_remote_indexing_fetches_concurrently_on_a_tiny_catalog(tmp_path):
    ctx = Context(quick=True, bench_catalog=tmp_path / "shop", data_dir=tmp_path / "data")
    write_catalog(ctx.bench_catalog)
    indexed, download = remote.run(ctx)
    assert indexed.value > 0 and indexed.baseline_value > 0 and indexed.note == "0 failed"
    assert download.note == "0 failed" and download.ratio > 0
    assert download.detail["peak_concurrent_requests"] > 1  # the downloads overlapped


def test_report_writes_markdown_json_and_a_chart(tmp_path):
    figures = [
        Figure(
            "indexing_local",
            "Indexing, local images",
            "photos",
            10.0,
            "images/s",
            "ceiling",
            11.0,
            10 / 11,
            ">= 0.85x the ceiling",
            True,
        ),
        Figure(
            "search_50k",
            "Search latency",
            "one query",
            3.0,
            "ms",
            "numpy",
            2.9,
            2.9 / 3,
            "<= numpy",
            False,
            detail={
                "n": 50_000,
                "ms": dict.fromkeys(("engine", "numpy_plain", "faiss_flat_ip", "naive_loop"), 3.0),
            },
        ),
        Figure("ready_index_50k", "Cold start", "first search", 0.8, "s", note="imports 0.2 s"),
    ]
    meta = {"command": "python -m bench --quick", "date": "today", "machine": {"cores": 2}}
    report.write_results(figures, meta, tmp_path)
    text = (tmp_path / "RESULTS.md").read_text()
    assert (
        "| Indexing, local images: photos | 10.0 images/s | ceiling | 11.0 images/s | 0.91x |"
        in text
    )
    assert "Targets not met: search_50k." in text
    assert "- **ready_index_50k**: imports 0.2 s" in text
    assert json.loads((tmp_path / "results.json").read_text())["figures"][1]["met"] is False
    assert (tmp_path / "results.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_search_log_overhead_is_measured_side_by_side(tmp_path):
    result = search_log.measure(1, 1, tmp_path, write_catalog(tmp_path / "shop"))
    assert result["samples"] == {"similar_off": 4, "similar_on": 4, "upload_off": 1, "upload_on": 1}
    assert result["logged"] == 4 + 1 + 6 and result["lost"] == 0  # warm-up searches included
    assert result["record_us"] > 0 and result["cpu_us"] > 0
    figures = search_log.figures(result)
    assert [f.key for f in figures] == [
        "search_log_overhead_similar",
        "search_log_overhead_upload",
        "search_log_record_us",
        "search_log_cpu_us",
    ]
