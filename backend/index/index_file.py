"""index.csv: the embedding cache of record, read fast and replaced atomically.

One row per product: id, image source, a cheap file signature (size:mtime, so unchanged files
need no read), the SHA-256 of the image content, the model identity, and the embedding as
base64 of little-endian float16. float16 halves the file (50k rows ~ 70 MB instead of 140 MB)
and keeps cosine similarity within 1e-5 of float32; vectors are float32 again in memory.
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
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..atomic import atomic_writer

log = logging.getLogger(__name__)

COLUMNS = ["id", "source", "signature", "fingerprint", "model", "vector"]
STORED_DTYPE = np.dtype("<f2")


@dataclass(frozen=True)
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

    def __len__(self) -> int:
        return len(self.entries)

    @classmethod
    def from_rows(cls, rows: list[tuple[Entry, np.ndarray]], dim: int) -> IndexTable:
        if not rows:
            return cls(vectors=np.zeros((0, dim), dtype=np.float32))
        entries, vectors = zip(*rows, strict=True)
        return cls(list(entries), np.ascontiguousarray(np.stack(vectors), dtype=np.float32))

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
    table, damaged = rows.table()
    if damaged:
        log.warning("index %s: %d damaged row(s) left out; they will be rebuilt", path, damaged)
    return table


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
        self.heads.append(fields)
        self.widths.append(len(vector))
        self.raw += vector

    def table(self) -> tuple[IndexTable, int]:
        """The intact rows as a table, and how many rows were left out as damaged."""
        heads, raw, damaged = self.heads, self.raw, self.damaged
        if not heads:
            return IndexTable(), damaged
        width = max(set(self.widths), key=self.widths.count)  # that of most rows
        if self.widths.count(width) != len(heads):  # a torn vector: keep the full ones
            keep = [row for row, w in enumerate(self.widths) if w == width]
            offsets = list(itertools.accumulate(self.widths, initial=0))
            raw = b"".join(raw[offsets[row] : offsets[row + 1]] for row in keep)
            damaged += len(heads) - len(keep)
            heads = [heads[row] for row in keep]
        try:
            vectors, unit = _unit_vectors(raw, len(heads))
        except ValueError:
            return IndexTable(), damaged + len(heads)
        ids = [head[0] for head in heads]
        repeated = {pid for pid, count in collections.Counter(ids).items() if count > 1}
        if repeated:  # which of two rows is right cannot be told: embed that product again
            unit &= np.array([pid not in repeated for pid in ids])
        if not unit.all():
            damaged += int((~unit).sum())
            heads = [head for head, ok in zip(heads, unit, strict=True) if ok]
            vectors = np.ascontiguousarray(vectors[unit])
        return IndexTable([Entry(*head) for head in heads], vectors), damaged


def _read_plain(handle, rows: _Rows) -> None:
    """Split lines with bytes.split: what csv.reader returns when nothing is quoted.

    write_index never quotes (ids and sources are plain), so this is the path taken at
    start-up; it is several times faster than csv.reader and never decodes the base64 vectors
    to text. The file is read in 4 MB chunks, each checked at once for quotes and for carriage
    returns outside CRLF line ends (csv.reader's territory: they raise _NotPlain).
    """
    first = next((line for line in handle if line.strip(b"\r\n")), b"")  # blank lines skipped
    first = first.removeprefix(codecs.BOM_UTF8)  # a BOM from a spreadsheet program
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
    # A non-finite component makes its row's squared norm non-finite too: one check covers both.
    norms = np.sqrt(np.einsum("ij,ij->i", vectors, vectors))[:, None]  # (N, 1)
    with np.errstate(invalid="ignore"):
        unit = np.isfinite(norms[:, 0]) & (np.abs(norms[:, 0] - 1.0) < 0.01)  # (N,)
    if unit.all():
        vectors /= norms
    else:
        vectors[unit] /= norms[unit]
    return vectors, unit


def encode_vector(vector: np.ndarray) -> str:
    return base64.b64encode(vector.astype(STORED_DTYPE).tobytes()).decode("ascii")


def write_index(path: Path, table: IndexTable) -> None:
    """Replace index.csv atomically (a crash leaves the previous complete file)."""
    with atomic_writer(path, "w", encoding="utf-8", newline="") as handle:
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
    write_index(index_path, IndexTable.from_rows(rows, dim))
