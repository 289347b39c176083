"""The vector stores at scale: memory (exact), FAISS HNSW and pgvector HNSW over N 512-d vectors.

    python -m bench.scale                      # 1,000,000 vectors, all three backends
    python -m bench.scale --n 100000 --backends faiss,pgvector
    python -m bench.scale --n 300000 --backends pgvector --hnsw 16,256 --ef-search 40,100,400

The vectors are synthetic but clustered like image embeddings (1,000 clusters, each spread over
a 32-dimensional subspace, plus a little noise in all 512), so that nearest neighbours mean
something and recall is a fair test. They are generated once under bench/data/scale/
(git-ignored) with the exact top-10 of every query, and reused by later runs.

Each backend runs in a process of its own, through the product's store classes and settings
(`backend.stores`): build time (upsert of every vector, then flush: FAISS saves its files,
pgvector loads with COPY and builds its HNSW index once), the store's resident memory and disk,
then p50/p95 latency and recall@10 against the exact answer, without and with a category filter
that keeps ~1% of the rows (each query in a random category, unrelated to where it lies).
pgvector runs in a private PostgreSQL 16 + pgvector 0.6 from the pgserver wheel; `--hnsw M,EFC`
builds its graph with other parameters than the store's defaults (each in a folder of its own,
so `--reuse` finds it again).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from .common import DATA_DIR

DIM = 512
K = 10
CLUSTERS = 1000
CATEGORIES = 100  # a category filter keeps ~1% of the rows
SUBSPACE = 32
CHUNK = 50_000
BACKENDS = ("memory", "faiss", "pgvector")
FOLDER = DATA_DIR / "scale"
# HNSW search breadths tried on each ANN build; the first is the product's default.
EF_SEARCH = {"faiss": [64, 128, 256, 512, 1024], "pgvector": [40, 64, 100, 200, 400, 1000]}


def _clustered(
    rng: np.random.Generator, n: int, centres: np.ndarray, bases: np.ndarray
) -> np.ndarray:
    """n unit vectors: a random centre, a spread in its own 32-d subspace, a little noise."""
    cluster = rng.integers(0, len(centres), n)
    spread = np.einsum(
        "ns,nsd->nd", rng.standard_normal((n, SUBSPACE), dtype=np.float32), bases[cluster]
    )
    vectors = (
        centres[cluster] + 0.35 * spread + 0.02 * rng.standard_normal((n, DIM), dtype=np.float32)
    )
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32)  # (n, D)


def generate(n: int, queries: int, seed: int = 0) -> Path:
    """Write vectors, categories, prices, queries and the exact answers once; return their folder."""
    folder = FOLDER / f"n{n}-q{queries}-s{seed}"
    if (folder / "truth.npz").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((CLUSTERS, DIM), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    bases = rng.standard_normal((CLUSTERS, SUBSPACE, DIM), dtype=np.float32) / np.sqrt(DIM)
    vectors = np.lib.format.open_memmap(folder / "vectors.npy", "w+", np.float32, (n, DIM))
    for start in range(0, n, CHUNK):
        vectors[start : start + CHUNK] = _clustered(rng, min(CHUNK, n - start), centres, bases)
    vectors.flush()
    categories = rng.integers(0, CATEGORIES, n).astype(np.int16)
    prices = np.round(rng.uniform(1, 200, n), 2)
    query_vectors = _clustered(rng, queries, centres, bases)
    query_categories = rng.integers(0, CATEGORIES, queries).astype(np.int16)
    np.save(folder / "categories.npy", categories)
    np.save(folder / "prices.npy", prices)
    plain, filtered = exact_answers(
        np.load(folder / "vectors.npy", mmap_mode="r"), categories, query_vectors, query_categories
    )
    np.savez(
        folder / "truth.npz",
        queries=query_vectors,
        query_categories=query_categories,
        plain=plain,
        filtered=filtered,
    )
    return folder


def exact_answers(vectors, categories, queries, query_categories) -> tuple[np.ndarray, np.ndarray]:
    """The exact top-K rows of every query, without and with its category: (Q, K) each."""
    best_scores = np.full((len(queries), K), -np.inf, dtype=np.float32)
    best_rows = np.zeros((len(queries), K), dtype=np.int64)
    best_f_scores, best_f_rows = best_scores.copy(), best_rows.copy()
    for start in range(0, len(vectors), CHUNK):
        block = np.asarray(vectors[start : start + CHUNK])
        scores = queries @ block.T  # (Q, B)
        rows = np.arange(start, start + len(block))
        best_scores, best_rows = _merge(best_scores, best_rows, scores, rows)
        masked = np.where(categories[rows][None, :] == query_categories[:, None], scores, -np.inf)
        best_f_scores, best_f_rows = _merge(best_f_scores, best_f_rows, masked, rows)
    return best_rows, best_f_rows


def _merge(best_scores, best_rows, scores, rows):
    all_scores = np.concatenate([best_scores, scores], axis=1)
    all_rows = np.concatenate([best_rows, np.broadcast_to(rows, scores.shape)], axis=1)
    top = np.argsort(-all_scores, axis=1, kind="stable")[:, :K]
    return np.take_along_axis(all_scores, top, 1), np.take_along_axis(all_rows, top, 1)


# -- one backend, in its own process ---------------------------------------------------------


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def open_backend(name: str, work: Path, reuse: bool, hnsw=None):
    """The product's store for `name`, with the product's defaults: empty, or as the last run left it."""
    from backend.config import load_settings
    from backend.stores import open_store

    overrides = {"vector_backend": name, "index_path": work / "index.csv"}
    if name == "pgvector":
        from backend.stores.postgres_db import init_schema

        overrides["database_url"] = start_postgres(work)
        init_schema(overrides["database_url"], DIM, reset=not reuse, index=hnsw)
    settings = load_settings(environ={}, overrides=overrides)
    if not reuse:
        shutil.rmtree(settings.faiss_path, ignore_errors=True)
    return open_store(settings, DIM), settings


def start_postgres(work: Path) -> str:
    """A private PostgreSQL (pgserver), with room to build a 1M-row HNSW graph in memory."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR unset
        import pgserver

    data = work / "pgdata"
    server = pgserver.get_server(data, cleanup_mode="stop")
    server.psql(
        "ALTER SYSTEM SET maintenance_work_mem = '4GB';"
        "ALTER SYSTEM SET shared_buffers = '3GB';"
        "ALTER SYSTEM SET max_parallel_maintenance_workers = 1;"
    )
    server.cleanup()  # restart, for shared_buffers
    return pgserver.get_server(data, cleanup_mode="stop").get_uri()


def store_disk(name: str, store, settings) -> int:
    if name == "faiss":
        return folder_bytes(settings.faiss_path)
    if name == "pgvector":
        import psycopg

        with psycopg.connect(settings.database_url) as conn:
            return conn.execute("SELECT pg_total_relation_size('search_products')").fetchone()[0]
    return 0


def hnsw_index(text: str | None):
    """`--hnsw M,EFC` as the pgvector store's HnswIndex (None: the store's defaults)."""
    from backend.stores.postgres_db import DEFAULT_INDEX, HnswIndex

    if not text:
        return DEFAULT_INDEX
    m, ef_construction = (int(part) for part in text.split(","))
    return HnswIndex(m, ef_construction)


def measure_backend(
    name: str, data: Path, queries: int, reuse: bool, hnsw: str | None, breadths: list[int]
) -> list[dict]:
    from backend.catalog import Product
    from backend.stores import Filters

    index = hnsw_index(hnsw) if name == "pgvector" else None
    label = f"-m{index.m}-efc{index.ef_construction}" if index else ""
    work = FOLDER / f"work-{name}{label}"
    work.mkdir(parents=True, exist_ok=True)
    vectors = np.ascontiguousarray(np.load(data / "vectors.npy"))  # (N, D) in memory
    categories, prices = np.load(data / "categories.npy"), np.load(data / "prices.npy")
    truth = np.load(data / "truth.npz")
    products = [
        Product(str(i), f"item {i}", f"c{c}", float(p), f"{i}.jpg")
        for i, (c, p) in enumerate(zip(categories.tolist(), prices.tolist(), strict=True))
    ]
    versions = ["v"] * len(products)
    store, settings = open_backend(name, work, reuse, index)
    row = {
        "backend": name,
        "n": len(vectors),
        "build_s": None,
        "memory_mb": None,
        "index": f"m {index.m}, ef_construction {index.ef_construction}" if index else None,
        "load_before": os.getloadavg()[0],
    }
    if store.count() != len(vectors):  # not reusing a complete store from an earlier run
        before = rss_bytes()
        started = time.perf_counter()
        store.upsert(products, vectors, versions)
        store.flush()
        row["build_s"] = time.perf_counter() - started
        # The memory store keeps the caller's array itself (no copy): count it as the store's.
        resident = rss_bytes() - before + (vectors.nbytes if name == "memory" else 0)
        row["memory_mb"] = resident / 2**20
    row["disk_mb"] = store_disk(name, store, settings) / 2**20
    plain = [(q, Filters()) for q in truth["queries"]]
    filtered = [
        (q, Filters(category=f"c{c}"))
        for q, c in zip(truth["queries"], truth["query_categories"], strict=True)
    ]
    rows = []
    row["load_after_build"] = os.getloadavg()[0]
    for ef_search in breadths or EF_SEARCH.get(name, [None]):
        if ef_search is not None:
            store.ef_search = ef_search  # a search-time setting: one build serves every value
        rows.append(dict(row, ef_search=ef_search))
        for label, cases, expected in (
            ("", plain, truth["plain"]),
            ("filtered_", filtered, truth["filtered"]),
        ):
            rows[-1].update(_latency_and_recall(store, cases[:queries], expected, label))
    store.close()
    return rows


def _latency_and_recall(store, cases, expected, label: str) -> dict:
    for query, filters in cases[:10]:
        store.search(query, K, filters=filters)  # warm caches and pools
    times, recalls = [], []
    for (query, filters), truth in zip(cases, expected, strict=True):
        start = time.perf_counter()
        hits = store.search(query, K, filters=filters)
        times.append((time.perf_counter() - start) * 1000)
        found = {int(hit.product.id) for hit in hits}
        recalls.append(len(found & set(truth.tolist())) / K)
    return {
        f"{label}p50_ms": float(np.percentile(times, 50)),
        f"{label}p95_ms": float(np.percentile(times, 95)),
        f"{label}recall": float(np.mean(recalls)),
    }


# -- driver ----------------------------------------------------------------------------------


def table(rows: list[dict]) -> str:
    lines = [
        "| backend | vectors | build | memory | disk | p50 | p95 | recall@10 | 1% filter p50 | p95 | recall@10 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        name = r["backend"] + (f", {r['index']}" if r.get("index") else "")
        name += "" if r["ef_search"] is None else f" (ef_search {r['ef_search']})"
        build = "?" if r["build_s"] is None else f"{r['build_s']:.0f} s"
        memory = "?" if r["memory_mb"] is None else f"{r['memory_mb'] / 1024:.2f} GB"
        lines.append(
            f"| {name} | {r['n']:,} | {build} | {memory} "
            f"| {r['disk_mb'] / 1024:.2f} GB | {r['p50_ms']:.1f} ms | {r['p95_ms']:.1f} ms "
            f"| {r['recall']:.3f} | {r['filtered_p50_ms']:.1f} ms | {r['filtered_p95_ms']:.1f} ms "
            f"| {r['filtered_recall']:.3f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="vectors (default 1,000,000)")
    parser.add_argument("--queries", type=int, default=200, help="queries per measurement")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="search the FAISS files / pgvector table the last run built (build figures kept)",
    )
    parser.add_argument("--hnsw", help="pgvector's graph: M,EF_CONSTRUCTION (default: the store's)")
    parser.add_argument("--ef-search", help="search breadths to try, e.g. 40,100,400")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure this backend here
    args = parser.parse_args(argv)
    started = time.perf_counter()
    data = generate(args.n, args.queries)
    ef_search = [int(v) for v in args.ef_search.split(",")] if args.ef_search else []
    if args.one:
        rows = measure_backend(args.one, data, args.queries, args.reuse, args.hnsw, ef_search)
        print(json.dumps(rows))
        return 0
    print(f"data: {data} ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    rows = []
    for name in args.backends.split(","):
        command = [
            sys.executable,
            "-m",
            "bench.scale",
            "--n",
            str(args.n),
            "--queries",
            str(args.queries),
            "--one",
            name,
        ] + ["--reuse"] * args.reuse
        command += ["--hnsw", args.hnsw] if args.hnsw else []
        command += ["--ef-search", args.ef_search] if args.ef_search else []
        # One BLAS thread: on a shared 2-core machine a threaded gemv waits on descheduled
        # threads (a 1,000-row product took 8 ms instead of 0.03 ms); FAISS keeps its OpenMP.
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            print(f"{name} failed:\n{done.stderr}", file=sys.stderr)
            return 1
        rows += json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{name}: {rows[-1]}", file=sys.stderr)
    results = FOLDER / f"results-n{args.n}.json"
    earlier = json.loads(results.read_text()) if results.is_file() else []
    same = lambda a, b: (a["backend"], a.get("index")) == (b["backend"], b.get("index"))  # noqa: E731
    for row in rows:  # a reused store keeps the build figures of the run that built it
        built = next((r for r in earlier if same(r, row) and r["build_s"]), None)
        if row["build_s"] is None and built:
            row.update(build_s=built["build_s"], memory_mb=built["memory_mb"])
    rows = [
        r for r in earlier if not any(same(r, row) for row in rows)
    ] + rows  # other builds' rows
    rows.sort(
        key=lambda r: (BACKENDS.index(r["backend"]), r.get("index") or "", r["ef_search"] or 0)
    )
    results.write_text(json.dumps(rows, indent=2))
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
