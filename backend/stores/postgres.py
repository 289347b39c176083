"""pgvector backend: products and embeddings in PostgreSQL, searched with an HNSW index.

Several app processes can serve from one database: every search is one query on a pooled
connection, and upserts are idempotent. The schema is created and migrated by
`flask --app backend db init` (see `init_schema`), never implicitly by the app.

The graph is built with `HnswIndex`'s parameters (chosen by the sweep in docs/scaling.md),
recorded in the meta table; `db init` rebuilds it when asked for others.

Filters run in SQL. pgvector applies a WHERE clause after the HNSW walk, so a selective filter
could leave fewer than k rows: a filter the planner expects to keep at most `exact_limit` rows is
answered by an exact scan of just those rows (the index scan is switched off for that query); a
broader one walks the graph with an iterative index scan (pgvector 0.8 or later: the walk goes
on until k rows pass the filter) or, on older versions, with `hnsw.ef_search` widened in
proportion; any answer still short of k is redone exactly.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from ..catalog import Product
from ..config import mask_url
from ..errors import InvalidInput
from .base import NO_FILTERS, Filters, StoreError, StoreHit, VectorStore, cut, prepare_batch

log = logging.getLogger(__name__)

TABLE = "search_products"
META = "search_meta"
INDEX = f"{TABLE}_embedding"
SCHEMA_VERSION = 2
INIT_HINT = "run `flask --app backend db init`"
BULK_ROWS = 10_000  # an initial load at least this big builds the HNSW index once, afterwards
MAX_EF_SEARCH = 1000  # pgvector's upper bound for hnsw.ef_search
MAX_HNSW_DIM = 2000  # pgvector's upper bound for an HNSW index on the vector type
ITERATIVE_SCAN_SINCE = (0, 8, 0)  # the first pgvector with iterative index scans
COLUMNS = "id, name, category, price, image_url"


@dataclass(frozen=True)
class HnswIndex:
    """How the HNSW graph is built; the defaults come from the sweep in docs/scaling.md."""

    m: int = 16
    ef_construction: int = 128

    def __post_init__(self) -> None:
        if not 2 <= self.m <= 100:
            raise InvalidInput(f"HNSW m={self.m} must be 2-100 (pgvector's range)")
        if not max(4, 2 * self.m) <= self.ef_construction <= 1000:
            raise InvalidInput(
                f"HNSW ef_construction={self.ef_construction} must be 2 x m ({2 * self.m}) to 1000"
            )

    def describe(self) -> str:
        return f"HNSW index (m {self.m}, ef_construction {self.ef_construction})"

    def create(self, name: str = INDEX) -> str:
        """The CREATE INDEX statement of this graph."""
        return (
            f"CREATE INDEX {name} ON {TABLE} USING hnsw (embedding vector_cosine_ops) "
            f"WITH (m = {self.m}, ef_construction = {self.ef_construction})"
        )

    def meta(self) -> dict[str, str]:
        return {"hnsw_m": str(self.m), "hnsw_ef_construction": str(self.ef_construction)}

    @classmethod
    def from_meta(cls, meta: dict[str, str]) -> HnswIndex:
        if "hnsw_m" not in meta:  # schema v1 built the graph with pgvector's defaults
            return cls(16, 64)
        return cls(int(meta["hnsw_m"]), int(meta["hnsw_ef_construction"]))


DEFAULT_INDEX = HnswIndex()


def describe(url: str) -> str:
    """The server and database of a URL, without its password (for messages and logs)."""
    try:
        info = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "the server in DATABASE_URL (unparsable)"
    host = info.get("host") or "localhost"
    port = f":{info['port']}" if info.get("port") else ""
    user = f"{info['user']}@" if info.get("user") else ""
    return f"{user}{host}{port}/{info.get('dbname') or info.get('user') or ''}"


def connect(url: str, timeout: float = 5) -> psycopg.Connection:
    """Open one connection, or raise StoreError naming the server and the fix."""
    try:
        return psycopg.connect(url, connect_timeout=max(1, int(timeout)))
    except psycopg.ProgrammingError:  # an unreadable URL; its text may quote the password
        raise StoreError(
            f"DATABASE_URL={mask_url(url)} cannot be parsed; the form is "
            "postgresql://user:password@host:5432/database, with any @ : / ? # % in the user "
            "name or password percent-encoded"
        ) from None
    except psycopg.OperationalError as error:
        reason = " ".join(line.strip() for line in str(error).splitlines()) or type(error).__name__
        raise StoreError(
            f"cannot connect to PostgreSQL at {describe(url)}: {reason}; check DATABASE_URL and "
            "that the server is running"
        ) from None


def _migrations(dim: int) -> dict[int, list[str]]:
    # Vectors up to ~6 KB are kept inline (PLAIN): TOASTed vectors slow down every distance.
    storage = "PLAIN" if dim * 4 <= 6000 else "EXTERNAL"
    return {
        1: [
            f"CREATE TABLE {META} (key text PRIMARY KEY, value text NOT NULL)",
            f"""CREATE TABLE {TABLE} (
                id text PRIMARY KEY,
                name text NOT NULL,
                category text NOT NULL,
                price double precision,
                image_url text NOT NULL,
                version text NOT NULL,
                embedding vector({dim}) NOT NULL
            )""",
            f"ALTER TABLE {TABLE} ALTER COLUMN embedding SET STORAGE {storage}",
            f"CREATE INDEX {TABLE}_category ON {TABLE} (category)",
            f"CREATE INDEX {TABLE}_price ON {TABLE} (price)",
            f"INSERT INTO {META} (key, value) VALUES ('dim', '{dim}')",
        ],
        # v2 records how the HNSW graph is built; `_ensure_index` (re)builds it to match.
        2: [],
    }


def init_schema(
    url: str,
    dim: int,
    *,
    reset: bool = False,
    extension: str = "vector",
    index: HnswIndex | None = None,
) -> str:
    """Create or migrate the schema and its HNSW index; say what it did.

    Idempotent and safe to run from several processes. `index` rebuilds the graph with other
    parameters; without it a new or migrated database gets `DEFAULT_INDEX` and an up-to-date one
    keeps its graph.
    """
    if dim > MAX_HNSW_DIM:
        raise StoreError(
            f"the model makes {dim}-dimensional vectors but pgvector's HNSW index takes at most "
            f"{MAX_HNSW_DIM}; choose a smaller MODEL or VECTOR_BACKEND=faiss"
        )
    with connect(url) as conn:
        ensure_extension(conn, url, extension)
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [TABLE])
        if reset:
            conn.execute(f"DROP TABLE IF EXISTS {TABLE}, {META}")
        current = _schema_version(conn)
        recorded = HnswIndex.from_meta(_meta(conn)) if current else None
        wanted = index or (recorded if current >= 2 else DEFAULT_INDEX)
        for version, statements in sorted(_migrations(dim).items()):
            if version > current:
                for statement in statements:
                    conn.execute(statement)
        built = _ensure_index(conn, wanted, recorded)
        for key, value in {"schema_version": str(SCHEMA_VERSION), **wanted.meta()}.items():
            conn.execute(
                f"INSERT INTO {META} (key, value) VALUES (%s, %s) "
                "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                [key, value],
            )
    if current == SCHEMA_VERSION:
        done = f"schema v{SCHEMA_VERSION} is up to date"
    elif current == 0:
        done = f"schema v{SCHEMA_VERSION} created"
    else:
        done = f"schema migrated v{current} -> v{SCHEMA_VERSION}"
    return f"{done}; {'built' if built else 'kept'} the {wanted.describe()}"


def _ensure_index(conn: psycopg.Connection, wanted: HnswIndex, recorded: HnswIndex | None) -> bool:
    """Build the HNSW graph unless it exists as wanted (on a full table this takes minutes).

    A rebuild makes the new graph next to the old one, then swaps them: searches go on with the
    old graph meanwhile (writes wait), and a failed build leaves the old one in place.
    """
    exists = conn.execute("SELECT to_regclass(%s)", [INDEX]).fetchone()[0] is not None
    if not exists:
        conn.execute(wanted.create())
        return True
    if recorded == wanted:
        return False
    conn.execute(wanted.create(f"{INDEX}_next"))
    conn.execute(f"DROP INDEX {INDEX}")
    conn.execute(f"ALTER INDEX {INDEX}_next RENAME TO {INDEX}")
    return True


def server_version(conn: psycopg.Connection) -> tuple[int, ...]:
    """The installed pgvector version, e.g. (0, 8, 0); (0,) when the extension is missing."""
    row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
    if row is None:
        return (0,)
    return tuple(int(part) for part in re.findall(r"\d+", row[0])[:3])


def _meta(conn: psycopg.Connection) -> dict[str, str]:
    return dict(conn.execute(f"SELECT key, value FROM {META}").fetchall())


def ensure_extension(conn: psycopg.Connection, url: str, extension: str = "vector") -> None:
    """CREATE EXTENSION, turning the server's refusals into messages that say what to install."""
    try:
        with conn.transaction():
            conn.execute(f'CREATE EXTENSION IF NOT EXISTS "{extension}"')
    except (pg_errors.UndefinedFile, pg_errors.FeatureNotSupported, pg_errors.UndefinedObject):
        raise StoreError(
            f"the PostgreSQL server at {describe(url)} does not have the pgvector extension "
            f"('{extension}') installed; install pgvector on it (e.g. the postgresql-16-pgvector "
            "package, or a managed database that offers pgvector), then run "
            "`flask --app backend db init` again"
        ) from None
    except pg_errors.InsufficientPrivilege:
        raise StoreError(
            f"the database user may not create the '{extension}' extension at {describe(url)}; "
            f"ask an administrator to run CREATE EXTENSION {extension}; in that database once"
        ) from None


def _schema_version(conn: psycopg.Connection) -> int:
    if conn.execute("SELECT to_regclass(%s)", [META]).fetchone()[0] is None:
        return 0
    row = conn.execute(f"SELECT value FROM {META} WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else 0


def check_schema(url: str, dim: int) -> tuple[HnswIndex, tuple[int, ...]]:
    """Refuse to serve from a database without the extension, the schema, or with other vectors.

    Return how its graph is built and the pgvector version. A v1 schema (an older app's) still
    serves, with its graph built with pgvector's defaults, until `db init` migrates it.
    """
    with connect(url) as conn:
        pgvector = server_version(conn)
        if pgvector == (0,):
            available = conn.execute(
                "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'"
            ).fetchone()
            where = describe(url)
            if available is None:
                raise StoreError(
                    f"the PostgreSQL server at {where} does not have the pgvector extension "
                    "installed; install pgvector on it, then " + INIT_HINT
                )
            raise StoreError(f"the database {where} has no vector extension yet; {INIT_HINT}")
        version = _schema_version(conn)
        if version == 0:
            raise StoreError(f"the database {describe(url)} has no search tables yet; {INIT_HINT}")
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the database schema is v{version}, this app knows up to v{SCHEMA_VERSION}; "
                "upgrade the app"
            )
        if version < SCHEMA_VERSION:
            log.warning(
                "the database schema is v%d (an HNSW graph with pgvector's default parameters); %s to migrate it to v%d",
                version, INIT_HINT, SCHEMA_VERSION,
            )  # fmt: skip
        meta = _meta(conn)
        stored = int(meta["dim"])
        if stored != dim:
            raise StoreError(
                f"the database holds {stored}-dimensional vectors but the model makes {dim}-dimensional "
                "ones; run `flask --app backend db init --reset` to recreate the table (the next "
                "index sync fills it again)"
            )
        return HnswIndex.from_meta(meta), pgvector


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
            graph = _index_definition(conn) if bulk else None
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
        return conn.execute(f"SELECT EXISTS (SELECT 1 FROM {TABLE})").fetchone()[0]

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
            return conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0]

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


def _where(filters: Filters) -> tuple[str, dict]:
    clauses, params = [], {}
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
    plan = conn.execute(f"EXPLAIN (FORMAT JSON) SELECT 1 FROM {TABLE} {where}", params).fetchone()[
        0
    ]
    return float(plan[0]["Plan"]["Plan Rows"])


def _index_definition(conn: psycopg.Connection) -> str | None:
    """The CREATE INDEX statement of the HNSW graph as it stands, or None when there is none."""
    row = conn.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", [INDEX]).fetchone()
    return None if row is None else row[0]
