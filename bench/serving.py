"""End-to-end POST /api/search through gunicorn, via `bench.api_latency` (its --json output).

Each model is served on ONNX Runtime (1 and 4 clients), then on torch eager (1 client) as the
baseline.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .common import REPO_ROOT, Context, Figure

P50_TARGET_MS = 15.0
# resnet18 random-init (an option, with the smallest vectors), then the default model with its
# real weights, which the target is held to.
MODELS = ("resnet18", "efficientnet_lite0")
TARGET_MODEL = "efficientnet_lite0"


def run(ctx: Context, query_image: Path) -> list[Figure]:
    del query_image  # api_latency sends its own 640x480 JPEG made from a demo photo
    return [f for model in MODELS for f in run_model(ctx, model)]


def run_model(ctx: Context, model: str) -> list[Figure]:
    requests = 40 if ctx.quick else 200
    served = latency(requests, model, "onnx", "1,4")
    baseline = latency(requests, model, "torch", "1")
    torch_single = baseline["rows"][0]
    return [figure(row, served["server"], torch_single, model) for row in served["rows"]]


def latency(requests: int, model: str, runtime: str, concurrency: str) -> dict:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.api_latency",
            "--json",
            "--requests",
            str(requests),
            "--concurrency",
            concurrency,
            "--model",
            model,
            "--runtime",
            runtime,
        ],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench.api_latency failed:\n{done.stdout[-1500:]}{done.stderr[-1500:]}")
    return json.loads(done.stdout)


def figure(row: dict, server: dict, torch_single: dict, model: str) -> Figure:
    single = row["clients"] == 1
    checked = single and model == TARGET_MODEL
    suffix = "" if model == MODELS[0] else f"_{model}"
    return Figure(
        key=f"api_search_{row['clients']}c{suffix}",
        section="End-to-end query",
        what=f"POST /api/search, 640x480 JPEG, gunicorn over loopback, {row['clients']} client(s), "
        f"p50, {model}{' (random init)' if model == MODELS[0] else ''} on ONNX Runtime",
        value=row["p50_ms"],
        unit="ms",
        baseline="the same server on torch eager" if single else None,
        baseline_value=torch_single["p50_ms"] if single else None,
        ratio=torch_single["p50_ms"] / row["p50_ms"] if single else None,
        target=f"p50 <= {P50_TARGET_MS:g} ms" if checked else None,
        met=row["p50_ms"] <= P50_TARGET_MS if checked else None,
        note=f"p95 {row['p95_ms']} ms, {row['requests_per_s']} requests/s over {row['requests']} "
        f"requests; {server.get('indexed', '?')} products indexed"
        + (f"; torch eager p95 {torch_single['p95_ms']} ms" if single else ""),
        detail={"row": row, "server": server, "torch": torch_single if single else None},
    )
