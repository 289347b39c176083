"""Run the benchmark suite: `python -m bench [--quick] [--only SECTION ...]`."""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from . import indexing, inference, remote, search_latency, search_log, startup
from .common import DEFAULT_BENCH_CATALOG, REPO_ROOT, Context, Figure
from .report import fmt, write_results

SECTIONS = ("search", "model", "startup", "indexing", "remote", "api", "searchlog")

DEFINITIONS = """\
- **Model throughput**: embeddings per second of the served runtime (ONNX Runtime, float32)
  and of torch eager on the same 32 preprocessed benchmark photos, batch 32, 2 threads each,
  in alternating rounds (median round); the whole graph each way: normalisation, backbone,
  L2 norm. ResNet18 runs `MODEL_WEIGHTS=random` (torchvision's ImageNet files cannot be
  fetched here; speed does not depend on the weights' values), EfficientNet-Lite0 its real
  weights.
- **Indexing, local**: `SearchService.sync()` on a growing copy of the benchmark catalog (each
  chunk adds photos; the sync reads, decodes, resizes, embeds and writes index.csv), wall time,
  resnet18 with `MODEL_WEIGHTS=random` on the whole catalog, then `efficientnet_lite0` (the
  demo's model) with its real weights on the whole catalog (320 photos spread over it with
  --quick, for both). The ceiling runs the same embedder on pre-made arrays (same batch size
  and threads) between the chunks.
- **Indexing, remote**: the same photos served by a local server that waits 100 ms before each
  response; index a catalog of their URLs into an empty cache. One by one = fetch, decode and
  embed each image in turn (the usual script), measured before and after.
- **Cold start**: a fresh Python process per measurement, from its spawn. *No model*: load the
  catalog and index.csv (synthetic unit vectors, a warm index) and answer a first search by
  vector, without importing torch. *Worker*: what a gunicorn worker does before serving:
  create the app, load the model (an already exported one for ONNX Runtime), load the index
  (from `index.csv.packed`, which the server's start-up sync wrote; each index is synced so
  once, untimed), run one warm-up inference; on ONNX Runtime and, alternately, on torch eager.
- **Search latency**: median time of one query (k=12) over random unit vectors, at each size
  twice: on a quiet machine, then with the other core busy (a subprocess pinned to the last
  core runs ResNet-18's forward pass at 224x224 in a loop with one torch thread, as inference
  in another worker would). The engine is `backend.stores.base.exact_top_k` (every store's
  exact search: single-threaded BLAS products shared by the free cores); plain numpy is
  `V @ q` with numpy's default BLAS threads + `argpartition`; FAISS is `IndexFlatIP`; the loop
  is what the usual scripts do: the cosine (dot product over both norms) of the query with
  each row in turn in a Python loop, then a sort.
- **End-to-end query**: `POST /api/search` through gunicorn over loopback, as the Docker image
  serves it, on the demo catalog: resnet18 random-init, then `efficientnet_lite0` with its real
  weights (`bench.api_latency`), each on ONNX Runtime and then on torch eager
  (`MODEL_RUNTIME=torch`).
- **Memory**: peak resident memory (VmHWM) of the worker process above after five image
  searches.
- **Incremental sync**: a second `sync()` of the unchanged catalog; every image read and
  decode is counted.
- **Search log**: the same API requests to two apps over the demo catalog, one logging every
  search and one not (`SEARCH_LOG_DAYS=0`), interleaved block by block through Flask's request
  path; the figure is the difference of their medians. The apps use the colour-histogram model,
  whose few milliseconds let a sub-millisecond difference show (see `bench/search_log.py`)."""


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not (args.bench_catalog / "products.csv").is_file() and {"indexing", "remote"} & set(
        args.only
    ):
        print(f"{args.bench_catalog} has no products.csv: pass --bench-catalog", file=sys.stderr)
        return 2
    ctx = Context(quick=args.quick, bench_catalog=args.bench_catalog.resolve())
    started, load_before = time.perf_counter(), os.getloadavg()
    figures: list[Figure] = []
    for section in args.only:
        print(f"== {section}", flush=True)
        for figure in run_section(section, ctx):
            print(
                f"   {figure.key}: {fmt(figure.value, figure.unit)}"
                + (f" ({figure.ratio:.2f}x)" if figure.ratio else ""),
                flush=True,
            )
            figures.append(figure)
    meta = run_meta(args, time.perf_counter() - started, load_before)
    write_results(figures, meta, args.out)
    print(f"wrote {args.out / 'RESULTS.md'}")
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller inputs, about 2 minutes")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument(
        "--bench-catalog",
        type=Path,
        default=DEFAULT_BENCH_CATALOG,
        help="the labelled benchmark catalog (default ../shared/bench)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO_ROOT / "bench",
        help="where RESULTS.md, results.json and results.png go",
    )
    return parser.parse_args(argv)


def run_section(section: str, ctx: Context) -> list[Figure]:
    if section == "search":
        return search_latency.run(ctx)
    if section == "model":
        return inference.run(ctx)
    if section == "startup":
        return startup.run(ctx, query_image(ctx))
    if section == "indexing":
        return indexing.run(ctx)
    if section == "remote":
        return remote.run(ctx)
    if section == "searchlog":
        return search_log.run(ctx)
    from . import serving

    return serving.run(ctx, query_image(ctx))


def query_image(ctx: Context) -> Path:
    """A 640x480 JPEG query: a benchmark photo scaled up, or a drawn one without the catalog."""
    from PIL import Image, ImageDraw

    path = ctx.data_dir / "query-640x480.jpg"
    photos = sorted((ctx.bench_catalog / "images").glob("*.jpg"))[:1]
    if photos:
        image = Image.open(photos[0]).convert("RGB").resize((640, 480))
    else:
        image = Image.new("RGB", (640, 480), (240, 240, 235))
        ImageDraw.Draw(image).ellipse((160, 90, 480, 390), fill=(200, 40, 50))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, quality=90)
    return path


def run_meta(args: argparse.Namespace, seconds: float, load_before: tuple) -> dict:
    import numpy
    import onnxruntime
    import torch

    command = "python -m bench" + "".join(f" {a}" for a in (sys.argv[1:] if sys.argv else []))
    return {
        "command": command.strip(),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": git_commit(),
        "quick": args.quick,
        "seconds": seconds,
        "definitions": DEFINITIONS,
        "machine": {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "memory": f"{memory_gb():.0f} GB",
            "os": platform.platform(),
            "python": platform.python_version(),
            "libraries": f"onnxruntime {onnxruntime.__version__}, torch {torch.__version__}, "
            f"numpy {numpy.__version__}, faiss-cpu {faiss_version()}",
            "load average (1 min) before / after": f"{load_before[0]:.1f} / {os.getloadavg()[0]:.1f}",
        },
    }


def cpu_model() -> str:
    for line in (
        Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
    ):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def memory_gb() -> float:
    meminfo = Path("/proc/meminfo")
    if not meminfo.exists():
        return float("nan")
    return int(meminfo.read_text().split()[1]) / 1024 / 1024


def faiss_version() -> str:
    import faiss

    return faiss.__version__


def git_commit() -> str:
    try:
        done = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip()


if __name__ == "__main__":
    sys.exit(main())
