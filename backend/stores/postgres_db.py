"""The pgvector backend's database side: the URL and connections (errors without the password),
the schema and its HNSW graph, created and migrated by `flask --app backend db init` (see
`init_schema`), never implicitly by the app, and checked before a store serves from it.

The graph is built with `HnswIndex`'s parameters (chosen by the sweep in docs/scaling.md),
recorded in the meta table; `db init` rebuilds it when asked for others.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict

from ..config import mask_url
from ..errors import InvalidInput
from .base import StoreError

log = logging.getLogger(__name__)

TABLE = "search_products"
META = "search_meta"
INDEX = f"{TABLE}_embedding"
SCHEMA_VERSION = 2
INIT_HINT = "run `flask --app backend db init`"
MAX_HNSW_DIM = 2000  # pgvector's upper bound for an HNSW index on the vector type


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


def scalar(conn: psycopg.Connection, query: Any, params: Any = None) -> Any:
    """The one value of a query that always answers one row (a count, `to_regclass`, a plan)."""
    row = conn.execute(query, params).fetchone()
    if row is None:
        raise StoreError(f"PostgreSQL answered no row to {query!r}")
    return row[0]


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
        wanted = index or (recorded if recorded and current >= 2 else DEFAULT_INDEX)
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
    exists = scalar(conn, "SELECT to_regclass(%s)", [INDEX]) is not None
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
    if scalar(conn, "SELECT to_regclass(%s)", [META]) is None:
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
                version,
                INIT_HINT,
                SCHEMA_VERSION,
            )
        meta = _meta(conn)
        stored = int(meta["dim"])
        if stored != dim:
            raise StoreError(
                f"the database holds {stored}-dimensional vectors but the model makes {dim}-dimensional "
                "ones; run `flask --app backend db init --reset` to recreate the table (the next "
                "index sync fills it again)"
            )
        return HnswIndex.from_meta(meta), pgvector


def index_definition(conn: psycopg.Connection) -> str | None:
    """The CREATE INDEX statement of the HNSW graph as it stands, or None when there is none."""
    row = conn.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", [INDEX]).fetchone()
    return None if row is None else row[0]
