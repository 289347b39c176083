"""index.csv: the embedding cache of record, read fast and replaced atomically.

One row per product: id, image source, a cheap file signature (size:mtime, so unchanged files
need no read), the SHA-256 of the image content, the model identity, and the embedding as
base64 of little-endian float16. float16 halves the file (50k rows ~ 70 MB instead of 140 MB)
and keeps cosine similarity within 1e-5 of float32; vectors are float32 again in memory.
"""

from __future__ import annotations

import base64
import csv
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

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
    except (ValueError, KeyError, csv.Error, pd.errors.ParserError, UnicodeDecodeError) as error:
        log.warning("index %s is unreadable (%s); it will be rebuilt", path, error)
        return IndexTable()


def _parse(path: Path) -> IndexTable:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False, engine="c")
    if list(frame.columns) != COLUMNS:
        raise ValueError(f"columns {list(frame.columns)} are not {COLUMNS}")
    if frame.empty:
        return IndexTable()
    if frame["id"].duplicated().any():
        raise ValueError("duplicate ids")
    vectors = decode_vectors(frame["vector"].tolist())
    entries = [
        Entry(*values)
        for values in zip(
            frame["id"], frame["source"], frame["signature"], frame["fingerprint"], frame["model"]
        )
    ]
    return IndexTable(entries, vectors)


def decode_vectors(cells: list[str]) -> np.ndarray:
    """base64 cells -> (N, D) float32, renormalised (float16 storage rounds the length)."""
    raw = [base64.b64decode(cell, validate=True) for cell in cells]
    width = len(raw[0])
    if width == 0 or width % STORED_DTYPE.itemsize or any(len(r) != width for r in raw):
        raise ValueError("vectors have inconsistent lengths")
    vectors = np.frombuffer(b"".join(raw), dtype=STORED_DTYPE).astype(np.float32)
    vectors = vectors.reshape(len(raw), width // STORED_DTYPE.itemsize)  # (N, D)
    if not np.isfinite(vectors).all():
        raise ValueError("vectors contain non-finite values")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    if not np.all(np.abs(norms - 1.0) < 0.01):
        raise ValueError("vectors are not unit length")
    return np.ascontiguousarray(vectors / norms)


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
