"""Fitting the shopper adapter (backend/model/adapter.py) on labelled phone and catalogue photos.

Numpy only, deterministic for a seed. The choices below won on products the fit never saw
(5 folds over the benchmark's grocery products, docs/quality.md#shopper-photos): every
direction of the domain-centred photos, whitened by their within-product covariance
(regularised by a tenth of its mean variance), and 512 reference phone photos for the bias.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model.adapter import ShopperAdapter


@dataclass(frozen=True)
class AdapterOptions:
    dims: int = 1280  # principal directions kept before whitening (all of Lite0's)
    regularisation: float = 0.1  # added to the within-product covariance, x its mean variance
    reference: int = 512  # phone photos kept for the item bias
    neighbours: int = 10  # the item bias averages this many nearest reference photos
    seed: int = 0


def unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


def fit_adapter(
    phone: np.ndarray,
    phone_labels: list[str],
    catalog: np.ndarray,
    catalog_labels: list[str],
    base_identity: str,
    options: AdapterOptions = AdapterOptions(),
) -> ShopperAdapter:
    """Fit on (N, D) phone-photo and (M, D) catalogue-photo unit embeddings with product labels."""
    phone, catalog = unit(np.asarray(phone, np.float64)), unit(np.asarray(catalog, np.float64))
    query_mean, catalog_mean = phone.mean(0), catalog.mean(0)  # (D,) each domain's offset
    z = np.concatenate([unit(phone - query_mean), unit(catalog - catalog_mean)])  # (N + M, D)
    labels = np.array([*phone_labels, *catalog_labels])
    centre = z.mean(0)
    zc = z - centre
    dims = min(options.dims, *zc.shape)
    principal = np.linalg.svd(zc, full_matrices=False)[2][:dims].T  # (D, dims)
    y = zc @ principal  # (N + M, dims)
    projection = principal @ within_whitening(y, labels, options.regularisation)  # (D, dims)
    adapter = ShopperAdapter(
        base_identity,
        catalog_mean.astype(np.float32),
        query_mean.astype(np.float32),
        centre.astype(np.float32),
        projection.astype(np.float32),
        np.zeros((0, dims), np.float32),
        options.neighbours,
    )
    queries = adapter.apply(phone, query=True)  # (N, dims)
    chosen = np.random.default_rng(options.seed).permutation(len(queries))[: options.reference]
    return ShopperAdapter(
        **{**adapter.__dict__, "reference": queries[np.sort(chosen)]},
    )


def within_whitening(y: np.ndarray, labels: np.ndarray, regularisation: float) -> np.ndarray:
    """Sw^(-1/2) of the within-label covariance of `y`, regularised; (dims, dims)."""
    spread = np.empty_like(y)
    for label in np.unique(labels):
        mine = labels == label
        spread[mine] = y[mine] - y[mine].mean(0)
    within = spread.T @ spread / len(y)
    within += regularisation * np.trace(within) / len(within) * np.eye(len(within))
    values, vectors = np.linalg.eigh(within)
    return vectors @ np.diag(values**-0.5) @ vectors.T
