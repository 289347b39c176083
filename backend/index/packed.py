"""The catalog and index.csv as a server loads them, packed into one file for a fast start.

A sync writes `index.csv.packed` beside index.csv: the parsed catalog (products, skipped rows,
CSV format), the index rows with their float32 vectors, and the identity (device, inode, size,
modification and change times) of the products.csv and index.csv it was made from. A server
worker that finds both files unchanged reads the pack instead of parsing them, and maps its
vectors straight into memory: no parsing, no copy, and the pages are shared by every worker.
Any mismatch or damage sends the worker back to parsing the CSV files, so the pack is only
ever a shortcut, never a second record. Its vectors are checked as they are mapped, in one
vectorised pass: each row finite and of unit length, and equal to the check the sync recorded
for it (its dot product with a fixed +-1 vector), so a row overwritten or moved in place is
refused too.

Layout: a magic line, the header's length, the header (JSON), the text columns (UTF-8, values
joined by the unit separator, which no catalog field or index cell may hold), padding, then the
vectors as little-endian float32, row after row, at an offset aligned for numpy, then each row's
check (float32).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..atomic import atomic_writer
from ..catalog import Catalog, Product
from ..catalog.csv_format import CsvFormat
from ..catalog.products import SkippedRow
from .index_file import STORED_DTYPE, Entry, IndexMeta, IndexTable, is_unit, row_norms

log = logging.getLogger(__name__)

MAGIC = b"similarity-search packed index 2\n"
SEPARATOR = "\x1f"
ALIGN = 64  # bytes: where the vectors start
VECTOR_DTYPE = np.dtype("<f4")
PRODUCT_COLUMNS = ("id", "name", "category", "image_url")
ENTRY_COLUMNS = ("id", "source", "signature", "fingerprint", "model")
MAX_HEADER_BYTES = 64 << 20  # the skipped rows and prices of a large catalog
BLOCK_ROWS = 4096  # vectors rounded and written this many rows at a time
# What reading a damaged or foreign pack raises: it is then not used, never an error.
DAMAGED = (OSError, ValueError, KeyError, TypeError)
# How far a row's check may be from the recorded one: float32 sums in another order differ by
# about 1e-5; a row of another product by about its distance to it (0.1 and more).
CHECK_TOLERANCE = 1e-3
CHECK_ROWS = 256  # vectors checked this many rows at a time (about 1 MB: in the cache)


class BadVectors(ValueError):
    """The pack's vectors are not what the sync wrote: not finite, not unit, moved."""


class Packed(NamedTuple):
    catalog: Catalog
    table: IndexTable
    # (how they were computed, one per row) as the caller of write_packed gave them, or None.
    row_versions: tuple[str, list[str]] | None


def packed_path(index_path: Path) -> Path:
    return index_path.with_name(index_path.name + ".packed")


def file_stamp(path: Path) -> list[int] | None:
    """What changes whenever a file is written or replaced: device, inode, size, times."""
    try:
        info = path.stat()
    except OSError:
        return None
    return [info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns]


def sources_stamp(catalog_path: Path, index_path: Path, image_base: str | None) -> dict:
    """The identity of the files a pack stands for."""
    return {
        "catalog": file_stamp(catalog_path),
        "index": file_stamp(index_path),
        "image_base": image_base,
    }


def is_current(index_path: Path, catalog_path: Path, image_base: str | None = None) -> bool:
    """Whether the pack was made from the files there now, its vectors intact."""
    sources = sources_stamp(catalog_path, index_path, image_base)
    return _intact(packed_path(index_path), sources)


def write_packed(
    index_path: Path,
    catalog: Catalog,
    table: IndexTable,
    image_base: str | None = None,
    row_versions: tuple[str, list[str]] | None = None,
) -> bool:
    """Pack `catalog` and `table`, which must be what the files on disk hold now.

    `row_versions`: (a name for how they were computed, one string per table row), kept for the
    reader (the vector store's versions of the rows). Call it under the edit lock, after
    index.csv is written. Returns False, writing nothing, when the pack is current already or a
    value holds the separator.
    """
    sources = sources_stamp(catalog.path, index_path, image_base)
    if sources["catalog"] is None or sources["index"] is None:
        return False
    path = packed_path(index_path)
    if _intact(path, sources):
        return False  # made from these very files already
    products = list(catalog.products.values())
    columns = {f"product_{name}": [getattr(p, name) for p in products] for name in PRODUCT_COLUMNS}
    columns |= {
        f"entry_{name}": [getattr(e, name) for e in table.entries] for name in ENTRY_COLUMNS
    }
    if row_versions is not None:
        columns["entry_version"] = row_versions[1]
    try:
        blocks = {name: _joined(values) for name, values in columns.items()}
    except ValueError:
        return False
    vectors = table.vectors  # (N, D)
    header = {
        "sources": sources,
        "csv_format": dataclasses.asdict(catalog.csv_format),
        "skipped": [[row.row, row.reason] for row in catalog.skipped],
        "prices": [p.price for p in products],
        "meta": table.meta.line(),
        "row_versions": None if row_versions is None else row_versions[0],
        "columns": {name: len(block) for name, block in blocks.items()},
        "shape": [len(table.entries), vectors.shape[1] if vectors.ndim == 2 else 0],
    }
    text = json.dumps(header, separators=(",", ":")).encode()
    start = len(MAGIC) + 17 + len(text)  # 16 digits and a newline give the header's length
    columns_end = start + sum(map(len, blocks.values()))
    padding = -columns_end % ALIGN
    with atomic_writer(path, "wb") as handle:
        handle.write(MAGIC + f"{len(text):016d}\n".encode() + text)
        for block in blocks.values():
            handle.write(block)
        handle.write(b"\0" * padding)
        checks = []
        for start in range(0, len(vectors), BLOCK_ROWS):
            rows = as_stored(vectors[start : start + BLOCK_ROWS])  # (B, D)
            handle.write(rows.tobytes())
            checks.append(rows @ _probe(rows.shape[1]))  # (B,)
        if checks:
            handle.write(np.concatenate(checks).astype(VECTOR_DTYPE).tobytes())
    return True


def _probe(dim: int) -> np.ndarray:
    """A fixed +-1 vector (D,) from integer arithmetic alone: the same on every machine."""
    bits = (np.arange(dim, dtype=np.uint64) * np.uint64(2654435761) >> np.uint64(13)) & np.uint64(1)
    return np.where(bits == 1, 1.0, -1.0).astype(VECTOR_DTYPE)


def check_vectors(vectors: np.ndarray, expected: np.ndarray, ids: list[str]) -> None:
    """Raise BadVectors naming the first bad row: not finite, not unit, or not the row the
    sync wrote there (`expected`: the checks it recorded, (N,)). One pass over (N, D), in
    blocks small enough that the second look at a block finds it in the cache."""
    probe = _probe(vectors.shape[1]) if len(vectors) else None
    for start in range(0, len(vectors), CHECK_ROWS):
        block = vectors[start : start + CHECK_ROWS]  # (B, D)
        unit = is_unit(row_norms(block))  # (B,)
        with np.errstate(invalid="ignore", over="ignore"):
            moved = ~(
                np.abs(block @ probe - expected[start : start + len(block)]) <= CHECK_TOLERANCE
            )
        for bad, what in (
            (~unit, "is not finite or not of unit length"),
            (moved, "is not the vector the sync wrote there (moved or overwritten)"),
        ):
            if bad.any():
                row = start + int(np.argmax(bad))
                raise BadVectors(f"the vector of row {row + 1} (product {ids[row]!r}) {what}")


def as_stored(vectors: np.ndarray) -> np.ndarray:
    """What index.csv gives back for these rows: float16, then float32 renormalised; (B, D)."""
    rounded = np.asarray(vectors).astype(STORED_DTYPE).astype(VECTOR_DTYPE)
    norms = np.sqrt(np.einsum("ij,ij->i", rounded, rounded))[:, None]  # (B, 1)
    rounded /= norms
    return rounded


def _joined(values: list[str]) -> bytes:
    text = SEPARATOR.join(values)
    if text.count(SEPARATOR) != max(len(values) - 1, 0):
        raise ValueError("a value holds the separator")
    return text.encode("utf-8")


def read_packed(
    index_path: Path, catalog_path: Path, image_base: str | None = None
) -> Packed | None:
    """The catalog and table packed from these very files, or None (absent, stale, damaged)."""
    path = packed_path(index_path)
    sources = sources_stamp(catalog_path, index_path, image_base)
    try:
        with path.open("rb") as handle:
            header = _header(handle, sources)
            if header is None:
                return None
            columns = _columns(handle, header)
            vectors, checks = _vectors(handle, header)
        check_vectors(vectors, checks, columns["entry_id"])
        catalog = _catalog(catalog_path, header, columns)
        table = _table(header, columns, vectors, catalog)
        scheme = header["row_versions"]
        versions = None if scheme is None else (scheme, columns["entry_version"])
    except BadVectors:
        raise
    except DAMAGED as error:
        log.warning("%s is unreadable (%s); parsing the CSV files instead", path, error)
        return None
    return Packed(catalog, table, versions)


def _intact(path: Path, sources: dict) -> bool:
    """Whether the pack at `path` was made from `sources`, its vectors as the sync wrote them."""
    try:
        with path.open("rb") as handle:
            header = _header(handle, sources)
            if header is None:
                return False
            ids = _columns(handle, header)["entry_id"]
            check_vectors(*_vectors(handle, header), ids)
    except DAMAGED:
        return False
    return True


def _header(handle, sources: dict) -> dict | None:
    """The header if the pack was made from the files `sources` names, else None."""
    if handle.read(len(MAGIC)) != MAGIC:
        return None
    size = int(handle.read(17))
    if not 0 < size <= MAX_HEADER_BYTES:
        raise ValueError(f"header of {size} bytes")
    header = json.loads(handle.read(size))
    return header if header["sources"] == sources else None


def _columns(handle, header: dict) -> dict[str, list[str]]:
    rows, _ = header["shape"]
    counts = {"product": len(header["prices"]), "entry": rows}
    columns = {}
    for name, size in header["columns"].items():
        text = handle.read(size).decode("utf-8")
        values = text.split(SEPARATOR) if text or counts[name.split("_")[0]] == 1 else []
        if len(values) != counts[name.split("_")[0]]:
            raise ValueError(f"column {name} has {len(values)} values")
        columns[name] = values
    return columns


def _vectors(handle, header: dict) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) float32 mapped from the file, read-only, and the rows' checks (N,); a row is never
    copied into the heap."""
    rows, dim = header["shape"]
    offset = handle.tell() + (-handle.tell() % ALIGN)
    if rows == 0:
        return np.zeros((0, dim), dtype=np.float32), np.zeros(0, dtype=np.float32)
    values = rows * dim + rows  # the vectors, then one check per row
    if os.fstat(handle.fileno()).st_size != offset + values * VECTOR_DTYPE.itemsize:
        raise ValueError("the vectors are cut short")
    mapped = np.memmap(handle, dtype=VECTOR_DTYPE, mode="r", offset=offset, shape=(values,))
    flat = mapped.view(np.ndarray)  # a plain array over the same pages
    return flat[: rows * dim].reshape(rows, dim), flat[rows * dim :]


def _catalog(catalog_path: Path, header: dict, columns: dict[str, list[str]]) -> Catalog:
    categories: dict[str, str] = {}  # one string per category, not one per product
    products = map(
        Product,
        columns["product_id"],
        columns["product_name"],
        [categories.setdefault(name, name) for name in columns["product_category"]],
        header["prices"],
        columns["product_image_url"],
    )
    return Catalog(
        path=catalog_path,
        products={product.id: product for product in products},
        skipped=[SkippedRow(row, reason) for row, reason in header["skipped"]],
        csv_format=CsvFormat(**header["csv_format"]),
    )


def _table(
    header: dict, columns: dict[str, list[str]], vectors: np.ndarray, catalog: Catalog
) -> IndexTable:
    # A row's id and source are its product's id and image URL: the same strings, not copies.
    products = [catalog.products.get(pid) for pid in columns["entry_id"]]
    ids = [p.id if p else pid for p, pid in zip(products, columns["entry_id"], strict=True)]
    sources = [
        p.image_url if p and p.image_url == source else source
        for p, source in zip(products, columns["entry_source"], strict=True)
    ]
    models: dict[str, str] = {}
    model_column = [models.setdefault(model, model) for model in columns["entry_model"]]
    entries = list(
        map(
            Entry,
            ids,
            sources,
            columns["entry_signature"],
            columns["entry_fingerprint"],
            model_column,
        )
    )
    return IndexTable(entries, vectors, IndexMeta.parse(header["meta"]))
