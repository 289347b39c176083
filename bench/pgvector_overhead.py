"""Where a pgvector search's milliseconds go: client and protocol, planning, the HNSW walk.

    python -m bench.pgvector_overhead                 # 100,000 vectors, builds once (~1 min)
    python -m bench.pgvector_overhead --reuse         # search the table the last run built

Uses bench.scale's data set and private PostgreSQL 16 + pgvector (pgserver), with the store's
index. One run prints, side by side over the same queries (k 10, p50/p95 of each):

1. the store's search as served (`PgVectorStore.search`: BEGIN, set_config, the query, COMMIT,
   each waiting for the server);
2. the same query on one connection with one thing changed at a time: the query vector sent as
   text or binary, `hnsw.ef_search` set in the search's transaction (four round trips),
   pipelined (three) or once for the session (the SELECT alone: one), a prepared statement,
   only ids and distances fetched; and `SELECT 1` (one round trip, the floor of any query).
   Each query is sent by every variant in turn (in a rotating order), so a busy spell
   costs them alike;
3. the server's own planning and execution times (EXPLAIN ANALYZE of the served query);
   psycopg prepares a statement by itself from its sixth execution on a connection, so the
   store's searches are prepared already: the variants here say `prepare` explicitly;
4. recall@10 and server execution time by `ef_search`, for the question "is 200 needed at k 10?".

The HNSW walk's cost grows with the catalog while the client and protocol costs do not: these
are measured at 100,000 vectors and set against the 1,000,000-vector figures in docs/scaling.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from collections.abc import Callable

import numpy as np

from .scale import DIM, FOLDER, K, generate, start_postgres

COLUMNS = "id, name, category, price, image_url"
QUERY = (
    f"SELECT {COLUMNS}, embedding <=> %(q){{fmt}} AS distance FROM search_products "
    "ORDER BY embedding <=> %(q){fmt} LIMIT %(k)s"
)
IDS_ONLY = (
    "SELECT id, embedding <=> %(q){fmt} AS distance FROM search_products "
    "ORDER BY embedding <=> %(q){fmt} LIMIT %(k)s"
)
EF_SWEEP = (20, 40, 64, 100, 200)


def _ids(hits) -> list[tuple]:
    return [(hit.product.id,) for hit in hits]


def build(n: int, queries: int, reuse: bool):
    """The store over bench.scale's data (built unless reused), its URL and the queries/truth."""
    from backend.catalog import Product
    from backend.stores.postgres import PgVectorStore
    from backend.stores.postgres_db import DEFAULT_INDEX, init_schema

    data = generate(n, queries)
    work = FOLDER / f"work-overhead-n{n}"
    work.mkdir(parents=True, exist_ok=True)
    url = start_postgres(work)
    init_schema(url, DIM, reset=not reuse, index=DEFAULT_INDEX)
    store = PgVectorStore(url, DIM)
    vectors = np.load(data / "vectors.npy")
    if store.count() != len(vectors):
        categories, prices = np.load(data / "categories.npy"), np.load(data / "prices.npy")
        products = [
            Product(str(i), f"item {i}", f"c{c}", float(p), f"{i}.jpg")
            for i, (c, p) in enumerate(zip(categories.tolist(), prices.tolist(), strict=True))
        ]
        started = time.perf_counter()
        store.upsert(products, np.ascontiguousarray(vectors), ["v"] * len(products))
        print(
            f"built {len(vectors):,} rows in {time.perf_counter() - started:.0f} s", file=sys.stderr
        )
    truth = np.load(data / "truth.npz")
    return store, url, work, truth["queries"][:queries], truth["plain"][:queries]


def timed(queries: np.ndarray, one: Callable[[np.ndarray], object]) -> tuple[float, float, list]:
    """p50 and p95 in ms of `one` over the queries (after 10 warm-up calls), and the answers."""
    return interleaved(queries, {"": one})[""]


def interleaved(queries: np.ndarray, variants: dict[str, Callable]) -> dict[str, tuple]:
    """Each query sent by every variant in turn, so that a busy spell on the machine costs them
    alike: {label: (p50 ms, p95 ms, answers)}."""
    for query in queries[:10]:
        for one in variants.values():
            one(query)
    times = {label: [] for label in variants}
    answers = {label: [] for label in variants}
    order = list(variants.items())
    for turn, query in enumerate(queries):
        # The first to walk a query's neighbourhood warms the CPU caches for the others: rotate.
        for label, one in order[turn % len(order) :] + order[: turn % len(order)]:
            start = time.perf_counter()
            answers[label].append(one(query))
            times[label].append((time.perf_counter() - start) * 1000)
    return {
        label: (float(np.percentile(t, 50)), float(np.percentile(t, 95)), answers[label])
        for label, t in times.items()
    }


def recall(answers: list, truth: np.ndarray, key=lambda row: int(row[0])) -> float:
    found = [
        len({key(row) for row in rows} & set(t.tolist())) / K
        for rows, t in zip(answers, truth, strict=True)
    ]
    return float(np.mean(found))


def client_variants(url: str, ef: int) -> dict[str, Callable[[np.ndarray], list]]:
    """One connection per variant, each changing one thing from the served sequence."""
    import psycopg
    from pgvector.psycopg import register_vector

    def connection(autocommit: bool) -> psycopg.Connection:
        conn = psycopg.connect(url, autocommit=autocommit)
        register_vector(conn)
        if autocommit:  # the session keeps the breadth: no statement per search
            conn.execute("SELECT set_config('hnsw.ef_search', %s, false)", [str(ef)])
        else:
            conn.commit()
        return conn

    def in_transaction(fmt: str, prepare: bool = False):
        conn, sql = connection(False), QUERY.format(fmt=fmt)

        def one(query):
            with conn.transaction():
                conn.execute("SELECT set_config('hnsw.ef_search', %s, true)", [str(ef)])
                return conn.execute(sql, {"q": query, "k": K}, prepare=prepare).fetchall()

        return one

    def pipelined(fmt: str):
        conn, sql = connection(False), QUERY.format(fmt=fmt)

        def one(query):
            with conn.pipeline():  # BEGIN; the rest at once; an empty Sync
                conn.execute("SELECT set_config('hnsw.ef_search', %s, true)", [str(ef)])
                cursor = conn.execute(sql, {"q": query, "k": K})
                conn.commit()
            return cursor.fetchall()

        return one

    def session(template: str, fmt: str, prepare: bool = False):
        conn, sql = connection(True), template.format(fmt=fmt)
        return lambda query: conn.execute(sql, {"q": query, "k": K}, prepare=prepare).fetchall()

    floor = connection(True)
    return {
        "text vector, ef in the transaction (4 round trips)": in_transaction("t"),
        "binary vector, ef in the transaction (4 round trips)": in_transaction("b"),
        "binary, ef in the transaction, prepared": in_transaction("b", prepare=True),
        "binary, ef in the transaction, pipelined (3 round trips)": pipelined("b"),
        "binary, ef per session (1 round trip)": session(QUERY, "b", prepare=False),
        "binary, ef per session, prepared": session(QUERY, "b", prepare=True),
        "binary, ef per session, prepared, ids + distance only": session(IDS_ONLY, "b", True),
        "SELECT 1 (one round trip, no work)": lambda query: floor.execute("SELECT 1").fetchall(),
    }


def server_times(url: str, queries: np.ndarray, ef: int) -> tuple[float, float]:
    """Median planning and execution time (ms) the server reports at `ef`."""
    import psycopg
    from pgvector.psycopg import register_vector

    with psycopg.connect(url, autocommit=True) as conn:
        register_vector(conn)
        conn.execute("SELECT set_config('hnsw.ef_search', %s, false)", [str(ef)])
        sql = "EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) " + QUERY.format(fmt="b")
        for query in queries[:10]:
            conn.execute(sql, {"q": query, "k": K})
        planning, execution = [], []
        for query in queries:
            plan = conn.execute(sql, {"q": query, "k": K}).fetchone()[0][0]
            planning.append(plan["Planning Time"])
            execution.append(plan["Execution Time"])
        node = plan["Plan"]["Plans"][0]["Node Type"] if "Plans" in plan["Plan"] else "?"
    print(f"plan at ef_search {ef}: Limit -> {node}", file=sys.stderr)
    return statistics.median(planning), statistics.median(execution)


def ef_sweep(url: str, queries: np.ndarray, truth: np.ndarray) -> list[tuple]:
    rows = []
    for ef in EF_SWEEP:
        one = client_variants(url, ef)["binary, ef per session, prepared, ids + distance only"]
        p50, p95, answers = timed(queries, one)
        planning, execution = server_times(url, queries, ef)
        rows.append((ef, recall(answers, truth), p50, p95, planning, execution))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="vectors (default 100,000)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--ef-search", type=int, default=200, help="breadth for parts 1-3")
    parser.add_argument("--reuse", action="store_true", help="search the table the last run built")
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver
    store, url, work, queries, truth = build(args.n, args.queries, args.reuse)
    try:
        store.ef_search = args.ef_search
        print(f"\n{args.n:,} vectors, k {K}, ef_search {args.ef_search}, {len(queries)} queries\n")
        print("| how the search is sent | p50 | p95 | recall@10 |\n|---|---:|---:|---:|")
        variants = {
            "the store as served (`PgVectorStore.search`)": lambda q: _ids(store.search(q, K)),
        } | client_variants(url, args.ef_search)
        rows = [(label, *measured) for label, measured in interleaved(queries, variants).items()]
        for label, p50, p95, answers in rows:
            score = "" if label.startswith("SELECT 1") else f"{recall(answers, truth):.3f}"
            print(f"| {label} | {p50:.2f} ms | {p95:.2f} ms | {score} |")
        planning, execution = server_times(url, queries, args.ef_search)
        print(
            f"\nserver (EXPLAIN ANALYZE, median): planning {planning:.3f} ms, "
            f"execution {execution:.2f} ms\n"
        )
        print("| ef_search | recall@10 | p50 (1 round trip) | p95 | planning | execution |")
        print("|---:|---:|---:|---:|---:|---:|")
        for ef, score, p50, p95, planning, execution in ef_sweep(url, queries, truth):
            print(
                f"| {ef} | {score:.3f} | {p50:.2f} ms | {p95:.2f} ms | {planning:.3f} ms "
                f"| {execution:.2f} ms |"
            )
    finally:
        store.close()
        pgserver.get_server(work / "pgdata", cleanup_mode="stop").cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
