"""Child process for the start-up and memory benchmarks: `python -m bench.probe MODE ...`.

Prints one JSON line of time.monotonic() stamps (system-wide on Linux, so the parent can
subtract the moment it started this process) and the process's peak memory.

    index  CATALOG INDEX          catalog + index.csv loaded and a first search answered, no model
    worker CATALOG INDEX IMAGE    a serving worker's start (model, index, warm-up), then one
                                  image search; the worker's peak RSS
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def index_only(catalog_path: Path, index_path: Path) -> dict:
    from backend.catalog import load_catalog
    from backend.index.index_file import read_index
    from backend.stores.base import exact_top_k

    stamps = {"imported": time.monotonic()}
    load_catalog(catalog_path)
    stamps["catalog"] = time.monotonic()
    table = read_index(index_path)
    stamps["index"] = time.monotonic()
    exact_top_k(table.vectors, None, table.vectors[0], 12)
    stamps["ready"] = time.monotonic()
    return {"stamps": stamps, "rows": len(table)}


def worker(catalog_path: Path, index_path: Path, image: Path) -> dict:
    from backend import create_app
    from backend.boot import load_worker
    from backend.extensions import get_service

    app = create_app(
        {"catalog_path": catalog_path, "index_path": index_path, "model_weights": "random"}
    )
    stamps = {"imported": time.monotonic()}
    service = get_service(app)
    rss = {"app_mb": memory()["rss_mb"]}
    service.embedder  # noqa: B018 - load the model alone first, to time it apart
    stamps["model"] = time.monotonic()
    rss["model_mb"] = memory()["rss_mb"]
    load_worker(app)
    stamps["ready"] = time.monotonic()
    rss["ready_mb"] = memory()["rss_mb"]
    result = service.search_bytes(image.read_bytes(), k=12)
    stamps["searched"] = time.monotonic()
    import torch

    return {
        "stamps": stamps,
        "rows": service.indexed_count(),
        "hits": len(result.hits),
        "torch": f"{torch.__version__} (CUDA {torch.version.cuda})"
        if torch.version.cuda
        else f"{torch.__version__} (CPU only)",
        **rss,
        **memory(),
    }


def memory() -> dict:
    """Peak and current resident memory of this process, in MB (Linux /proc)."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmHWM", "VmRSS"):
            fields[name] = int(value.split()[0]) / 1024
    return {"peak_rss_mb": fields.get("VmHWM"), "rss_mb": fields.get("VmRSS")}


def main(argv: list[str]) -> int:
    mode, *paths = argv
    if mode == "index":
        result = index_only(Path(paths[0]), Path(paths[1]))
    elif mode == "worker":
        result = worker(Path(paths[0]), Path(paths[1]), Path(paths[2]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
