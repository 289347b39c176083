"""The MySQL / MariaDB side of the mysql backend: the URL, connections, errors and the schema.

PyMySQL is the driver: pure Python (no client library to build into the Docker image), MIT
licensed, maintained, and the same code talks to MySQL 8 and MariaDB 10.6+.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import ssl
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

import pymysql
from pymysql.connections import Connection

from ..config import mask_url
from .base import StoreError

log = logging.getLogger(__name__)

TABLE = "search_vectors"
META = "search_meta"
SCHEMA_VERSION = 1
DEFAULT_PORT = 3306
# Errors of a connection that went away (server restarted, network cut), as opposed to a bad
# statement: the connection is dropped and the work may be tried once more on a new one.
CONNECTION_ERRORS = (pymysql.err.OperationalError, pymysql.err.InterfaceError, OSError)
T = TypeVar("T")

_REASONS = {
    1044: "the user may not use that database (GRANT it the rights listed in docs/mysql.md)",
    1045: "the server refused the user name or password",
    1049: "that database does not exist on the server (CREATE DATABASE it first)",
    2003: "the server does not answer at that address (is it running, and the port right?)",
    2005: "the server's host name does not resolve",
}


def connect_args(url: str) -> dict[str, Any]:
    """PyMySQL's connection arguments from mysql://user:password@host:port/database?options."""
    try:
        parts = urlsplit(url)
    except ValueError:  # its text may quote the password: never shown
        raise StoreError(
            f"DATABASE_URL={mask_url(url)} cannot be parsed; the form is "
            "mysql://user:password@host:3306/database, with any @ : / ? # % in the user name "
            "or password percent-encoded"
        ) from None
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise StoreError(
            f"DATABASE_URL={mask_url(url)} has a port that is not a number; the form is "
            "mysql://user:password@host:3306/database"
        ) from None
    database = unquote(parts.path.lstrip("/"))
    if not database or "/" in database:
        raise StoreError(
            f"DATABASE_URL={mask_url(url)} names no database; the form is "
            "mysql://user:password@host:3306/database"
        )
    options = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    args: dict[str, Any] = {
        "host": parts.hostname or "localhost",
        "port": port,
        "user": unquote(parts.username or ""),
        "password": unquote(parts.password or ""),
        "database": database,
        "charset": "utf8mb4",
        "binary_prefix": True,  # blobs sent as _binary'...', never read as text
        "autocommit": True,
        "connect_timeout": 5,
        "read_timeout": 30,
        "write_timeout": 30,
        # Refreshes read in one consistent snapshot whatever the server's default isolation.
        "init_command": "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
    }
    if "unix_socket" in options:
        args["unix_socket"] = options["unix_socket"]
    if options.get("ssl", "").lower() in ("1", "true", "required") or "ssl_ca" in options:
        args["ssl"] = ssl.create_default_context(cafile=options.get("ssl_ca"))
    return args


def start_error(url: str, error: Exception) -> StoreError:
    """One line naming DATABASE_URL (password masked), the reason and what to check."""
    code = error.args[0] if error.args else None
    reason = (_REASONS.get(code) if isinstance(code, int) else None) or _server_text(error)
    return StoreError(f"cannot use DATABASE_URL={mask_url(url)}: {reason}")


def _server_text(error: Exception) -> str:
    text = str(error.args[1]) if len(error.args) > 1 else str(error) or type(error).__name__
    return " ".join(text.split())


def lost_error(url: str, error: Exception) -> StoreError:
    return StoreError(
        f"lost the connection to the MySQL server of DATABASE_URL={mask_url(url)}: "
        f"{_server_text(error)}"
    )


class ConnectionPool:
    """A few connections shared by the threads of one process; broken ones are dropped."""

    def __init__(self, url: str, size: int, timeout: float = 10) -> None:
        self.url = url
        self._args = connect_args(url)
        self._slots = threading.BoundedSemaphore(size)
        self._idle: list[Connection] = []
        self._lock = threading.Lock()
        self._timeout = timeout

    def new_connection(self) -> Connection:
        try:
            return pymysql.connect(**self._args)
        except CONNECTION_ERRORS as error:
            raise start_error(self.url, error) from None

    @contextlib.contextmanager
    def _borrow(self, fresh: bool) -> Iterator[Connection]:
        if not self._slots.acquire(timeout=self._timeout):
            raise StoreError(f"all database connections stayed busy for {self._timeout:g} s")
        conn = None
        try:
            with self._lock:
                conn = None if fresh or not self._idle else self._idle.pop()
            conn = conn or pymysql.connect(**self._args)
            yield conn
        except BaseException:
            if conn is not None:
                _close_quietly(conn)
                conn = None
            raise
        finally:
            if conn is not None:
                with self._lock:
                    self._idle.append(conn)
            self._slots.release()

    def run(self, work: Callable[[Connection], T]) -> T:
        """Run work on a pooled connection; once more on a new one if the first had gone stale."""
        for attempt in (1, 2):
            try:
                with self._borrow(fresh=attempt == 2) as conn:
                    return work(conn)
            except CONNECTION_ERRORS as error:
                self._drop_idle()  # after a server restart every idle connection is dead too
                if attempt == 2:
                    raise lost_error(self.url, error) from None
            except pymysql.err.ProgrammingError as error:
                raise StoreError(
                    f"the database of DATABASE_URL={mask_url(self.url)} refused a query: "
                    f"{_server_text(error)}"
                ) from None
        raise AssertionError("unreachable")

    def _drop_idle(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            _close_quietly(conn)

    def close(self) -> None:
        self._drop_idle()


def _close_quietly(conn: Connection) -> None:
    with contextlib.suppress(Exception):
        conn.close()


@contextlib.contextmanager
def transaction(conn: Connection, snapshot: bool = False) -> Iterator[pymysql.cursors.Cursor]:
    """A transaction (a consistent read-only snapshot if asked), rolled back on any error."""
    cursor = conn.cursor()
    cursor.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY" if snapshot else "BEGIN")
    try:
        yield cursor
        conn.commit()
    except BaseException:
        with contextlib.suppress(Exception):
            conn.rollback()
        raise
    finally:
        cursor.close()


# -- schema ----------------------------------------------------------------------------------


def _create_statements() -> list[str]:
    table_options = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
    return [
        f"""CREATE TABLE IF NOT EXISTS {TABLE} (
            id_hash BINARY(16) NOT NULL PRIMARY KEY,
            id TEXT NOT NULL,
            name TEXT NOT NULL,
            category TEXT NOT NULL,
            price DOUBLE NULL,
            image_url TEXT NOT NULL,
            version VARCHAR(64) NOT NULL,
            model VARCHAR(255) NOT NULL,
            embedding MEDIUMBLOB NULL,
            stamp BIGINT NOT NULL,
            deleted_at TIMESTAMP NULL,
            UNIQUE KEY {TABLE}_stamp (stamp),
            KEY {TABLE}_deleted (deleted_at)
        ) {table_options}""",
    ]


def ensure_schema(conn: Connection, url: str, dim: int) -> None:
    """Create the tables on first use and refuse a newer schema.

    Tables of another width are left as they are: opening them (a server still running the
    previous model) must not empty them; the first write of this width does (`reset_for_width`).
    """
    with conn.cursor() as cursor:
        cursor.execute("SELECT GET_LOCK('search_vectors_schema', 30)")
        try:
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {META} (name VARCHAR(64) NOT NULL PRIMARY KEY, "
                "value VARCHAR(255) NOT NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 "
                "COLLATE=utf8mb4_bin"
            )
            meta = read_meta(cursor)
            version = int(meta.get("schema_version", 0))
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"the tables of DATABASE_URL={mask_url(url)} are schema v{version}, this app "
                    f"knows v{SCHEMA_VERSION}; upgrade the app"
                )
            if version == 0:
                for statement in _create_statements():
                    cursor.execute(statement)
                set_meta(
                    cursor,
                    schema_version=SCHEMA_VERSION,
                    dim=dim,
                    generation=0,
                    purged_through=0,
                    epoch=secrets.token_hex(8),
                )
                log.info("created the %s and %s tables (schema v%d)", TABLE, META, SCHEMA_VERSION)
        finally:
            cursor.execute("SELECT RELEASE_LOCK('search_vectors_schema')")


def reset_for_width(cursor, old: int, dim: int) -> str:
    """Another model's vectors: empty the table for this model's, in the writer's transaction
    (which fills it again); the new epoch tells every process to load it all again."""
    log.warning(
        "the database held %d-dimensional vectors of another model; emptied for this model's "
        "%d-dimensional ones, written now",
        old,
        dim,
    )
    cursor.execute(f"DELETE FROM {TABLE}")
    epoch = secrets.token_hex(8)
    set_meta(cursor, dim=dim, epoch=epoch)
    return epoch


def read_meta(cursor) -> dict[str, str]:
    cursor.execute(f"SELECT name, value FROM {META}")
    return dict(cursor.fetchall())


def set_meta(cursor, **values: object) -> None:
    cursor.executemany(
        f"INSERT INTO {META} (name, value) VALUES (%s, %s) "
        "ON DUPLICATE KEY UPDATE value = VALUES(value)",
        [(name, str(value)) for name, value in values.items()],
    )
