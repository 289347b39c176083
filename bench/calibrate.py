"""`python -m bench.calibrate`: fit the served model's match calibration on shopper photos.

The catalog is the benchmark's grocery catalogue photos (one studio photo per product, the
demo's catalog); the queries are the same products' in-store phone photos, less the demo's
example photos (backend/data/examples.csv) and the test photos (tests/data/instore.csv). Each
query goes through the served search (`SearchService.search_path`, threshold off, k=12), so the
scores are those a shopper's photo gets. With the model's bundled shopper adapter, the products
are cut into folds and each fold's photos are searched with an adapter trained on the other
folds' products: the figure is the chance for products the adapter never saw. Only these MIT-licensed grocery photos are used, never
the fashion photos. The fit is checked on folds over products (a product's photos are never in
both the fit and the check), the reliability table is printed, and the file fitted on every
product is written next to the model's spec (backend/model/calibrations/<model>.json).

Run it again whenever the scores change (another model, other weights, another way of scoring):
    python -m bench.calibrate [--model efficientnet_lite0] [--folds 5] [--seed 0] [--cache FILE]
"""

from __future__ import annotations

import argparse
import csv
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from backend.model import calibration as served
from backend.quality import calibration as fit

from .common import DEFAULT_BENCH_CATALOG, REPO_ROOT, bench_settings, write_products

K = 12
PHOTOS = (
    "Grocery Store Dataset (Klasson, Zhang, Kjellstrom, WACV 2019, MIT License): each "
    "product's iconic catalogue photo as the catalog, its in-store photos as the queries, less "
    "backend/data/examples.csv and tests/data/instore.csv"
)
GROCERY = "grocery/"
CATALOGUE_NOTE = "iconic catalogue photo"
EXCLUDED_LISTS = (REPO_ROOT / "backend/data/examples.csv", REPO_ROOT / "tests/data/instore.csv")

log = logging.getLogger("bench.calibrate")


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def excluded_ids() -> set[str]:
    """The demo's example photos and the test photos: never fitted on."""
    return {row["id"] for path in EXCLUDED_LISTS for row in read_rows(path)}


def grocery_split(bench: Path) -> tuple[list[list[str]], list[tuple[str, str]]]:
    """The catalogue photos as catalog rows, and the in-store photos as (path, product id)."""
    products = {row["id"]: row for row in read_rows(bench / "products.csv")}
    catalog, stores = [], []
    for row in read_rows(bench / "meta.csv"):
        if not row["label"].startswith(GROCERY):
            continue
        if row["notes"] == CATALOGUE_NOTE:
            catalog.append(row)
        else:
            stores.append(row)
    product_of_label = {row["label"]: row["id"] for row in catalog}
    catalog_rows = [
        [p["id"], p["name"], p["category"], p["price"], p["image_url"]]
        for p in (products[row["id"]] for row in catalog)
    ]
    skip = excluded_ids()
    queries = [
        (str(bench / products[row["id"]]["image_url"]), product_of_label[row["label"]])
        for row in stores
        if row["id"] not in skip
    ]
    return catalog_rows, queries


def search_all(
    bench: Path, model: str, folder: Path, folds: int, seed: int, cache: Path | None
) -> tuple[fit.Searches, str, dict[str, int]]:
    """Search the catalogue photos with every in-store photo through the served search.

    With the model's bundled shopper adapter, each photo is searched with an adapter trained
    on the other folds' products (as in `python -m bench.shopper`): the chances are those of a
    product the adapter never saw, not of the products it was fitted on."""
    from backend.model import bundled_adapter

    catalog_rows, queries = grocery_split(bench)
    catalog_csv = write_products(folder / "products.csv", catalog_rows)
    served = bench_settings(folder / "served", catalog_csv, bench, model=model)
    identity = _identity(served)
    if bundled_adapter(model) is None:
        searches = _search(served, queries)
        return searches, identity, {"catalog": len(catalog_rows), "queries": len(queries)}
    parts = []
    for number, (adapter, fold_queries) in enumerate(
        _fold_adapters(bench, folder, queries, folds, seed, cache)
    ):
        settings = bench_settings(
            folder / f"fold{number}", catalog_csv, bench, model=model, model_adapter=adapter
        )
        parts.append(_search(settings, fold_queries))
    searches = fit.Searches(
        np.concatenate([p.scores for p in parts]),
        np.concatenate([p.right for p in parts]),
        np.concatenate([p.products for p in parts]),
    )
    counts = {"catalog": len(catalog_rows), "queries": len(searches.products)}
    return searches, identity, counts | {"adapter_folds": folds}


def _identity(settings) -> str:
    from backend.search import SearchService

    return SearchService(settings).embedder.identity


def _fold_adapters(bench, folder, queries, folds, seed, cache):
    """(adapter file, the fold's queries) for folds over products: each adapter is trained on
    the other folds' products (their phone and catalogue photos, less the excluded photos)."""
    from backend.model import load_embedder
    from backend.quality.adapter_training import fit_adapter

    from .shopper import base_vectors, photos

    grocery = [p for p in photos(bench) if p["iconic"] or p["id"] not in excluded_ids()]
    vectors = base_vectors(bench, grocery, cache)
    labels = np.array([p["label"] for p in grocery])
    iconic = np.array([p["iconic"] for p in grocery])
    product_of = {p["label"]: p["id"] for p in grocery if p["iconic"]}
    base = load_embedder("efficientnet_lite0").identity.rsplit("/", 1)[0]
    order = np.random.default_rng(seed).permutation(sorted(product_of))
    for number in range(folds):
        held_out = {product_of[label] for label in order[number::folds]}
        train = np.array([product_of[label] not in held_out for label in labels])
        adapter = fit_adapter(
            vectors[train & ~iconic],
            list(labels[train & ~iconic]),
            vectors[train & iconic],
            list(labels[train & iconic]),
            base,
        )
        path = folder / f"adapter-fold{number}.npz"
        path.write_bytes(adapter.to_bytes())
        yield str(path), [(image, pid) for image, pid in queries if pid in held_out]


def _search(settings, queries: list[tuple[str, str]]) -> fit.Searches:
    from backend.search import SearchService

    service = SearchService(settings)
    service.sync()
    options = service.options(k=K, threshold=0.0)
    scores = np.full((len(queries), K), -np.inf)
    right = np.zeros((len(queries), K), dtype=bool)
    products = np.empty(len(queries), dtype=object)
    started = time.perf_counter()
    for row, (path, product_id) in enumerate(queries):
        hits = service.search_path(Path(path), options).hits
        scores[row, : len(hits)] = [hit.similarity for hit in hits]
        right[row, : len(hits)] = [hit.product.id == product_id for hit in hits]
        products[row] = product_id
        if (row + 1) % 200 == 0:
            log.info(
                "searched %d/%d photos (%.0f s)",
                row + 1,
                len(queries),
                time.perf_counter() - started,
            )
    service.close()
    return fit.Searches(scores, right, products.astype(str))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--bench", type=Path, default=DEFAULT_BENCH_CATALOG)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="where to write the file (default: shipped)")
    parser.add_argument("--cache", type=Path, help="backbone embeddings cache (adapter folds)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with tempfile.TemporaryDirectory() as tmp:
        searches, identity, counts = search_all(
            args.bench, args.model, Path(tmp), args.folds, args.seed, args.cache
        )
    check = fit.cross_validate(searches, args.folds, args.seed)
    print(fit.format_reliability(check.bands))
    provenance = {
        "fitted_by": "python -m bench.calibrate",
        "photos": PHOTOS,
        "k": K,
        **counts,
        "folds": args.folds,
        "seed": args.seed,
        "held_out_worst_gap": round(max((b.gap for b in check.bands if b.checked), default=0), 4),
    }
    calibration = fit.fit_calibration(searches, identity, provenance)
    print(fit.format_threshold(searches, calibration))
    out = args.out or served.calibration_path(args.model)
    served.write_calibration(calibration, out)
    print(f"wrote {out.relative_to(REPO_ROOT) if out.is_relative_to(REPO_ROOT) else out}")
    return 0 if check.within(fit.TOLERANCE) else 1


if __name__ == "__main__":
    sys.exit(main())
