"""One query over N vectors, k=12: the engine against FAISS, plain numpy and a Python loop.

All four run on the same vectors and queries, in interleaved rounds so that they share the
machine's load; each figure is the median over rounds. They must agree on the top k.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from .common import Context, Figure, median

K = 12
DIM = 512
TARGET_MS_50K = 5.0  # one search over 50,000 vectors
TARGET_NAIVE = 50.0  # times faster than the per-row loop


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
        "faiss_flat_ip": lambda query: flat.search(query[None, :], K)[1][0].tolist(),
        "numpy_plain": numpy_plain,
        "naive_loop": naive_loop,
    }


def measure(n: int, rounds: int, block: int = 8, naive_rounds: int = 2) -> dict:
    """Median ms per query of each method, run in blocks of `block` queries, method after method.

    Blocks, not single queries, alternate: FAISS's and numpy's thread pools each keep their
    threads spinning a moment after a call, which would slow the other one down if they
    alternated query by query (they never alternate like that when serving).
    """
    vectors = unit_vectors(n)
    queries = unit_vectors(block + 1, seed=1)
    search = methods(vectors)
    times: dict[str, list[float]] = {name: [] for name in search}
    agree = all(search[name](queries[0]) == search["engine"](queries[0]) for name in search)
    for round_ in range(rounds):
        for name, fn in search.items():
            if name == "naive_loop" and round_ >= naive_rounds:
                continue
            fn(queries[-1])  # the block's first call pays for waking its thread pool
            for query in queries[: 1 if name == "naive_loop" else block]:
                start = time.perf_counter()
                fn(query)
                times[name].append((time.perf_counter() - start) * 1000)
    return {"n": n, "ms": {name: median(values) for name, values in times.items()}, "agree": agree}


def run(ctx: Context) -> list[Figure]:
    sizes = (10_000, 50_000) if ctx.quick else (10_000, 50_000, 200_000)
    rounds = 8 if ctx.quick else 25
    figures = []
    for n in sizes:
        result = measure(n, rounds)
        figures.append(figure(result))
    return figures


def figure(result: dict) -> Figure:
    n, ms = result["n"], result["ms"]
    fastest_name = min(("faiss_flat_ip", "numpy_plain"), key=ms.get)
    fastest = ms[fastest_name]
    vs_loop = ms["naive_loop"] / ms["engine"]
    checks = {
        f"<= {fastest_name}": ms["engine"] <= fastest,
        f">= {TARGET_NAIVE:g}x the loop": vs_loop >= TARGET_NAIVE,
        f"<= {TARGET_MS_50K:g} ms": ms["engine"] <= TARGET_MS_50K,
        "same top-k": result["agree"],
    }
    checked = n == 50_000
    missed = [name for name, ok in checks.items() if not ok]
    return Figure(
        key=f"search_{n // 1000}k",
        section="Search latency",
        what=f"one query over {n:,} vectors, k={K}",
        value=ms["engine"],
        unit="ms",
        baseline=f"fastest of FAISS IndexFlatIP and plain numpy ({fastest_name})",
        baseline_value=fastest,
        ratio=fastest / ms["engine"],
        target=", ".join(checks) if checked else None,
        met=not missed if checked else None,
        note=f"FAISS {ms['faiss_flat_ip']:.2f} ms, numpy {ms['numpy_plain']:.2f} ms, "
        f"Python loop {ms['naive_loop']:.0f} ms ({vs_loop:.0f}x slower); "
        f"same top-{K}: {'yes' if result['agree'] else 'NO'}"
        + (f"; missed: {', '.join(missed)}" if checked and missed else ""),
        detail=result,
    )
