"""index.csv: the embedding cache of record, read fast and replaced atomically.

One row per product: id, image source, a cheap file signature (size:mtime, so unchanged files
need no read), the SHA-256 of the image content, the model identity, and the embedding as
base64 of little-endian float16. float16 halves the file (50k rows ~ 70 MB instead of 140 MB)
and keeps cosine similarity within 1e-5 of float32; vectors are float32 again in memory.
"""

from __future__ import annotations

import base64
import codecs
import csv
import functools
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .atomic import atomic_writer

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
        entries, vectors = zip(*rows)
        return cls(list(entries), np.ascontiguousarray(np.stack(vectors), dtype=np.float32))

    def rows(self) -> list[tuple[Entry, np.ndarray]]:
        return list(zip(self.entries, self.vectors))


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
    records = _records(path.read_bytes())
    if not records or records[0] != COLUMNS:
        raise ValueError(f"columns {records[0] if records else []} are not {COLUMNS}")
    body = records[1:]
    if not body:
        return IndexTable()
    if any(len(record) != len(COLUMNS) for record in body):
        raise ValueError(f"a row does not have {len(COLUMNS)} fields")
    if len({record[0] for record in body}) != len(body):
        raise ValueError("duplicate ids")
    vectors = decode_vectors([record[5] for record in body])
    entries = [Entry(*record[:5]) for record in body]
    return IndexTable(entries, vectors)


def _records(data: bytes) -> list[list]:
    """Split index.csv into records (blank lines skipped); the last field may stay bytes.

    What write_index produces has no quotes and one kind of line end, so a plain split gives
    exactly what csv.reader would, at a fraction of the cost (and the base64 vectors are never
    decoded to text). Anything else (quoted fields, mixed line ends) goes through csv.reader.
    """
    data = data.removeprefix(codecs.BOM_UTF8)  # added by spreadsheet programs
    crlf = data.count(b"\r\n")
    if b'"' in data or data.count(b"\r") != crlf or (crlf and data.count(b"\n") != crlf):
        text = io.StringIO(data.decode("utf-8"), newline="")
        return [record for record in csv.reader(text, strict=True) if record]
    lines = [line for line in data.split(b"\r\n" if crlf else b"\n") if line]
    if not lines:
        return []
    records: list[list] = [lines[0].decode("utf-8").split(",")]
    for line in lines[1:]:
        head, comma, last = line.rpartition(b",")
        records.append([*head.decode("utf-8").split(","), last] if comma else [last])
    return records


_b64decode = functools.partial(base64.b64decode, validate=True)


def decode_vectors(cells: list[str]) -> np.ndarray:
    """base64 cells -> (N, D) float32, renormalised (float16 storage rounds the length)."""
    raw = list(map(_b64decode, cells))
    width = len(raw[0])
    if width == 0 or width % STORED_DTYPE.itemsize or any(len(r) != width for r in raw):
        raise ValueError("vectors have inconsistent lengths")
    vectors = np.frombuffer(b"".join(raw), dtype=STORED_DTYPE).astype(np.float32)
    vectors = vectors.reshape(len(raw), width // STORED_DTYPE.itemsize)  # (N, D)
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
        for entry, vector in zip(table.entries, table.vectors):
            writer.writerow(
                [entry.id, entry.source, entry.signature, entry.fingerprint, entry.model,
                 encode_vector(vector)]
            )
