"""Cold start with a warm index.csv of 10k and 50k synthetic rows; its size; a worker's memory.

Each start is a fresh Python process (`bench.probe`), timed from the moment it was spawned. The
worker runs ONNX Runtime (the served runtime) and, as the baseline, torch eager, alternately.
Before the workers, each index is synced once as the server's start-up does (which writes the
pack the workers load, `backend/index/packed.py`); that sync is not timed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from .common import (
    MODEL_DIR,
    REPO_ROOT,
    Context,
    Figure,
    bench_settings,
    median,
    model_weights,
    read_products,
    write_products,
)
from .search_latency import unit_vectors

READY_TARGET_S = 1.0
SIZE_TARGET_MB = 120.0
RSS_TARGET_MB = 300.0
MODEL = "resnet18"  # 512-d vectors (MODEL=resnet18); random weights, so no download
RUNTIMES = ("onnx", "torch")  # served, baseline


def synthetic_catalog(folder: Path, n: int, model: str) -> tuple[Path, Path]:
    """products.csv of n remote products and a warm index.csv for them (random unit vectors)."""
    rows = [
        [
            f"{i:06d}",
            f"Product {i}",
            f"category {i % 40}",
            f"{5 + i % 50}.99",
            f"https://shop.example/images/{i:06d}.jpg",
        ]
        for i in range(n)
    ]
    catalog = write_products(folder / "products.csv", rows)
    return catalog, synthetic_index(folder / "index.csv", rows, model)


def synthetic_index(path: Path, rows: list[list[str]], model: str) -> Path:
    """A warm index.csv of the catalog rows for `model` (random unit vectors)."""
    from backend.index.index_file import Entry, IndexTable, write_index

    entries = [Entry(row[0], row[4], "", f"{i:064x}", model) for i, row in enumerate(rows)]
    write_index(path, IndexTable(entries, unit_vectors(len(rows))))
    return path


def probe(*args: str) -> dict:
    """Run bench.probe in a fresh interpreter; its stamps become seconds since the spawn."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    spawned = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "bench.probe", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench.probe {args[0]} failed:\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["seconds"] = {name: stamp - spawned for name, stamp in result.pop("stamps").items()}
    return result


def summary(runs: list[dict]) -> dict:
    """Median seconds of each stamp over fresh processes; the last run's other fields."""
    seconds = {name: median([run["seconds"][name] for run in runs]) for name in runs[0]["seconds"]}
    return {**runs[-1], "seconds": seconds, "runs": len(runs)}


def identity_for(runtime: str) -> str:
    """The identity a worker of this runtime serves, without loading either model."""
    from backend.model.specs import RUNTIMES as IDENTITY_RUNTIMES
    from backend.model.specs import SPECS, identity

    return identity(SPECS[MODEL], model_weights(MODEL), IDENTITY_RUNTIMES[runtime])


def server_sync(folder: Path, catalog: Path, index: Path, runtime: str) -> None:
    """What the server runs before its workers start: sync index.csv (and pack it)."""
    from backend.search import SearchService

    settings = bench_settings(
        folder, catalog, folder, model=MODEL, model_runtime=runtime, index_path=index
    )
    _, report = SearchService(settings).sync()
    if report.changed or report.failed:
        raise RuntimeError(f"the synthetic index was not warm: {report.summary()}")


def run(ctx: Context, query_image: Path) -> list[Figure]:
    from backend.model import load_embedder

    load_embedder(MODEL, model_weights(MODEL), model_dir=MODEL_DIR)  # exported before timing
    repeats = 2 if ctx.quick else 3
    figures = []
    for n in (10_000, 50_000):
        folder = ctx.folder(f"startup-{n // 1000}k")
        catalog, served_index = synthetic_catalog(folder, n, identity_for("onnx"))
        rows = read_products(catalog)
        indexes = {"onnx": served_index}
        indexes["torch"] = synthetic_index(folder / "index-torch.csv", rows, identity_for("torch"))
        for runtime, index in indexes.items():
            server_sync(folder, catalog, index, runtime)
        light = summary(
            [probe("index", str(catalog), str(indexes["onnx"])) for _ in range(repeats)]
        )
        workers: dict[str, list[dict]] = {runtime: [] for runtime in RUNTIMES}
        for _ in range(repeats):  # alternated, so both see the same machine load
            for runtime, index in indexes.items():
                args = (str(catalog), str(index), str(query_image), MODEL, runtime, str(MODEL_DIR))
                workers[runtime].append(probe("worker", *args))
        served, baseline = (summary(workers[runtime]) for runtime in RUNTIMES)
        figures += startup_figures(n, light, served, baseline, indexes["onnx"])
    return figures


def startup_figures(n: int, light: dict, worker: dict, torch: dict, index: Path) -> list[Figure]:
    label, checked = f"{n // 1000}k", n == 50_000
    s, w, t = light["seconds"], worker["seconds"], torch["seconds"]
    figures = [
        ready_figure(
            f"ready_index_{label}",
            f"process start to first search, {n:,}-row index.csv (catalog + index, no model)",
            s["ready"],
            checked,
            note=f"imports {s['imported']:.2f} s, catalog {s['catalog'] - s['imported']:.2f} s, "
            f"index.csv {s['index'] - s['catalog']:.2f} s",
            detail=light,
        ),
        ready_figure(
            f"ready_worker_{label}",
            f"process start to a serving worker ready for image search, {n:,} rows "
            f"({MODEL}, ONNX Runtime)",
            w["ready"],
            checked,
            baseline="the same worker on torch eager",
            baseline_value=t["ready"],
            ratio=t["ready"] / w["ready"],
            note=f"app {w['imported']:.2f} s, ONNX Runtime + model {w['model'] - w['imported']:.2f} s, "
            f"index + warm-up {w['ready'] - w['model']:.2f} s; torch eager: app "
            f"{t['imported']:.2f} s, torch import + model {t['model'] - t['imported']:.2f} s, "
            f"index + warm-up {t['ready'] - t['model']:.2f} s",
            detail={"onnx": worker, "torch": torch},
        ),
    ]
    if checked:
        size_mb = index.stat().st_size / 1e6
        rss = worker["peak_rss_mb"]
        figures.append(
            Figure(
                key="index_size_50k",
                section="Cold start",
                what="index.csv on disk, 50,000 rows",
                value=size_mb,
                unit="MB",
                target=f"<= {SIZE_TARGET_MB:g} MB",
                met=size_mb <= SIZE_TARGET_MB,
            )
        )
        figures.append(
            Figure(
                key="memory_50k",
                section="Memory",
                what=f"peak RSS of a serving worker, 50,000 vectors, after image searches "
                f"({MODEL}, ONNX Runtime)",
                value=rss,
                unit="MB",
                baseline="the same worker on torch eager",
                baseline_value=torch["peak_rss_mb"],
                ratio=torch["peak_rss_mb"] / rss,
                target=f"<= {RSS_TARGET_MB:g} MB",
                met=rss <= RSS_TARGET_MB,
                note=f"resident after the app {worker['app_mb']:.0f} MB, with the model "
                f"{worker['model_mb']:.0f} MB, with the index loaded {worker['ready_mb']:.0f} MB; "
                f"torch imported: {'yes' if worker['torch'] else 'no'}. Torch eager: "
                f"{torch['app_mb']:.0f} / {torch['model_mb']:.0f} / {torch['ready_mb']:.0f} MB, "
                f"torch {torch['torch']}",
            )
        )
    return figures


def ready_figure(key: str, what: str, seconds: float, checked: bool, **extra) -> Figure:
    """A cold-start time, held to the target only where it applies (50k rows)."""
    return Figure(
        key=key,
        section="Cold start",
        what=what,
        value=seconds,
        unit="s",
        target=f"<= {READY_TARGET_S:g} s" if checked else None,
        met=seconds <= READY_TARGET_S if checked else None,
        **extra,
    )
