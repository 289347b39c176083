#!/usr/bin/env python3
"""Train the shopper adapter shipped for efficientnet_lite0 (backend/model/adapters/).

Data: the benchmark catalog's Grocery Store Dataset photos only (MIT License, Copyright (c) 2019
Marcus Klasson; see NOTICE): for each of its 51 products the catalogue ("iconic") photo and the
in-store phone photos, except the demo's shopper photos (backend/data/examples.csv) and the
in-store test photos (tests/data/instore.csv), so the demo's figures are measured on photos the
adapter never saw. The fashion photos are never used (their licence is not verified).

Embeddings are computed as the served index computes them (decode, preprocess, ONNX Runtime);
`--cache FILE` keeps them between runs. Deterministic for a seed.

Usage: python3 scripts/train_adapter.py [--bench ../shared/bench] [--out PATH] [--cache FILE]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backend.images.decode import decode_image  # noqa: E402
from backend.model import BUNDLED_ADAPTERS, load_embedder  # noqa: E402
from backend.model.specs import LITE0  # noqa: E402
from backend.quality.adapter_training import AdapterOptions, fit_adapter  # noqa: E402

GROCERY = "Grocery Store Dataset"
HELD_OUT_LISTS = (
    ROOT / "backend" / "data" / "examples.csv",
    ROOT / "tests" / "data" / "instore.csv",
)


def grocery_photos(bench: Path) -> list[dict]:
    """The grocery rows of meta.csv: id, label and whether it is the catalogue photo."""
    with (bench / "meta.csv").open(encoding="utf-8") as handle:
        return [
            {"id": row["id"], "label": row["label"], "iconic": row["notes"].startswith("iconic")}
            for row in csv.DictReader(handle)
            if row["source_dataset"].startswith(GROCERY)
        ]


def held_out_ids() -> set[str]:
    ids = set()
    for path in HELD_OUT_LISTS:
        with path.open(encoding="utf-8") as handle:
            ids |= {row["id"] for row in csv.DictReader(handle)}
    return ids


def embed_photos(bench: Path, ids: list[str], cache: Path | None, embedder) -> np.ndarray:
    """(N, D) served embeddings of the benchmark photos `ids`, from `cache` when it holds them."""
    if cache is not None and cache.is_file():
        with np.load(cache) as stored:
            if str(stored["identity"]) == embedder.identity and list(stored["ids"]) == ids:
                return stored["vectors"]
    batches = []
    for start in range(0, len(ids), 32):
        arrays = [
            embedder.preprocess(
                decode_image(
                    (bench / "images" / f"{i}.jpg").read_bytes(), min_size=embedder.min_decode_size
                )
            )
            for i in ids[start : start + 32]
        ]
        batches.append(embedder.embed_arrays(arrays))
        print(f"embedded {start + len(arrays)}/{len(ids)}", file=sys.stderr)
    vectors = np.concatenate(batches)
    if cache is not None:
        np.savez(cache, ids=np.array(ids), vectors=vectors, identity=np.array(embedder.identity))
    return vectors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bench", type=Path, default=ROOT.parent / "shared" / "bench")
    parser.add_argument("--out", type=Path, default=BUNDLED_ADAPTERS[LITE0])
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    embedder = load_embedder(LITE0, runtime="onnx")
    excluded = held_out_ids()
    photos = [p for p in grocery_photos(args.bench) if p["id"] not in excluded]
    vectors = embed_photos(args.bench, [p["id"] for p in photos], args.cache, embedder)
    iconic = np.array([p["iconic"] for p in photos])
    labels = [p["label"] for p in photos]
    options = AdapterOptions(seed=args.seed)
    names = np.array(labels)
    adapter = fit_adapter(
        vectors[~iconic],
        list(names[~iconic]),
        vectors[iconic],
        list(names[iconic]),
        embedder.identity.rsplit("/", 1)[0],
        options,
    )
    info = {
        "data": "Grocery Store Dataset (Klasson et al. 2019, MIT License): benchmark grocery photos",
        "products": len(set(labels)),
        "phone_photos": int((~iconic).sum()),
        "catalogue_photos": int(iconic.sum()),
        "excluded": "backend/data/examples.csv and tests/data/instore.csv photos",
        "options": options.__dict__,
        "trained_on": embedder.identity,
    }
    data = type(adapter)(**{**adapter.__dict__, "info": info}).to_bytes()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(data)
    print(json.dumps({"out": str(args.out), "bytes": len(data), **info}, indent=2))


if __name__ == "__main__":
    main()
