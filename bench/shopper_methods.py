"""The scoring methods tried for shopper photos, compared in numpy on cached embeddings.

Every grocery photo of the benchmark is embedded once as the served index embeds it
(efficientnet_lite0, ONNX Runtime); each method is then scored with 5 folds over the 51
products: fitted on 4 folds' products, judged on the 5th fold's phone photos searched against
all 51 catalogue photos (docs/quality.md#shopper-photos). The served pipeline's own figures
come from `python -m bench.shopper`; this script is the fast comparison that chose it.

Usage: python -m bench.shopper_methods [--cache FILE] [--folds 5]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from .common import DEFAULT_BENCH_CATALOG
from .shopper import base_vectors, folds, photos


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)).astype(np.float32)


def item_bias(catalog: np.ndarray, reference: np.ndarray, k: int = 10) -> np.ndarray:
    return np.sort(catalog @ reference.T, axis=1)[:, -k:].mean(1)


def centred(x, train, iconic):
    query_mean, catalog_mean = x[train & ~iconic].mean(0), x[train & iconic].mean(0)
    return unit(x - query_mean), unit(x - catalog_mean)


def whitening(z, labels, dims, regularisation):
    """PCA to `dims` (the input's dimension: no reduction), then within-product whitening."""
    centre = z.mean(0)
    zc = z - centre
    if dims >= z.shape[1]:
        principal = np.eye(z.shape[1])
    else:
        principal = np.linalg.svd(zc, full_matrices=False)[2][:dims].T
    y = zc @ principal
    spread = np.concatenate(
        [y[labels == label] - y[labels == label].mean(0) for label in np.unique(labels)]
    )
    within = spread.T @ spread / len(y)
    within += regularisation * np.trace(within) / len(within) * np.eye(len(within))
    values, vectors = np.linalg.eigh(within)
    return centre, principal @ vectors @ np.diag(values**-0.5) @ vectors.T


def scorer(centring=True, dims=0, csls=False, regularisation=0.1, reference=0):
    """A method: (vectors, train mask, iconic mask, labels) -> (N, catalog) scores."""

    def score(x, train, iconic, labels):
        queries, catalog = centred(x, train, iconic) if centring else (x, x)
        catalog = catalog[iconic]
        if dims:  # 0: no projection
            tc = train[iconic]
            z = np.concatenate([queries[train & ~iconic], catalog[tc]])
            names = np.concatenate([labels[train & ~iconic], labels[iconic][tc]])
            centre, projection = whitening(z, names, dims, regularisation)
            queries, catalog = (
                unit((queries - centre) @ projection),
                unit((catalog - centre) @ projection),
            )
        scores = queries @ catalog.T
        if csls:
            ref = queries[train & ~iconic]
            if reference:
                ref = ref[np.random.default_rng(0).permutation(len(ref))[:reference]]
            scores = 2 * scores - item_bias(catalog, ref)[None]
        return scores

    return score


METHODS = {
    "cosine (served before)": scorer(centring=False),
    "domain centring": scorer(),
    "centring + CSLS": scorer(csls=True),
    "centring + whitening (all 1280 dims) + CSLS": scorer(dims=1280, csls=True),
    "centring + PCA 64 + whitening + CSLS": scorer(dims=64, csls=True),
    "centring + PCA 128 + whitening + CSLS": scorer(dims=128, csls=True),
    "centring + PCA 256 + whitening": scorer(dims=256),
    "centring + PCA 256 + whitening + CSLS": scorer(dims=256, csls=True),
    "centring + PCA 512 + whitening + CSLS": scorer(dims=512, csls=True),
    "centring + PCA 256 + whitening (reg 1.0) + CSLS": scorer(
        dims=256, csls=True, regularisation=1.0
    ),
    "centring + PCA 256 + whitening + CSLS, 256 reference photos": scorer(
        dims=256, csls=True, reference=256
    ),
    "centring + PCA 256 + whitening + CSLS, 512 reference photos": scorer(
        dims=256, csls=True, reference=512
    ),
    "centring + whitening (all dims)": scorer(dims=1280),
    "centring + whitening (all dims, reg 0.03) + CSLS": scorer(
        dims=1280, csls=True, regularisation=0.03
    ),
    "centring + whitening (all dims, reg 0.3) + CSLS": scorer(
        dims=1280, csls=True, regularisation=0.3
    ),
    "shipped: centring + whitening (all dims) + CSLS, 512 reference photos": scorer(
        dims=1280, csls=True, reference=512
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bench", type=Path, default=DEFAULT_BENCH_CATALOG)
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--only", default="", help="methods whose name contains this")
    parser.add_argument("--sweep", action="store_true", help="the shipped method's thresholds")
    args = parser.parse_args()
    grocery = photos(args.bench)
    x = unit(base_vectors(args.bench, grocery, args.cache))
    labels = np.array([p["label"] for p in grocery])
    iconic = np.array([p["iconic"] for p in grocery])
    catalog_labels = labels[iconic]
    if args.sweep:
        return sweep(x, labels, iconic, args.folds)
    print(f"{'method':62s}   P@1  top-5 top-12   MRR")
    for name, method in METHODS.items():
        if args.only not in name:
            continue
        ranks = []
        for fold in folds(list(labels), args.folds):
            test = np.isin(labels, sorted(fold))
            scores = method(x, ~test, iconic, labels)
            rows = np.where(test & ~iconic)[0]
            wanted = np.array([np.where(catalog_labels == labels[r])[0][0] for r in rows])
            mine = scores[rows, wanted]
            ranks.append(1 + (scores[rows] > mine[:, None]).sum(1))
        r = np.concatenate(ranks)
        print(
            f"{name:62s} {np.mean(r == 1):.3f}  {np.mean(r <= 5):.3f}  {np.mean(r <= 12):.3f}"
            f"  {np.mean(1 / r):.3f}",
            flush=True,
        )


def sweep(x, labels, iconic, k: int, top: int = 12) -> None:
    """The shipped method's served score ((CSLS + 1) / 2) at each threshold, top 12 per photo."""
    method = METHODS["shipped: centring + whitening (all dims) + CSLS, 512 reference photos"]
    catalog_labels = labels[iconic]
    pages = []
    for fold in folds(list(labels), k):
        test = np.isin(labels, sorted(fold))
        scores = np.clip((method(x, ~test, iconic, labels) + 1) / 2, 0, 1)
        for row in np.where(test & ~iconic)[0]:
            order = np.argsort(-scores[row])[:top]
            pages.append((scores[row][order], catalog_labels[order] == labels[row]))
    print("threshold  with a result  shown per photo  right share  own product shown")
    for threshold in (0.45, 0.48, 0.50, 0.52, 0.55, 0.60, 0.65):
        shown = [score >= threshold - 1e-6 for score, _ in pages]
        right = [s & r for s, (_, r) in zip(shown, pages, strict=True)]
        count = sum(s.sum() for s in shown)
        print(
            f"{threshold:9.2f}  {np.mean([s.any() for s in shown]):13.3f}  "
            f"{count / len(pages):15.2f}  {sum(r.sum() for r in right) / max(count, 1):11.3f}"
            f"  {np.mean([r.any() for r in right]):17.3f}"
        )


if __name__ == "__main__":
    main()
