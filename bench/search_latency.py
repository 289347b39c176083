"""One query over N vectors, k=12: the engine against plain numpy, FAISS and a Python loop.

Measured twice at each size, side by side in the same run: on a quiet machine, and with one core
kept busy by a background inference loop (`busy_core`). The methods run on the same vectors and
queries in interleaved rounds so that they share the machine's load; each figure is the median
over rounds. They must agree on the top k.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np

from .common import Context, Figure, median

K = 12
DIM = 512
TARGET_MS_50K = 5.0  # one search over 50,000 vectors
TARGET_NAIVE = 50.0  # times faster than the per-row loop
TARGET_QUIET = 1.0  # at most this many times plain numpy's time, on a quiet machine
TARGET_BUSY = 0.5  # ... and with the other core busy
CHECKED_N = 50_000

# The background load: the served model's forward pass (ResNet-18 at 224x224, random weights,
# one torch thread) in a loop, pinned to the last core, as inference in another worker would be.
BUSY_LOOP = """
import os, sys, torch, torchvision
os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
torch.set_num_threads(1)
model = torchvision.models.resnet18(weights=None).eval()
batch = torch.rand(1, 3, 224, 224)
with torch.inference_mode():
    model(batch)
    print("ready", flush=True)
    while True:
        model(batch)
"""


def unit_vectors(n: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    """n random unit vectors, float32 (N, dim)."""
    vectors = np.random.default_rng(seed).standard_normal((n, dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def methods(vectors: np.ndarray) -> dict[str, Callable[[np.ndarray], list[int]]]:
    """name -> search(query) returning the k best rows, best first."""
    import faiss

    from backend.stores.base import exact_top_k

    flat = faiss.IndexFlatIP(vectors.shape[1])
    flat.add(vectors)

    def numpy_plain(query: np.ndarray) -> list[int]:
        scores = vectors @ query
        top = np.argpartition(-scores, K - 1)[:K]
        return top[np.argsort(-scores[top])].tolist()

    def naive_loop(query: np.ndarray) -> list[int]:
        # The usual script: cosine of the query with each stored row in turn, then a sort.
        scores = [
            float(np.dot(query, row) / (np.linalg.norm(query) * np.linalg.norm(row)))
            for row in vectors
        ]
        return sorted(range(len(scores)), key=scores.__getitem__, reverse=True)[:K]

    return {
        "engine": lambda query: exact_top_k(vectors, None, query, K)[0].tolist(),
        "numpy_plain": numpy_plain,
        "faiss_flat_ip": lambda query: flat.search(query[None, :], K)[1][0].tolist(),
        "naive_loop": naive_loop,
    }


def numpy_blas_threads(threads: int) -> None:
    """Set numpy's BLAS threads: the engine keeps one per process, plain numpy has its default."""
    from threadpoolctl import ThreadpoolController

    from backend.stores.scoring import numpy_blas

    ThreadpoolController().select(prefix=numpy_blas()).limit(limits=threads)


@contextmanager
def busy_core() -> Iterator[subprocess.Popen]:
    """Keep one core busy with an inference loop in a subprocess while the block runs."""
    loop = subprocess.Popen([sys.executable, "-c", BUSY_LOOP], stdout=subprocess.PIPE, text=True)
    try:
        if loop.stdout.readline().strip() != "ready":
            raise RuntimeError("the background inference loop did not start")
        time.sleep(0.5)
        yield loop
    finally:
        loop.kill()
        loop.wait()
        loop.stdout.close()


def measure(n: int, rounds: int, busy: bool, block: int = 8, naive_rounds: int = 2) -> dict:
    """Median ms per query of each method, run in blocks of `block` queries, method after method.

    Blocks, not single queries, alternate: FAISS's and numpy's thread pools each keep their
    threads spinning a moment after a call, which would slow the other one down if they
    alternated query by query (they never alternate like that when serving).
    """
    vectors = unit_vectors(n)
    queries = unit_vectors(block + 1, seed=1)
    search = methods(vectors)
    if busy:  # the loop is the same with or without load; it is measured quiet only
        del search["naive_loop"]
    times: dict[str, list[float]] = {name: [] for name in search}
    agree = all(search[name](queries[0]) == search["engine"](queries[0]) for name in search)
    load = os.getloadavg()[0]
    for round_ in range(rounds):
        for name, fn in search.items():
            if name == "naive_loop" and round_ >= naive_rounds:
                continue
            numpy_blas_threads(os.cpu_count() if name == "numpy_plain" else 1)
            fn(queries[-1])  # the block's first call pays for waking its thread pool
            for query in queries[: 1 if name == "naive_loop" else block]:
                start = time.perf_counter()
                fn(query)
                times[name].append((time.perf_counter() - start) * 1000)
    ms = {name: median(values) for name, values in times.items()}
    return {"n": n, "busy": busy, "ms": ms, "agree": agree, "load": load}


def run(ctx: Context) -> list[Figure]:
    sizes = (10_000, 50_000) if ctx.quick else (10_000, 50_000, 200_000)
    rounds = 8 if ctx.quick else 25
    quiet = [measure(n, rounds, busy=False) for n in sizes]
    with busy_core():
        busy = [measure(n, rounds, busy=True) for n in sizes]
    return [figure(result) for pair in zip(quiet, busy, strict=True) for result in pair]


def figure(result: dict) -> Figure:
    n, ms, busy = result["n"], result["ms"], result["busy"]
    of_numpy = ms["engine"] / ms["numpy_plain"]
    limit = TARGET_BUSY if busy else TARGET_QUIET
    checks = {f"<= {limit:g}x numpy's time": of_numpy <= limit, "same top-k": result["agree"]}
    if not busy:
        checks[f"<= {TARGET_MS_50K:g} ms"] = ms["engine"] <= TARGET_MS_50K
        checks[f">= {TARGET_NAIVE:g}x the loop"] = ms["naive_loop"] / ms["engine"] >= TARGET_NAIVE
    checked = n == CHECKED_N
    missed = [name for name, ok in checks.items() if not ok]
    state = "other core busy (inference loop)" if busy else "quiet"
    loop = "" if busy else f", Python loop {ms['naive_loop']:.0f} ms"
    return Figure(
        key=f"search_{n // 1000}k" + ("_busy" if busy else ""),
        section="Search latency",
        what=f"one query over {n:,} vectors, k={K}, {state}",
        value=ms["engine"],
        unit="ms",
        baseline="plain numpy (V @ q, argpartition)",
        baseline_value=ms["numpy_plain"],
        ratio=ms["numpy_plain"] / ms["engine"],
        target=", ".join(checks) if checked else None,
        met=not missed if checked else None,
        note=f"{of_numpy:.2f}x numpy's time; numpy {ms['numpy_plain']:.2f} ms, "
        f"FAISS IndexFlatIP {ms['faiss_flat_ip']:.2f} ms{loop}; "
        f"same top-{K}: {'yes' if result['agree'] else 'NO'}; "
        f"load average before {result['load']:.1f}"
        + (f"; missed: {', '.join(missed)}" if checked and missed else ""),
        detail=result,
    )
