"""The mysql backend: products and float32 embeddings in MySQL / MariaDB, searched in memory.

The database is the store of record, shared by every app process; each process keeps all the
vectors in one numpy matrix (a `MemoryStore`), loaded at start in chunks of `CHUNK` rows, so a
search is the memory backend's exact search plus one primary-key read of a change marker.

Every write runs in one transaction that bumps the marker (`generation` in `search_meta`) and
stamps the rows it touches with it and their place in the change (`stamp` = generation << 24 |
position: the order in which a process applies them, so that equal scores rank as in the memory
backend, and one indexed column to read changes by); a delete leaves a tombstone row (no embedding) for
`TOMBSTONE_DAYS`. A process that sees a newer generation reads just the rows stamped since its
own, in one consistent snapshot; it reads everything again when the tombstones it would need
were purged, or the tables were emptied for another model (a new `epoch`).

The tables hold one width (`dim` in `search_meta`). The first write of another model's width
empties them for it (a `flask index` with another model); a process of the previous width keeps
the vectors it holds in memory meanwhile, as a memory-backend server keeps its index, so that it
goes on answering (its `/readyz` names the other model) until re-indexed with its model.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pymysql
from pymysql.connections import Connection

from ..catalog import Product
from .base import NO_FILTERS, Filters, StoreHit, VectorStore, prepare_batch
from .memory import MemoryStore
from .mysql_db import (
    META,
    TABLE,
    ConnectionPool,
    ensure_schema,
    read_meta,
    reset_for_width,
    set_meta,
    start_error,
    transaction,
)

log = logging.getLogger(__name__)

CHUNK = 5000  # rows per SELECT when loading, and per INSERT batch when writing
POSITION_BITS = 24  # a stamp is generation << 24 | the row's position in its change
TOMBSTONE_DAYS = 1
COLUMNS = "id_hash, id, name, category, price, image_url, version, model, embedding, stamp"
UPSERT = (
    f"INSERT INTO {TABLE} ({COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
    "ON DUPLICATE KEY UPDATE id = VALUES(id), name = VALUES(name), category = VALUES(category), "
    "price = VALUES(price), image_url = VALUES(image_url), version = VALUES(version), "
    "model = VALUES(model), embedding = VALUES(embedding), stamp = VALUES(stamp), "
    "deleted_at = NULL"
)


@dataclass(frozen=True)
class Marker:
    """Which state of the tables a process holds: the tables' epoch and the last generation."""

    epoch: str
    generation: int


def id_hash(product_id: str) -> bytes:
    """The primary key: ids may be up to 4,096 characters, longer than an index key may be."""
    return hashlib.blake2b(product_id.encode("utf-8", "surrogateescape"), digest_size=16).digest()


class MySQLStore(VectorStore):
    """Vectors kept in MySQL / MariaDB, searched exactly in this process's memory."""

    name = "mysql"
    remote = True

    def __init__(self, url: str, dim: int, *, model: str = "", pool_size: int = 4) -> None:
        self.url = url
        self.dim = dim
        self.model = model
        self._pool = ConnectionPool(url, pool_size)
        conn = self._pool.new_connection()  # a start-up failure is one line naming DATABASE_URL
        try:
            ensure_schema(conn, url, dim)
        except pymysql.err.MySQLError as error:
            raise start_error(url, error) from None
        finally:
            conn.close()
        self._memory = MemoryStore(dim)
        self._marker: Marker | None = None
        self._refresh_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._catch_up()  # every vector in memory before the first search

    # -- reads: from memory, after catching up with the other processes' writes -------------

    def count(self) -> int:
        self._catch_up()
        return self._memory.count()

    def versions(self) -> dict[str, str]:
        self._catch_up()
        return self._memory.versions()

    def vector(self, product_id: str) -> np.ndarray | None:
        self._catch_up()
        return self._memory.vector(product_id)

    def search(
        self,
        query: np.ndarray,
        k: int,
        *,
        threshold: float | None = None,
        filters: Filters = NO_FILTERS,
    ) -> list[StoreHit]:
        self._catch_up()
        return self._memory.search(query, k, threshold=threshold, filters=filters)

    def probe(self) -> None:
        self._catch_up()  # what every search does first

    def _catch_up(self) -> None:
        """Read the change marker (one primary-key read); load what changed if it moved."""
        if self._pool.run(_read_marker) == self._marker:
            return
        with self._refresh_lock:
            self._pool.run(self._refresh)

    def _refresh(self, conn: Connection) -> None:
        with transaction(conn, snapshot=True) as cursor:
            meta = read_meta(cursor)
            marker = Marker(meta["epoch"], int(meta["generation"]))
            local = self._marker
            if marker == local:
                return
            if int(meta["dim"]) != self.dim:
                self._keep_own_width(local, marker, int(meta["dim"]))
            elif (
                local is None
                or local.epoch != marker.epoch
                or local.generation < int(meta["purged_through"])
            ):
                self._memory = self._load_all(cursor)
            else:
                self._load_changes(cursor, local.generation)
            self._marker = marker

    def _keep_own_width(self, local: Marker | None, marker: Marker, width: int) -> None:
        """Tables of another model's width: keep what this process holds (none of them is
        searchable with this model), until they are written with this width again."""
        if local is None or local.epoch != marker.epoch:
            log.warning(
                "mysql store: the database holds %d-dimensional vectors of another model; this "
                "process keeps its %d vectors of %d dimensions until re-indexed with its model",
                width,
                self._memory.count(),
                self.dim,
            )
        self._marker = marker  # a new width always comes with a new epoch: then all is loaded

    def _load_all(self, cursor) -> MemoryStore:
        cursor.execute(f"SELECT COUNT(*) FROM {TABLE} WHERE embedding IS NOT NULL")
        matrix = np.empty((cursor.fetchone()[0], self.dim), dtype=np.float32)  # (N, D)
        products: list[Product] = []
        versions: list[str] = []
        for product, version, vector in self._rows(cursor, since=-1):
            if vector is not None and len(products) < len(matrix):
                matrix[len(products)] = vector
                products.append(product)
                versions.append(version)
        memory = MemoryStore(self.dim)
        memory.upsert(products, matrix[: len(products)], versions)
        log.info("mysql store: %d vectors loaded", len(products))
        return memory

    def _load_changes(self, cursor, since: int) -> None:
        gone: list[str] = []
        products: list[Product] = []
        versions: list[str] = []
        vectors: list[np.ndarray] = []
        for product, version, vector in self._rows(cursor, since):
            if vector is None:
                gone.append(product.id)
            else:
                products.append(product)
                versions.append(version)
                vectors.append(vector)
        matrix = np.stack(vectors) if vectors else np.zeros((0, self.dim), np.float32)  # (M, D)
        self._memory.apply(gone, products, matrix, versions)

    def _rows(self, cursor, since: int) -> Iterator[tuple[Product, str, np.ndarray | None]]:
        """Rows written after generation `since`, in the order written, in chunks of CHUNK
        (an index range each); None: deleted or unusable."""
        after, width, skipped = ((since + 1) << POSITION_BITS) - 1, self.dim * 4, 0
        while True:
            cursor.execute(
                f"SELECT stamp, id, name, category, price, image_url, version, embedding "
                f"FROM {TABLE} WHERE stamp > %s ORDER BY stamp LIMIT %s",
                (after, CHUNK),
            )
            rows = cursor.fetchall()
            for _, pid, name, category, price, image_url, version, blob in rows:
                if blob is not None and len(blob) != width:
                    skipped += 1  # dimension checked on read: another model's row is left out
                    blob = None
                vector = None if blob is None else np.frombuffer(blob, dtype=np.float32)  # (D,)
                yield Product(pid, name, category, price, image_url), version, vector
            if len(rows) < CHUNK:
                break
            after = rows[-1][0]
        if skipped:
            log.warning("mysql store: %d rows are not %d-dimensional; left out", skipped, self.dim)

    # -- writes: one transaction each, then applied to this process's memory ------------------

    def upsert(
        self, products: Sequence[Product], vectors: np.ndarray, versions: Sequence[str]
    ) -> None:
        self.apply([], products, vectors, versions)

    def delete(self, ids: Iterable[str]) -> int:
        return self.apply(list(ids), [], np.zeros((0, self.dim), np.float32), [])

    def apply(
        self,
        delete_ids: Sequence[str],
        products: Sequence[Product],
        vectors: np.ndarray,
        versions: Sequence[str],
    ) -> int:
        products, vectors, versions = prepare_batch(products, vectors, versions, self.dim)
        delete_ids = list(dict.fromkeys(delete_ids))
        if not products and not delete_ids:
            return 0
        with self._write_lock:
            deleted, marker, emptied = self._pool.run(
                lambda conn: self._write(conn, delete_ids, products, vectors, versions)
            )
            with self._refresh_lock:
                if emptied:  # another width's tables, emptied for this change: all they hold
                    self._memory = MemoryStore(self.dim)
                # Nothing else happened in between: apply our own change without reading it back.
                if emptied or self._marker == Marker(marker.epoch, marker.generation - 1):
                    self._memory.apply(delete_ids, products, vectors, versions)
                    self._marker = marker
        return deleted

    def _write(self, conn, delete_ids, products, vectors, versions) -> tuple[int, Marker, bool]:
        """Write one change; the rows deleted, the new marker, whether the tables were emptied."""
        with transaction(conn) as cursor:
            cursor.execute(
                f"SELECT name, value FROM {META} WHERE name IN "
                "('generation', 'epoch', 'purged_through', 'dim') FOR UPDATE"
            )
            meta = dict(cursor.fetchall())
            emptied = int(meta["dim"]) != self.dim
            if emptied:
                meta["epoch"] = reset_for_width(cursor, int(meta["dim"]), self.dim)
            generation = int(meta["generation"]) + 1
            if len(delete_ids) + len(products) >= 1 << POSITION_BITS:
                raise ValueError(f"at most {(1 << POSITION_BITS) - 1:,} rows in one change")
            base = generation << POSITION_BITS
            deleted = 0
            for start in range(0, len(delete_ids), CHUNK):  # tombstones, numbered like rows
                keys = [id_hash(pid) for pid in delete_ids[start : start + CHUNK]]
                marks = ", ".join(["%s"] * len(keys))
                deleted += cursor.execute(
                    f"UPDATE {TABLE} SET embedding = NULL, deleted_at = NOW(), "
                    f"stamp = %s + FIELD(id_hash, {marks}) WHERE id_hash IN ({marks}) "
                    "AND embedding IS NOT NULL",
                    [base + start - 1, *keys, *keys],
                )
            first = len(delete_ids)
            for start in range(0, len(products), CHUNK):
                rows = self._values(products, vectors, versions, start, base + first)
                cursor.executemany(UPSERT, rows)
            self._purge_tombstones(cursor, int(meta["purged_through"]))
            set_meta(cursor, generation=generation)
        return deleted, Marker(meta["epoch"], generation), emptied

    def _values(self, products, vectors, versions, start, first_stamp) -> list[tuple]:
        """The rows of products[start : start + CHUNK], stamped in order from first_stamp."""
        rows = []
        for i in range(start, min(start + CHUNK, len(products))):
            p = products[i]
            vector = vectors[i].tobytes()
            rows.append(
                (
                    id_hash(p.id),
                    p.id,
                    p.name,
                    p.category,
                    p.price,
                    p.image_url,
                    versions[i],
                    self.model,
                    vector,
                    first_stamp + i,
                )
            )
        return rows

    @staticmethod
    def _purge_tombstones(cursor, purged_through: int) -> None:
        """Drop tombstones older than TOMBSTONE_DAYS; a process further behind reloads all."""
        old = f"deleted_at < NOW() - INTERVAL {TOMBSTONE_DAYS} DAY"
        cursor.execute(f"SELECT MAX(stamp) FROM {TABLE} WHERE {old}")
        newest = cursor.fetchone()[0]
        if newest is not None:
            cursor.execute(f"DELETE FROM {TABLE} WHERE {old} AND stamp <= %s", [newest])
            generation = newest >> POSITION_BITS
            set_meta(cursor, purged_through=max(generation, purged_through))

    def close(self) -> None:
        self._pool.close()


def _read_marker(conn: Connection) -> Marker:
    with conn.cursor() as cursor:
        cursor.execute(f"SELECT name, value FROM {META} WHERE name IN ('epoch', 'generation')")
        meta = dict(cursor.fetchall())
    return Marker(meta["epoch"], int(meta["generation"]))
