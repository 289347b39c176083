"""The milvus backend at scale: build, memory, disk, latency and recall@10 over N 512-d vectors.

    python -m bench.milvus                                   # 25,000, 50,000 and 100,000
    python -m bench.milvus --sizes 200000 --ef-search 32,64,128 --hnsw 16,128

The same clustered vectors, queries, exact answers and table as `python -m bench.scale`
(bench/data/scale/, generated once), measured through the product's MilvusStore against a
private Milvus 2.3.5 Standalone from the milvus wheel (embedded etcd, local storage), started in
a temp folder on free loopback ports, on this machine. Per size: build (every vector upserted in
batches, then flushed and indexed: until Milvus reports every row in the HNSW index), the Milvus
server's resident memory after the collection is loaded, its data folder on disk, then p50/p95
and recall@10 against the exact answer at each `ef`, without and with a category filter that
keeps ~1% of the rows. The client's own memory is a few MB; Milvus's is the figure.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .scale import DIM, FOLDER, K, _latency_and_recall, folder_bytes, generate

EF_SEARCH = [16, 32, 64, 128, 256]


def server_rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


def wait_until_indexed(client, collection: str, rows: int, timeout: float = 3600) -> None:
    """Flush (seal the growing segments) and wait until the HNSW index covers every row."""
    client.flush(collection)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = client.describe_index(collection, "embedding")
        if int(info.get("indexed_rows", 0)) >= rows and not int(info.get("pending_index_rows", 0)):
            return
        time.sleep(1)
    raise TimeoutError(f"Milvus indexed {info.get('indexed_rows')} of {rows} rows in time")


def measure_size(server, n: int, queries: int, breadths: list[int], index) -> list[dict]:
    from backend.catalog import Product
    from backend.stores import Filters
    from backend.stores.milvus import MilvusStore

    data = generate(n, queries)
    vectors = np.ascontiguousarray(np.load(data / "vectors.npy"))  # (N, D)
    categories, prices = np.load(data / "categories.npy"), np.load(data / "prices.npy")
    truth = np.load(data / "truth.npz")
    products = [
        Product(str(i), f"item {i}", f"c{c}", float(p), f"{i}.jpg")
        for i, (c, p) in enumerate(zip(categories.tolist(), prices.tolist(), strict=True))
    ]
    database = server.create_database()
    store = MilvusStore(server.uri(database), DIM, index=index, timeout=60)
    pid = server.server.server_proc.pid
    rss_before, disk_before = server_rss_bytes(pid), folder_bytes(server.folder / "data")
    started = time.perf_counter()
    store.upsert(products, vectors, ["v"] * n)
    inserted = time.perf_counter() - started
    wait_until_indexed(store._client, store.collection, n)
    store._client.release_collection(store.collection)  # load again: the sealed, indexed segment
    store._client.load_collection(store.collection)
    row = {
        "backend": "milvus",
        "n": n,
        "index": f"M {index.M}, efConstruction {index.efConstruction}",
        "insert_s": inserted,
        "build_s": time.perf_counter() - started,
        "memory_mb": (server_rss_bytes(pid) - rss_before) / 2**20,
        "server_rss_mb": server_rss_bytes(pid) / 2**20,
        "disk_mb": (folder_bytes(server.folder / "data") - disk_before) / 2**20,
    }
    plain = [(q, Filters()) for q in truth["queries"]]
    filtered = [
        (q, Filters(category=f"c{c}"))
        for q, c in zip(truth["queries"], truth["query_categories"], strict=True)
    ]
    rows = []
    for ef_search in breadths:
        store.ef_search = ef_search
        rows.append(dict(row, ef_search=ef_search))
        for label, cases, expected in (
            ("", plain, truth["plain"]),
            ("filtered_", filtered, truth["filtered"]),
        ):
            rows[-1].update(_latency_and_recall(store, cases[:queries], expected, label))
            counts = [len(store.search(q, K, filters=f)) for q, f in cases[:queries]]
            rows[-1][f"{label}min_hits"] = min(counts)
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    store._client.drop_collection(store.collection)
    store.close()
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        "| vectors | ef | build (insert) | Milvus memory | disk | p50 | p95 | recall@10 | 1% filter p50 | p95 | recall@10 | fewest hits |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['n']:,} | {r['ef_search']} | {r['build_s']:.0f} s ({r['insert_s']:.0f} s) "
            f"| {r['memory_mb'] / 1024:.2f} GB | {r['disk_mb'] / 1024:.2f} GB "
            f"| {r['p50_ms']:.1f} ms | {r['p95_ms']:.1f} ms | {r['recall']:.3f} "
            f"| {r['filtered_p50_ms']:.1f} ms | {r['filtered_p95_ms']:.1f} ms "
            f"| {r['filtered_recall']:.3f} | {min(r['min_hits'], r['filtered_min_hits'])} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from backend.stores.milvus import DEFAULT_INDEX, HnswIndex
    from tests.support.milvus import start_milvus

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="25000,50000,100000", help="vector counts, e.g. 100000")
    parser.add_argument("--queries", type=int, default=200, help="queries per measurement")
    parser.add_argument("--ef-search", default=",".join(map(str, EF_SEARCH)))
    parser.add_argument("--hnsw", help="M,EF_CONSTRUCTION (default: the store's)")
    args = parser.parse_args(argv)
    index = HnswIndex(*map(int, args.hnsw.split(","))) if args.hnsw else DEFAULT_INDEX
    breadths = [int(v) for v in args.ef_search.split(",")]
    folder = Path(tempfile.mkdtemp(prefix="bench-milvus-"))
    server, _ = start_milvus(folder)
    rows = []
    try:
        for n in (int(v) for v in args.sizes.split(",")):
            rows += measure_size(server, n, args.queries, breadths, index)
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
    results = FOLDER / "results-milvus.json"
    results.parent.mkdir(parents=True, exist_ok=True)
    earlier = json.loads(results.read_text()) if results.is_file() else []
    key = lambda r: (r["n"], r["index"], r["ef_search"])  # noqa: E731
    fresh = {key(r) for r in rows}
    rows = sorted([r for r in earlier if key(r) not in fresh] + rows, key=key)
    results.write_text(json.dumps(rows, indent=2))
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
