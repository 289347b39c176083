"""`python -m bench.calibrate`: fit the served model's match calibration on shopper photos.

The catalog is the benchmark's grocery catalogue photos (one studio photo per product, the
demo's catalog); the queries are the same products' in-store phone photos, less the demo's
example photos (backend/data/examples.csv) and the test photos (tests/data/instore.csv). Each
query goes through the served search (`SearchService.search_path`, threshold off, k=12), so the
scores are those a shopper's photo gets. Only these MIT-licensed grocery photos are used, never
the fashion photos. The fit is checked on folds over products (a product's photos are never in
both the fit and the check), the reliability table is printed, and the file fitted on every
product is written next to the model's spec (backend/model/calibrations/<model>.json).

Run it again whenever the scores change (another model, other weights, another way of scoring):
    python -m bench.calibrate [--model efficientnet_lite0] [--folds 5] [--seed 0]
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


def search_all(bench: Path, model: str, folder: Path) -> tuple[fit.Searches, str, dict[str, int]]:
    """Search the catalogue photos with every in-store photo through the served search."""
    from backend.search import SearchService

    catalog_rows, queries = grocery_split(bench)
    catalog_csv = write_products(folder / "products.csv", catalog_rows)
    settings = bench_settings(folder, catalog_csv, bench, model=model)
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
            log.info("searched %d/%d photos (%.0f s)", row + 1, len(queries),
                     time.perf_counter() - started)  # fmt: skip
    counts = {"catalog": len(catalog_rows), "queries": len(queries)}
    return fit.Searches(scores, right, products.astype(str)), service.embedder.identity, counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--bench", type=Path, default=DEFAULT_BENCH_CATALOG)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="where to write the file (default: shipped)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with tempfile.TemporaryDirectory() as tmp:
        searches, identity, counts = search_all(args.bench, args.model, Path(tmp))
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
