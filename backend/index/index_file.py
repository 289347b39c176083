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
    """Load index.csv; a missing file is empty, a corrupt or foreign one is ignored with a warning."""
    if not path.is_file():
        return IndexTable()
    try:
        return _parse(path)
    except (ValueError, csv.Error, UnicodeDecodeError) as error:
        log.warning("index %s is unreadable (%s); it will be rebuilt", path, error)
        return IndexTable()


def _parse(path: Path) -> IndexTable:
    rows = _Rows(path.stat().st_size)
    with path.open("rb") as handle:
        try:
            _read_plain(handle, rows)
        except _NotPlain:
            handle.seek(0)
            rows = _Rows(path.stat().st_size)
            _read_quoted(handle, rows)
    if not rows.entries:
        return IndexTable()
    if len({entry.id for entry in rows.entries}) != len(rows.entries):
        raise ValueError("duplicate ids")
    return IndexTable(rows.entries, rows.unit_vectors())


class _NotPlain(Exception):
    """The file has quoted fields or stray carriage returns: csv.reader must parse it."""


class _Rows:
    """Entries and vectors, gathered a block of rows at a time straight into one float32 array.

    No copy of the file is kept, nor its float16 vectors: at 50k rows the float32 array
    (100 MB) is the whole peak. It is allocated for as many rows as the file could hold; pages
    past the rows actually read are never touched, so they take no memory.
    """

    def __init__(self, file_size: int) -> None:
        self.file_size = file_size
        self.entries: list[Entry] = []
        self.vectors: np.ndarray | None = None  # (capacity, D) float32
        self.models: dict[str, str] = {}  # one string per model identity, not one per row

    def header(self, fields: list[str]) -> None:
        if fields != COLUMNS:
            raise ValueError(f"columns {fields} are not {COLUMNS}")

    def add(self, heads: list[list[str]], cells: list[bytes] | list[str]) -> None:
        """Rows of the five leading fields and their base64 vector cells."""
        if any(len(fields) != len(COLUMNS) - 1 for fields in heads):
            raise ValueError(f"a row does not have {len(COLUMNS)} fields")
        raw = list(map(_b64decode, cells))
        widths = set(map(len, raw))
        if len(widths) != 1 or not all(width % STORED_DTYPE.itemsize == 0 for width in widths):
            raise ValueError("vectors have inconsistent lengths")
        block = np.frombuffer(b"".join(raw), dtype=STORED_DTYPE).reshape(len(raw), -1)  # (B, D)
        start = len(self.entries)
        self._room(block.shape[1], len(cells[0]), start + len(raw))
        self.vectors[start : start + len(raw)] = block  # float16 -> float32
        models = self.models
        for fields in heads:
            fields[4] = models.setdefault(fields[4], fields[4])
        self.entries.extend(itertools.starmap(Entry, heads))

    def _room(self, dim: int, cell_chars: int, rows: int) -> None:
        if self.vectors is None:
            if dim == 0:
                raise ValueError("vectors are empty")
            # A row is at least its vector cell, five commas and a newline.
            capacity = max(self.file_size // (cell_chars + 6), rows)
            self.vectors = np.empty((capacity, dim), dtype=np.float32)
        if self.vectors.shape[1] != dim:
            raise ValueError("vectors have inconsistent lengths")
        if rows > len(self.vectors):  # only if the estimate was wrong: grow by copying
            grown = np.empty((max(rows, 2 * len(self.vectors)), dim), dtype=np.float32)
            grown[: len(self.entries)] = self.vectors[: len(self.entries)]
            self.vectors = grown

    def unit_vectors(self) -> np.ndarray:
        """(N, D) float32, renormalised (float16 storage rounds the length)."""
        return _normalised(self.vectors[: len(self.entries)])


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
    """One chunk of whole lines: the vector is after the last comma, five fields before it."""
    if b'"' in text:
        raise _NotPlain
    if b"\r" in text:  # CRLF line ends are fine; any other carriage return is csv.reader's
        if text.count(b"\r") != text.count(b"\r\n"):
            raise _NotPlain
        text = text.replace(b"\r\n", b"\n")
    lines = [line for line in text.split(b"\n") if line]
    if not lines:
        return
    parts = [line.rpartition(b",") for line in lines]  # (head, ",", cell) per line
    if not all(comma for _, comma, _ in parts):
        raise ValueError(f"a row does not have {len(COLUMNS)} fields")  # a line without a comma
    heads = b"\n".join([head for head, _, _ in parts]).decode("utf-8").split("\n")
    rows.add([head.split(",") for head in heads], [cell for _, _, cell in parts])


def _read_quoted(handle, rows: _Rows) -> None:
    with io.TextIOWrapper(handle, encoding="utf-8-sig", newline="") as text:
        records = (record for record in csv.reader(text, strict=True) if record)
        rows.header(next(records, []))
        for block in iter(lambda: list(itertools.islice(records, 4096)), []):
            rows.add([record[:-1] for record in block], [record[-1] for record in block])


# What base64.b64decode(validate=True) calls, without its per-call wrapper (50k calls at start-up).
_b64decode = functools.partial(binascii.a2b_base64, strict_mode=True)


def decode_vectors(cells: list[str]) -> np.ndarray:
    """base64 cells -> (N, D) float32, renormalised (float16 storage rounds the length)."""
    raw = list(map(_b64decode, cells))
    if any(len(r) != len(raw[0]) for r in raw):
        raise ValueError("vectors have inconsistent lengths")
    width = len(raw[0]) if raw else 0
    if width == 0 or width % STORED_DTYPE.itemsize:
        raise ValueError("vectors have inconsistent lengths")
    vectors = np.frombuffer(b"".join(raw), dtype=STORED_DTYPE).astype(np.float32)
    return _normalised(vectors.reshape(len(raw), width // STORED_DTYPE.itemsize))  # (N, D)


def _normalised(vectors: np.ndarray) -> np.ndarray:
    """Rescale (N, D) float32 rows to unit length in place, refusing rows that were not unit."""
    # A non-finite component makes its row's squared norm non-finite too: one check covers both.
    norms = np.sqrt(np.einsum("ij,ij->i", vectors, vectors))[:, None]  # (N, 1)
    if not np.isfinite(norms).all():
        raise ValueError("vectors contain non-finite values")
    if not np.all(np.abs(norms - 1.0) < 0.01):
        raise ValueError("vectors are not unit length")
    vectors /= norms
    return vectors


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
