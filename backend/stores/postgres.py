"""pgvector backend: products and embeddings in PostgreSQL, searched with an HNSW index.

Several app processes can serve from one database: every search is one query on a pooled
connection, and upserts are idempotent. The schema is `postgres_db`'s, made by
`flask --app backend db init`; a store refuses a database without it.

Filters run in SQL. pgvector applies a WHERE clause after the HNSW walk, so a selective filter
could leave fewer than k rows: a filter the planner expects to keep at most `exact_limit` rows is
answered by an exact scan of just those rows (the index scan is switched off for that query); a
broader one walks the graph with an iterative index scan (pgvector 0.8 or later: the walk goes
on until k rows pass the filter) or, on older versions, with `hnsw.ef_search` widened in
proportion; any answer still short of k is redone exactly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg_pool import ConnectionPool, PoolTimeout

from ..catalog import Product
from .base import NO_FILTERS, Filters, StoreError, StoreHit, VectorStore, cut, prepare_batch
from .postgres_db import INDEX, TABLE, check_schema, describe, index_definition, scalar

BULK_ROWS = 10_000  # an initial load at least this big builds the HNSW index once, afterwards
MAX_EF_SEARCH = 1000  # pgvector's upper bound for hnsw.ef_search
ITERATIVE_SCAN_SINCE = (0, 8, 0)  # the first pgvector with iterative index scans
COLUMNS = "id, name, category, price, image_url"


def _configure(conn: psycopg.Connection) -> None:
    register_vector(conn)
    conn.commit()  # the type lookup opened a transaction; a pooled connection must be idle


class PgVectorStore(VectorStore):
    name = "pgvector"
    remote = True

    def __init__(
        self,
        url: str,
        dim: int,
        *,
        pool_size: int = 4,
        ef_search: int = 200,
        exact_limit: int = 20_000,
        oversample: int = 2,
        timeout: float = 10,
    ) -> None:
        self.index, pgvector = check_schema(url, dim)
        self.iterative_scans = pgvector >= ITERATIVE_SCAN_SINCE
        self.url = url
        self.dim = dim
        self.ef_search = ef_search
        self.exact_limit = exact_limit
        self.oversample = oversample
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            configure=_configure,
            timeout=timeout,
            open=True,
            name="pgvector",
        )

    @contextlib.contextmanager
    def _connection(self) -> Iterator[psycopg.Connection]:
        """A pooled connection in a transaction; a lost server becomes a StoreError."""
        try:
            with self._pool.connection() as conn:
                yield conn
        except (psycopg.OperationalError, PoolTimeout) as error:
            raise StoreError(
                f"lost the connection to PostgreSQL at {describe(self.url)}: {error}"
            ) from None

    # -- writes -----------------------------------------------------------------------------

    def upsert(
        self, products: Sequence[Product], vectors: np.ndarray, versions: Sequence[str]
    ) -> None:
        products, vectors, versions = prepare_batch(products, vectors, versions, self.dim)
        if not products:
            return
        with self._connection() as conn:
            bulk = len(products) >= BULK_ROWS and not self._has_rows(conn)
            graph = index_definition(conn) if bulk else None
            if graph:  # building the graph once over all rows is far faster than row by row
                conn.execute(f"DROP INDEX {INDEX}")
            conn.execute(f"CREATE TEMP TABLE stage (LIKE {TABLE}) ON COMMIT DROP")
            with conn.cursor().copy(
                f"COPY stage ({COLUMNS}, version, embedding) FROM STDIN WITH (FORMAT BINARY)"
            ) as copy:
                copy.set_types(["text", "text", "text", "float8", "text", "text", "vector"])
                for product, vector, version in zip(products, vectors, versions, strict=True):
                    copy.write_row(
                        (
                            product.id,
                            product.name,
                            product.category,
                            product.price,
                            product.image_url,
                            version,
                            vector,
                        )
                    )
            conn.execute(
                f"INSERT INTO {TABLE} SELECT * FROM stage ON CONFLICT (id) DO UPDATE SET "
                "name = EXCLUDED.name, category = EXCLUDED.category, price = EXCLUDED.price, "
                "image_url = EXCLUDED.image_url, version = EXCLUDED.version, "
                "embedding = EXCLUDED.embedding"
            )
            if graph:
                conn.execute(graph)  # the same definition, parameters included
            if bulk:
                conn.execute(f"ANALYZE {TABLE}")

    @staticmethod
    def _has_rows(conn: psycopg.Connection) -> bool:
        return scalar(conn, f"SELECT EXISTS (SELECT 1 FROM {TABLE})")

    def delete(self, ids: Iterable[str]) -> int:
        ids = list(ids)
        if not ids:
            return 0
        with self._connection() as conn:
            return conn.execute(f"DELETE FROM {TABLE} WHERE id = ANY(%s)", [ids]).rowcount

    # -- reads ------------------------------------------------------------------------------

    def probe(self) -> None:
        try:
            with self._connection() as conn:
                conn.execute(f"SELECT 1 FROM {TABLE} LIMIT 1").fetchall()
        except psycopg.Error as error:  # the table gone, a privilege revoked
            raise StoreError(
                f"PostgreSQL at {describe(self.url)} refused a search: "
                f"{' '.join(str(error).split())}"
            ) from None

    def count(self) -> int:
        with self._connection() as conn:
            return scalar(conn, f"SELECT count(*) FROM {TABLE}")

    def versions(self) -> dict[str, str]:
        with self._connection() as conn:
            return dict(conn.execute(f"SELECT id, version FROM {TABLE}").fetchall())

    def vector(self, product_id: str) -> np.ndarray | None:
        with self._connection() as conn:
            row = conn.execute(
                f"SELECT embedding FROM {TABLE} WHERE id = %s", [product_id]
            ).fetchone()
        return None if row is None else row[0].to_numpy().astype(np.float32)

    def search(
        self,
        query: np.ndarray,
        k: int,
        *,
        threshold: float | None = None,
        filters: Filters = NO_FILTERS,
    ) -> list[StoreHit]:
        if k <= 0:
            return []
        query = np.asarray(query, dtype=np.float32)
        where, params = _where(filters)
        with self._connection() as conn:
            matching = _estimate(conn, where, params) if filters.active else 0
            if not filters.active:
                rows = self._walk(conn, query, k, where, params, self.ef_search)
            elif matching <= self.exact_limit:
                rows = self._exact(conn, query, k, where, params)
            elif self.iterative_scans:
                # The walk goes on past ef_search until enough rows pass the filter.
                conn.execute("SELECT set_config('hnsw.iterative_scan', 'strict_order', true)")
                rows = self._walk(conn, query, k, where, params, self.ef_search)
            else:
                widen = max(_estimate(conn, "", {}), 1) / max(matching, 1)
                rows = self._walk(conn, query, k, where, params, int(self.ef_search * widen))
            if len(rows) < k:  # the graph walk came back short: only an exact scan is sure
                rows = self._exact(conn, query, k, where, params)
        hits = [StoreHit(Product(*row[:5]), 1.0 - float(row[5])) for row in rows]
        return cut(hits, threshold)

    def _walk(self, conn, query, k, where, params, ef_search) -> list[tuple]:
        ef = min(max(ef_search, k * self.oversample), MAX_EF_SEARCH)
        conn.execute("SELECT set_config('hnsw.ef_search', %s, true)", [str(ef)])
        return self._ordered(conn, query, k, where, params)

    def _exact(self, conn, query, k, where, params) -> list[tuple]:
        # Without index scans the planner filters first (bitmap scan) and sorts the survivors.
        # (Local to this transaction, which ends with the search.)
        conn.execute("SELECT set_config('enable_indexscan', 'off', true)")
        return self._ordered(conn, query, k, where, params)

    @staticmethod
    def _ordered(conn, query, k, where, params) -> list[tuple]:
        return conn.execute(
            f"SELECT {COLUMNS}, embedding <=> %(q)s AS distance FROM {TABLE} {where} "
            "ORDER BY embedding <=> %(q)s LIMIT %(k)s",
            {**params, "q": query, "k": k},
        ).fetchall()

    def close(self) -> None:
        self._pool.close()


def _where(filters: Filters) -> tuple[str, dict[str, object]]:
    clauses: list[str] = []
    params: dict[str, object] = {}
    if filters.category is not None:
        clauses.append("category = %(category)s")
        params["category"] = filters.category
    if filters.min_price is not None:
        clauses.append("price >= %(min_price)s")
        params["min_price"] = filters.min_price
    if filters.max_price is not None:
        clauses.append("price <= %(max_price)s")
        params["max_price"] = filters.max_price
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", params


def _estimate(conn: psycopg.Connection, where: str, params: dict) -> float:
    """The planner's row estimate for a filter: costs a plan, not a scan."""
    plan = scalar(conn, f"EXPLAIN (FORMAT JSON) SELECT 1 FROM {TABLE} {where}", params)
    return float(plan[0]["Plan"]["Plan Rows"])
