"""What the shopper adapter costs: search and indexing with and without it, side by side.

The same catalog (the 51 grocery catalogue photos and fashion photos up to --catalog) and the
same phone photos, with MODEL_ADAPTER=none and with the bundled adapter, in interleaved rounds
so both share the machine's load. Search: `SearchService.search_bytes` with the served defaults
(decode, embed, store, bias re-ranking: what POST /api/search runs besides HTTP), per stage.
Indexing: a full sync of the catalog from scratch, products per second.

Usage: python -m bench.shopper_speed [--catalog 300] [--queries 40] [--rounds 2]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from pathlib import Path

from .common import DATA_DIR, DEFAULT_BENCH_CATALOG, bench_settings, read_products, write_products
from .shopper import photos

CHOICES = {"none": "none", "adapter": None}  # None: the bundled adapter (served default)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bench", type=Path, default=DEFAULT_BENCH_CATALOG)
    parser.add_argument("--out", type=Path, default=DATA_DIR / "shopper-speed")
    parser.add_argument("--catalog", type=int, default=300)
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    from backend.search import SearchService

    grocery = photos(args.bench)
    iconic = {p["id"] for p in grocery if p["iconic"]}
    rows = read_products(args.bench / "products.csv")
    grocery_ids = {p["id"] for p in grocery}
    chosen = [r for r in rows if r[0] in iconic]
    chosen += [r for r in rows if r[0] not in grocery_ids][: max(args.catalog - len(chosen), 0)]
    products = write_products(args.out / "products.csv", chosen)
    phone = [p for p in grocery if not p["iconic"]][:: max(1, 1785 // args.queries)]
    queries = [(args.bench / "images" / f"{p['id']}.jpg").read_bytes() for p in phone]
    index_rate = {name: [] for name in CHOICES}
    search_ms = {name: [] for name in CHOICES}
    stages = {name: {} for name in CHOICES}
    for _ in range(args.rounds):
        for name, choice in CHOICES.items():
            folder = args.out / name
            shutil.rmtree(folder, ignore_errors=True)
            settings = bench_settings(
                folder, products, args.bench, model="efficientnet_lite0", model_adapter=choice
            )
            service = SearchService(settings)
            service.embedder  # noqa: B018 - load the model outside the timing
            started = time.perf_counter()
            service.sync()
            index_rate[name].append(len(chosen) / (time.perf_counter() - started))
            service.search_bytes(queries[0])  # warm-up
            for data in queries:
                result = service.search_bytes(data)
                search_ms[name].append(result.took_ms)
                for stage, ms in result.stages_ms.items():
                    stages[name].setdefault(stage, []).append(ms)
            service.close()
    for name in CHOICES:
        parts = ", ".join(f"{s} {statistics.median(v):.2f} ms" for s, v in stages[name].items())
        print(
            f"{name:8s} search p50 {statistics.median(search_ms[name]):.1f} ms ({parts}); "
            f"indexing {statistics.median(index_rate[name]):.1f} products/s"
        )
    ratio = statistics.median(search_ms["adapter"]) / statistics.median(search_ms["none"])
    rate = statistics.median(index_rate["adapter"]) / statistics.median(index_rate["none"])
    print(f"search p50 x{ratio:.2f} (target <= 2), indexing throughput x{rate:.2f} (target >= 0.8)")


if __name__ == "__main__":
    main()
