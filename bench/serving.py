"""End-to-end POST /api/search through gunicorn, via `bench.api_latency` (its --json output)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .common import REPO_ROOT, Context, Figure

P50_TARGET_MS = 60.0


# resnet18 random-init (the default MODEL's cost), then the demo's model with its real weights.
MODELS = ("resnet18", "efficientnet_lite0")


def run(ctx: Context, query_image: Path) -> list[Figure]:
    del query_image  # api_latency sends its own 640x480 JPEG made from a demo photo
    return [f for model in MODELS for f in run_model(ctx, model)]


def run_model(ctx: Context, model: str) -> list[Figure]:
    requests = 40 if ctx.quick else 200
    done = subprocess.run(
        [sys.executable, "-m", "bench.api_latency", "--json", "--requests", str(requests),
         "--concurrency", "1,4", "--model", model],
        cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"bench.api_latency failed:\n{done.stdout[-1500:]}{done.stderr[-1500:]}")
    result = json.loads(done.stdout)
    return [figure(row, result["server"], model) for row in result["rows"]]


def figure(row: dict, server: dict, model: str) -> Figure:
    single = row["clients"] == 1
    suffix = "" if model == MODELS[0] else f"_{model}"
    return Figure(
        key=f"api_search_{row['clients']}c{suffix}",
        section="End-to-end query",
        what=f"POST /api/search, 640x480 JPEG, gunicorn over loopback, {row['clients']} client(s), "
        f"{model}{' (random init)' if model == MODELS[0] else ''}, p50",
        value=row["p50_ms"],
        unit="ms",
        target=f"p50 <= {P50_TARGET_MS:g} ms" if single else None,
        met=row["p50_ms"] <= P50_TARGET_MS if single else None,
        note=f"p95 {row['p95_ms']} ms, {row['requests_per_s']} requests/s over {row['requests']} "
        f"requests; {server.get('indexed', '?')} products indexed",
        detail={"row": row, "server": server},
    )
