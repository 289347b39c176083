"""The mysql backend at 50,000 vectors, next to the memory backend and the naive way, in one run.

    python -m bench.mysql                     # 50,000 512-d vectors, a throwaway MariaDB
    python -m bench.mysql --n 10000 --database-url mysql://user:pw@host:3306/db

Measured in one process, on the same vectors and queries (bench.scale's clustered set):

- worker load: what a server process does before its first search. mysql: open the store, which
  reads every vector from the database in chunks into its matrix; memory: read index.csv and
  fill the memory store (`SearchService.load_index`). Median of 3.
- search p50/p95 at k=12, the two backends interleaved query by query, and whether every answer
  is the same (same products, same scores, same order).
- the naive way: every embedding stored as JSON text, and per query `SELECT id, embedding` of
  every row, each row parsed and scored in a Python loop (json.loads, then a numpy dot per row),
  then sorted. A few queries only: each takes seconds.

The MariaDB comes from Debian's mariadb-server, started on a temp folder and a loopback port
(the tests' helper), unless --database-url names one (its tables are dropped and made again).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from .scale import generate

K = 12


def products_for(data: Path, n: int) -> list:
    from backend.catalog import Product

    categories, prices = np.load(data / "categories.npy"), np.load(data / "prices.npy")
    return [
        Product(str(i), f"item {i}", f"c{c}", float(p), f"{i}.jpg")
        for i, (c, p) in enumerate(zip(categories[:n].tolist(), prices[:n].tolist(), strict=True))
    ]


def median_seconds(work, runs: int = 3) -> tuple[float, object]:
    times, result = [], None
    for _ in range(runs):
        if result is not None and hasattr(result, "close"):
            result.close()
        started = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - started)
    return float(np.median(times)), result


def memory_load(index_path: Path, products: list):
    """What a memory-backend worker does: index.csv -> the memory store."""
    from backend.index.index_file import read_index
    from backend.stores.memory import MemoryStore

    table = read_index(index_path)
    store = MemoryStore(table.vectors.shape[1])
    store.upsert(products, table.vectors, ["v"] * len(products))
    return store


def naive_fill(url: str, products: list, vectors: np.ndarray) -> None:
    import pymysql

    from backend.stores.mysql_db import connect_args

    with pymysql.connect(**connect_args(url)) as conn, conn.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS naive_vectors")
        cursor.execute(
            "CREATE TABLE naive_vectors (id VARCHAR(64) PRIMARY KEY, embedding LONGTEXT)"
        )
        rows = [(p.id, json.dumps(v.tolist())) for p, v in zip(products, vectors, strict=True)]
        for start in range(0, len(rows), 2000):
            cursor.executemany(
                "INSERT INTO naive_vectors VALUES (%s, %s)", rows[start : start + 2000]
            )


def naive_search(url: str, query: np.ndarray, k: int) -> list[str]:
    """The brief's way: select every embedding as JSON text, score it in a Python loop."""
    import pymysql

    from backend.stores.mysql_db import connect_args

    with pymysql.connect(**connect_args(url)) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT id, embedding FROM naive_vectors")
        scored = []
        for product_id, text in cursor.fetchall():
            vector = np.asarray(json.loads(text), dtype=np.float32)
            scored.append((float(vector @ query), product_id))
    scored.sort(reverse=True)
    return [product_id for _, product_id in scored[:k]]


def run(n: int, queries: int, naive_queries: int, url: str | None) -> dict:
    from backend.index.index_file import Entry, IndexTable, read_index, write_index
    from backend.stores.mysql import MySQLStore

    data = generate(n, 200)
    vectors = np.ascontiguousarray(np.load(data / "vectors.npy")[:n])  # (N, 512)
    query_vectors = np.load(data / "truth.npz")["queries"][:queries]
    products = products_for(data, n)
    folder = Path(tempfile.mkdtemp(prefix="bench-mysql-"))
    server = None
    try:
        if url is None:
            from tests.support.mariadb import start_mariadb

            server, _ = start_mariadb(folder / "mariadb")
            url = server.create_database()
        index_path = folder / "index.csv"
        entries = [Entry(p.id, p.image_url, "", "f", "m") for p in products]
        write_index(index_path, IndexTable(entries, vectors))
        # Both backends hold index.csv's vectors (float16 there), as a synced server's do.
        vectors = read_index(index_path).vectors
        _drop_tables(url)
        started = time.perf_counter()
        MySQLStore(url, vectors.shape[1]).upsert(products, vectors, ["v"] * n)
        fill_s = time.perf_counter() - started
        mysql_load_s, mysql = median_seconds(lambda: MySQLStore(url, vectors.shape[1]))
        memory_load_s, memory = median_seconds(lambda: memory_load(index_path, products))
        timings: dict[str, list[float]] = {"mysql": [], "memory": []}
        same = 0
        for query in query_vectors:
            answers = {}
            for name, store in (("mysql", mysql), ("memory", memory)):
                started = time.perf_counter()
                answers[name] = store.search(query, K)
                timings[name].append((time.perf_counter() - started) * 1000)
            same += [(h.product.id, h.score) for h in answers["mysql"]] == [
                (h.product.id, h.score) for h in answers["memory"]
            ]
        naive_fill(url, products, vectors)
        naive_ms, naive_same = [], 0
        for query in query_vectors[:naive_queries]:
            started = time.perf_counter()
            found = naive_search(url, query, K)
            naive_ms.append((time.perf_counter() - started) * 1000)
            naive_same += found == [h.product.id for h in memory.search(query, K)]
        mysql.close()
        return {
            "n": n,
            "dim": int(vectors.shape[1]),
            "queries": len(query_vectors),
            "fill_s": fill_s,
            "mysql_load_s": mysql_load_s,
            "memory_load_s": memory_load_s,
            "mysql_p50_ms": float(np.percentile(timings["mysql"], 50)),
            "mysql_p95_ms": float(np.percentile(timings["mysql"], 95)),
            "memory_p50_ms": float(np.percentile(timings["memory"], 50)),
            "memory_p95_ms": float(np.percentile(timings["memory"], 95)),
            "same_answers": same,
            "naive_queries": len(naive_ms),
            "naive_p50_ms": float(np.percentile(naive_ms, 50)),
            "naive_same_top12": naive_same,
        }
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def _drop_tables(url: str) -> None:
    import pymysql

    from backend.stores.mysql_db import META, TABLE, connect_args

    with pymysql.connect(**connect_args(url)) as conn, conn.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {TABLE}, {META}")


def table(r: dict) -> str:
    n = f"{r['n']:,}"
    return "\n".join(
        [
            "| backend | vectors | worker load | search p50 (k=12) | p95 | answers equal to memory's |",
            "|---|---:|---:|---:|---:|---:|",
            f"| memory (index.csv) | {n} | {r['memory_load_s']:.2f} s | {r['memory_p50_ms']:.2f} ms "
            f"| {r['memory_p95_ms']:.2f} ms | - |",
            f"| **mysql** (MariaDB) | {n} | {r['mysql_load_s']:.2f} s | {r['mysql_p50_ms']:.2f} ms "
            f"| {r['mysql_p95_ms']:.2f} ms | {r['same_answers']}/{r['queries']} |",
            f"| naive: JSON text, scored in a Python loop per query | {n} | - "
            f"| {r['naive_p50_ms']:,.0f} ms | - | {r['naive_same_top12']}/{r['naive_queries']} (top 12) |",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=50_000, help="vectors (default 50,000)")
    parser.add_argument("--queries", type=int, default=200, help="searches per backend")
    parser.add_argument("--naive-queries", type=int, default=3, help="naive searches (slow)")
    parser.add_argument("--database-url", help="a MySQL / MariaDB database to use instead")
    args = parser.parse_args(argv)
    result = run(args.n, args.queries, args.naive_queries, args.database_url)
    print(json.dumps(result, indent=2))
    print(f"table filled in {result['fill_s']:.1f} s")
    print(table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
