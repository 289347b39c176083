"""Child process for the start-up and memory benchmarks: `python -m bench.probe MODE ...`.

Prints one JSON line of time.monotonic() stamps (system-wide on Linux, so the parent can
subtract the moment it started this process) and the process's peak memory.

    index  CATALOG INDEX                          catalog + index.csv loaded and a first search
                                                  answered, no model
    worker CATALOG INDEX IMAGE MODEL RUNTIME DIR  a serving worker's start (model from DIR,
                                                  index, warm-up), then image searches; the
                                                  worker's peak RSS and whether torch was loaded
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from .common import model_weights

SEARCHES = 5  # image searches after the worker is ready: peak memory is measured after them


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


def worker(
    catalog_path: Path, index_path: Path, image: Path, model: str, runtime: str, model_dir: Path
) -> dict:
    from backend import create_app
    from backend.extensions import get_service
    from backend.serving.boot import load_worker

    app = create_app(
        {
            "catalog_path": catalog_path,
            "index_path": index_path,
            "model": model,
            "model_weights": model_weights(model),
            "model_runtime": runtime,
            "model_dir": model_dir,
        }
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
    data = image.read_bytes()
    for _ in range(SEARCHES):
        result = service.search_bytes(data, k=12)
    stamps["searched"] = time.monotonic()
    return {
        "stamps": stamps,
        "rows": service.indexed_count(),
        "hits": len(result.hits),
        "model": service.embedder.identity,
        "torch": torch_version() if "torch" in sys.modules else None,
        **rss,
        **memory(),
    }


def torch_version() -> str:
    import torch

    cuda = torch.version.cuda
    return f"{torch.__version__} (CUDA {cuda})" if cuda else f"{torch.__version__} (CPU only)"


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
        catalog, index, image, model, runtime, model_dir = paths
        result = worker(Path(catalog), Path(index), Path(image), model, runtime, Path(model_dir))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
