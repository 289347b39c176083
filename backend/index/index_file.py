"""index.csv: the embedding cache of record, read fast and replaced atomically.

One row per product: id, image source, a cheap file signature (size:mtime, so unchanged files
need no read), the SHA-256 of the image content, the model identity, and the embedding as
base64 of little-endian float16. float16 halves the file (50k rows ~ 70 MB instead of 140 MB)
and keeps cosine similarity within 1e-5 of float32; vectors are float32 again in memory.

Before the header, one line `#{json}` says which catalog the index was built from and which of
its images failed and why, so that another catalog's index is never loaded as this one's and a
server that only loads the file can still tell the owner what failed.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import collections
import csv
import functools
import io
import itertools
import json
import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..atomic import atomic_writer

log = logging.getLogger(__name__)

COLUMNS = ["id", "source", "signature", "fingerprint", "model", "vector"]
STORED_DTYPE = np.dtype("<f2")
# Failure reasons kept in the meta line (the first 100, in at most 32 KB); the rest are counted.
MAX_FAILURES_KEPT = 100
FAILURES_BUDGET_CHARS = 32 * 1024
MAX_REASON_CHARS = 300
MAX_META_BYTES = 2 * FAILURES_BUDGET_CHARS
# How far from 1 a stored vector's length may be: float16 storage rounds it by about 1e-3;
# anything further is damage (a flipped bit, a row overwritten), never a model's output.
UNIT_TOLERANCE = 0.01
DAMAGED_ROW = "its row of index.csv is damaged (left out); `flask index` embeds it again"


@dataclass(frozen=True)
class IndexMeta:
    """What index.csv says about itself: its catalog, and the images that could not be indexed."""

    catalog: str | None = None  # see `catalog_reference`; None in files written before it
    failed: dict[str, str] = field(default_factory=dict)  # product id -> reason (the first 100)
    failed_total: int = 0

    @classmethod
    def of(cls, catalog: str | None, failed: dict[str, str]) -> IndexMeta:
        kept: dict[str, str] = {}
        budget = FAILURES_BUDGET_CHARS
        for product_id, reason in failed.items():
            reason = reason[:MAX_REASON_CHARS]
            budget -= len(json.dumps([product_id, reason]))
            if len(kept) == MAX_FAILURES_KEPT or budget < 0:
                break
            kept[product_id] = reason
        return cls(catalog, kept, len(failed))

    def without_failure(self, product_id: str) -> IndexMeta:
        if product_id not in self.failed:
            return self
        failed = {pid: why for pid, why in self.failed.items() if pid != product_id}
        return replace(self, failed=failed, failed_total=self.failed_total - 1)

    def line(self) -> str:
        body = {"catalog": self.catalog, "failed": self.failed, "failed_total": self.failed_total}
        return "#" + json.dumps(body, ensure_ascii=True, separators=(",", ":")) + "\n"

    @classmethod
    def parse(cls, line: bytes | str) -> IndexMeta:
        if len(line) > MAX_META_BYTES:
            raise ValueError("the meta line is too long")
        body = json.loads(line[1:])
        catalog, failed, total = (
            body.get("catalog"),
            body.get("failed", {}),
            body.get("failed_total", 0),
        )
        if not isinstance(catalog, str | None) or not isinstance(failed, dict):
            raise ValueError("the meta line is malformed")
        if not all(isinstance(v, str) for v in failed.values()) or not isinstance(total, int):
            raise ValueError("the meta line is malformed")
        return cls(catalog, failed, total)


def catalog_reference(catalog_path: Path, index_path: Path) -> str:
    """Name a catalog as its index records it: relative to the index's folder when inside it
    (so the two can move together), else absolute; symlinks resolved."""
    catalog, folder = catalog_path.resolve(), index_path.resolve().parent
    if catalog.is_relative_to(folder):
        return catalog.relative_to(folder).as_posix()
    return os.fspath(catalog)


@dataclass(frozen=True, slots=True)  # slots: 50k rows take ~5 MB less
class Entry:
    id: str
    source: str
    signature: str
    fingerprint: str
    model: str


@dataclass
class IndexTable:
    """Entries and their vectors, row i of `vectors` belonging to `entries[i]`."""

    entries: list[Entry] = field(default_factory=list)
    vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    meta: IndexMeta = field(default_factory=IndexMeta)
    # Rows of the file left out as damaged, and the ids of those whose id could still be read.
    damaged: int = 0
    damaged_ids: frozenset[str] = frozenset()

    def __len__(self) -> int:
        return len(self.entries)

    @classmethod
    def from_rows(
        cls, rows: list[tuple[Entry, np.ndarray]], dim: int, meta: IndexMeta | None = None
    ) -> IndexTable:
        meta = meta or IndexMeta()
        if not rows:
            return cls(vectors=np.zeros((0, dim), dtype=np.float32), meta=meta)
        entries, vectors = zip(*rows, strict=True)
        stacked = np.ascontiguousarray(np.stack(vectors), dtype=np.float32)
        return cls(list(entries), stacked, meta)

    def main_model(self) -> str | None:
        """The model identity most rows were embedded with (None for an empty table)."""
        counts = collections.Counter(entry.model for entry in self.entries)
        return counts.most_common(1)[0][0] if counts else None

    def rows(self) -> list[tuple[Entry, np.ndarray]]:
        return list(zip(self.entries, self.vectors, strict=True))


def read_index(path: Path) -> IndexTable:
    """Load index.csv; a missing file is empty, a foreign one is ignored with a warning.

    Damaged rows (a line torn by a crash, a bad vector, a duplicated id) are left out with a
    warning and the intact ones kept: only the products of the damaged rows are embedded again.
    """
    if not path.is_file():
        return IndexTable()
    try:
        rows = _parse(path)
    except (ValueError, csv.Error, UnicodeDecodeError) as error:
        log.warning("index %s is unreadable (%s); it will be rebuilt", path, error)
        return IndexTable()
    table = rows.table()
    if table.damaged:
        log.warning(
            "index %s: %d damaged row(s) left out; they will be rebuilt", path, table.damaged
        )
    return table


def read_meta(path: Path) -> IndexMeta:
    """Only the meta line of index.csv (its catalog, its failures): no vectors are read."""
    try:
        with path.open("rb") as handle:
            first = handle.readline(MAX_META_BYTES + 1).removeprefix(codecs.BOM_UTF8)
        return IndexMeta.parse(first) if first.startswith(b"#") else IndexMeta()
    except (OSError, ValueError):
        return IndexMeta()


def _parse(path: Path) -> _Rows:
    rows = _Rows()
    with path.open("rb") as handle:
        try:
            _read_plain(handle, rows)
        except _NotPlain:
            handle.seek(0)
            rows = _Rows()
            _read_quoted(handle, rows)
    return rows


class _NotPlain(Exception):
    """The file has quoted fields or stray carriage returns: csv.reader must parse it."""


class _Rows:
    """Entries' fields and decoded vectors, gathered row by row so no copy of the file is kept."""

    def __init__(self) -> None:
        self.heads: list[list[str]] = []
        self.raw = bytearray()
        self.widths: list[int] = []
        self.damaged = 0
        self.meta = IndexMeta()
        self.models: dict[str, str] = {}  # one string per model identity, not one per row

    def header(self, fields: list[str]) -> None:
        if fields != COLUMNS:
            raise ValueError(f"columns {fields} are not {COLUMNS}")

    def add(self, fields: list[str], cell: str | bytes) -> None:
        if len(fields) != len(COLUMNS) - 1:
            self.damaged += 1
            return
        try:
            vector = _b64decode(cell)
        except (binascii.Error, ValueError):
            self.damaged += 1
            return
        fields[4] = self.models.setdefault(fields[4], fields[4])
        self.heads.append(fields)
        self.widths.append(len(vector))
        self.raw += vector

    def table(self) -> IndexTable:
        """The intact rows as a table, saying how many rows were left out as damaged."""
        raw: bytes | bytearray
        heads, raw, damaged = self.heads, self.raw, self.damaged
        lost: set[str] = set()
        if not heads:
            return IndexTable(meta=self.meta, damaged=damaged)
        width = max(set(self.widths), key=self.widths.count)  # that of most rows
        if self.widths.count(width) != len(heads):  # a torn vector: keep the full ones
            keep = [row for row, w in enumerate(self.widths) if w == width]
            lost.update(head[0] for head, w in zip(heads, self.widths, strict=True) if w != width)
            offsets = list(itertools.accumulate(self.widths, initial=0))
            raw = b"".join(raw[offsets[row] : offsets[row + 1]] for row in keep)
            damaged += len(heads) - len(keep)
            heads = [heads[row] for row in keep]
        try:
            vectors, unit = _unit_vectors(raw, len(heads))
        except ValueError:
            lost.update(head[0] for head in heads)
            return IndexTable(
                meta=self.meta, damaged=damaged + len(heads), damaged_ids=frozenset(lost)
            )
        ids = [head[0] for head in heads]
        repeated = {pid for pid, count in collections.Counter(ids).items() if count > 1}
        if repeated:  # which of two rows is right cannot be told: embed that product again
            unit &= np.array([pid not in repeated for pid in ids])
        if not unit.all():
            damaged += int((~unit).sum())
            lost.update(pid for pid, ok in zip(ids, unit, strict=True) if not ok)
            heads = [head for head, ok in zip(heads, unit, strict=True) if ok]
            vectors = np.ascontiguousarray(vectors[unit])
        entries = [Entry(*head) for head in heads]
        return IndexTable(entries, vectors, self.meta, damaged, frozenset(lost))


def _read_plain(handle, rows: _Rows) -> None:
    """Split lines with bytes.split: what csv.reader returns when nothing is quoted.

    write_index never quotes (ids and sources are plain), so this is the path taken at
    start-up; it is several times faster than csv.reader and never decodes the base64 vectors
    to text. The file is read in 4 MB chunks, each checked at once for quotes and for carriage
    returns outside CRLF line ends (csv.reader's territory: they raise _NotPlain).
    """
    lines = (line for line in handle if line.strip(b"\r\n"))  # blank lines skipped
    first = next(lines, b"").removeprefix(codecs.BOM_UTF8)  # a BOM from a spreadsheet program
    if first.startswith(b"#"):
        rows.meta = IndexMeta.parse(first)
        first = next(lines, b"")
    if b'"' in first:
        raise _NotPlain
    rows.header(first.rstrip(b"\r\n").decode("utf-8").split(","))
    carry = b""
    for chunk in iter(functools.partial(handle.read, 1 << 22), b""):
        chunk = carry + chunk
        cut = chunk.rfind(b"\n") + 1  # whole lines now, the rest with the next chunk
        _plain_lines(chunk[:cut], rows)
        carry = chunk[cut:]
    _plain_lines(carry, rows)


def _plain_lines(text: bytes, rows: _Rows) -> None:
    if b'"' in text or text.count(b"\r") != text.count(b"\r\n"):
        raise _NotPlain
    add = rows.add
    for line in text.split(b"\n"):
        head, comma, cell = line.rstrip(b"\r").rpartition(b",")
        if comma:
            try:
                fields = head.decode("utf-8").split(",")
            except UnicodeDecodeError:  # a line torn inside a character
                fields = []
            add(fields, cell)
        elif cell:
            add([], cell)  # a line without a comma: refused for its field count


def _read_quoted(handle, rows: _Rows) -> None:
    with io.TextIOWrapper(handle, encoding="utf-8-sig", newline="") as text:
        first = text.readline()
        if first.startswith("#"):
            rows.meta = IndexMeta.parse(first)
        else:
            text.seek(0)
        reader = csv.reader(text, strict=True)
        records = (record for record in reader if record)
        rows.header(next(records, []))
        try:
            for record in records:
                rows.add(record[:-1], record[-1])
        except (csv.Error, UnicodeDecodeError):
            rows.damaged += 1  # the rest of the file cannot be split into rows: rebuilt


# What base64.b64decode(validate=True) calls, without its per-call wrapper (50k calls at start-up).
_b64decode = functools.partial(binascii.a2b_base64, strict_mode=True)


def decode_vectors(cells: list[str]) -> np.ndarray:
    """base64 cells -> (N, D) float32, renormalised (float16 storage rounds the length)."""
    raw = list(map(_b64decode, cells))
    if any(len(r) != len(raw[0]) for r in raw):
        raise ValueError("vectors have inconsistent lengths")
    vectors, unit = _unit_vectors(b"".join(raw), len(raw))
    if not unit.all():
        raise ValueError("vectors are not finite and of unit length")
    return vectors


def _unit_vectors(raw: bytes | bytearray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n equal-width float16 rows -> (N, D) float32 renormalised (float16 rounds the length),
    and which rows were finite and of unit length (N,) bool."""
    width = len(raw) // n
    if width == 0 or width % STORED_DTYPE.itemsize or width * n != len(raw):
        raise ValueError("vectors have inconsistent lengths")
    vectors = np.frombuffer(raw, dtype=STORED_DTYPE).astype(np.float32)
    vectors = vectors.reshape(n, width // STORED_DTYPE.itemsize)  # (N, D)
    norms = row_norms(vectors)[:, None]  # (N, 1)
    unit = is_unit(norms[:, 0])  # (N,)
    if unit.all():
        vectors /= norms
    else:
        vectors[unit] /= norms[unit]
    return vectors, unit


def row_norms(vectors: np.ndarray) -> np.ndarray:
    """Each row's length, (N, D) -> (N,); non-finite for a row with a non-finite component."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.sqrt(np.einsum("ij,ij->i", vectors, vectors))


def is_unit(norms: np.ndarray) -> np.ndarray:
    """Which lengths (N,) are finite and 1 within UNIT_TOLERANCE: (N,) bool."""
    with np.errstate(invalid="ignore"):
        return np.isfinite(norms) & (np.abs(norms - 1.0) < UNIT_TOLERANCE)


def encode_vector(vector: np.ndarray) -> str:
    return base64.b64encode(vector.astype(STORED_DTYPE).tobytes()).decode("ascii")


def write_index(path: Path, table: IndexTable) -> None:
    """Replace index.csv atomically (a crash leaves the previous complete file)."""
    with atomic_writer(path, "w", encoding="utf-8", newline="") as handle:
        if table.meta != IndexMeta():
            handle.write(table.meta.line())
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for entry, vector in zip(table.entries, table.vectors, strict=True):
            writer.writerow(
                [
                    entry.id,
                    entry.source,
                    entry.signature,
                    entry.fingerprint,
                    entry.model,
                    encode_vector(vector),
                ]
            )


def write_index_row(
    index_path: Path, product_id: str, row: tuple[Entry, np.ndarray] | None
) -> None:
    """Replace one product's row of index.csv (or remove it when row is None), atomically."""
    table = read_index(index_path)
    rows = [(entry, vector) for entry, vector in table.rows() if entry.id != product_id]
    if row is not None:
        rows.append(row)
    dim = row[1].shape[0] if row is not None else table.vectors.shape[1]
    write_index(index_path, IndexTable.from_rows(rows, dim, table.meta.without_failure(product_id)))
