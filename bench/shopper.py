"""Shopper photos on the benchmark: in-store phone photos searched against catalogue photos.

The catalog: the 51 grocery products' catalogue photos (meta.csv: "iconic catalogue photo"),
optionally with fashion photos as distractors. The queries: their 1,785 in-store phone photos,
each searched through the served pipeline (`SearchService.search_bytes`, served defaults,
efficientnet_lite0), as POST /api/search answers it.

The shopper adapter is learned, so it is judged on products it never saw: the products are
split into folds; for each fold an adapter is trained on the other folds' products (their
phone and catalogue photos) and the fold's phone photos are the queries. The catalog is the
same for every fold (all 51 products), as a shop's would be. The same photos are searched
without an adapter (MODEL_ADAPTER=none) for the baseline.

Reads ../shared/bench in place; writes only under --out (default bench/data/shopper).

Usage: python -m bench.shopper [--folds 5] [--distractors 0] [--limit N] [--cache FILE]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

from .common import DATA_DIR, DEFAULT_BENCH_CATALOG, bench_settings, read_products, write_products

GROCERY = "Grocery Store Dataset"


def photos(bench: Path) -> list[dict]:
    with (bench / "meta.csv").open(encoding="utf-8") as handle:
        return [
            {"id": row["id"], "label": row["label"], "iconic": row["notes"].startswith("iconic")}
            for row in csv.DictReader(handle)
            if row["source_dataset"].startswith(GROCERY)
        ]


def folds(labels: list[str], k: int, seed: int = 0) -> list[set[str]]:
    order = np.random.default_rng(seed).permutation(sorted(set(labels)))
    return [set(order[i::k]) for i in range(k)]


def catalog(bench: Path, folder: Path, grocery: list[dict], distractors: int) -> Path:
    rows = read_products(bench / "products.csv")
    iconic = {p["id"] for p in grocery if p["iconic"]}
    chosen = [row for row in rows if row[0] in iconic]
    fashion = [row for row in rows if row[0] not in {p["id"] for p in grocery}]
    chosen += fashion[:distractors]
    return write_products(folder / "products.csv", chosen)


def base_vectors(bench: Path, grocery: list[dict], cache: Path | None) -> np.ndarray:
    """Served backbone embeddings of every grocery photo (for training the fold adapters)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from train_adapter import embed_photos

    from backend.model import load_embedder

    return embed_photos(
        bench, [p["id"] for p in grocery], cache, load_embedder("efficientnet_lite0")
    )


def run(settings, queries, labels) -> tuple:
    from backend.quality.shopper import evaluate_queries
    from backend.search import SearchService

    service = SearchService(settings)
    try:
        started = time.perf_counter()
        service.sync()
        indexed = time.perf_counter() - started
        started = time.perf_counter()
        result = evaluate_queries(service, queries, labels)
        return result, indexed, (time.perf_counter() - started) / max(len(queries), 1)
    finally:
        service.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bench", type=Path, default=DEFAULT_BENCH_CATALOG)
    parser.add_argument("--out", type=Path, default=DATA_DIR / "shopper")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--distractors", type=int, default=0, help="fashion photos added")
    parser.add_argument("--limit", type=int, default=0, help="phone photos per fold (0: all)")
    parser.add_argument("--cache", type=Path, default=None, help="embeddings cache file")
    args = parser.parse_args()

    from backend.quality.adapter_training import fit_adapter
    from backend.quality.shopper import Query, combine
    from backend.quality.shopper_report import format_shopper, write_shopper_json

    args.out.mkdir(parents=True, exist_ok=True)
    grocery = photos(args.bench)
    products = catalog(args.bench, args.out, grocery, args.distractors)
    labels = {p["id"]: p["label"] for p in grocery if p["iconic"]}
    vectors = base_vectors(args.bench, grocery, args.cache)
    base = dict(model="efficientnet_lite0")
    results = {"none": [], "adapter": []}
    for number, fold in enumerate(folds([p["label"] for p in grocery], args.folds)):
        test = [p for p in grocery if p["label"] in fold and not p["iconic"]]
        test = test[: args.limit] if args.limit else test
        queries = [Query(str(args.bench / "images" / f"{p['id']}.jpg"), p["label"]) for p in test]
        train = np.array([p["label"] not in fold for p in grocery])
        iconic = np.array([p["iconic"] for p in grocery])
        names = np.array([p["label"] for p in grocery])
        from backend.model import load_embedder

        identity = load_embedder("efficientnet_lite0").identity.rsplit("/", 1)[0]
        adapter = fit_adapter(
            vectors[train & ~iconic],
            list(names[train & ~iconic]),
            vectors[train & iconic],
            list(names[train & iconic]),
            identity,
        )
        path = args.out / f"adapter-fold{number}.npz"
        path.write_bytes(adapter.to_bytes())
        for name, choice in (("none", "none"), ("adapter", str(path))):
            folder = args.out / f"{name}-fold{number}"
            settings = bench_settings(folder, products, args.bench, **base, model_adapter=choice)
            result, indexed, per_query = run(settings, queries, labels)
            results[name].append(result)
            print(
                f"fold {number} {name}: {len(queries)} queries, P@1 "
                f"{result.found_at.get(1, 0):.3f}, {per_query * 1000:.0f} ms/query",
                flush=True,
            )
    document = {}
    for name, parts in results.items():
        combined = combine(parts)
        print(f"\n== MODEL_ADAPTER={name}, held-out product folds ==\n{format_shopper(combined)}")
        write_shopper_json(args.out / f"shopper-{name}.json", combined, {"folds": args.folds})
        document[name] = combined.to_dict()
    (args.out / "shopper.json").write_text(json.dumps(document, indent=2))


if __name__ == "__main__":
    main()
