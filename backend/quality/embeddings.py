"""Embeddings of the configured catalog for any model: the served one, another backbone, a head.

The served configuration (MODEL, MODEL_HEAD) uses INDEX_PATH; every other model gets its own
`index-<model>.csv` next to it, so evaluating or fine-tuning never re-embeds the live index. A
head file is evaluated on its backbone's index (no re-embedding): its projection is a function of
the backbone's embeddings alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..catalog import Product
from ..config import Settings
from ..index.index_file import read_index
from ..model.head import check_base, load_head
from ..search import SearchService

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ModelSpec:
    model: str
    head: Path | None = None

    @classmethod
    def parse(cls, text: str) -> ModelSpec:
        """A model name, or the path of a head file (its backbone is read from the file)."""
        path = Path(text)
        if text.endswith(".npz") or path.is_file():
            return cls(load_head(path).head.base_identity.split("/", 1)[0], path)
        return cls(text)

    @classmethod
    def served(cls, settings: Settings) -> ModelSpec:
        head = Path(settings.model_head) if settings.model_head else None
        return cls(settings.model, head)


@dataclass(frozen=True)
class Embeddings:
    identity: str
    random_weights: bool
    products: list[Product]
    vectors: np.ndarray  # (N, D) unit rows, one per product


def model_settings(settings: Settings, model: str) -> Settings:
    """Settings for `model` without a head: INDEX_PATH if that is what is served, else a sibling."""
    served = model == settings.model and not settings.model_head
    index = settings.index_path.with_name(f"{settings.index_path.stem}-{model}.csv")
    # A weights file belongs to the configured model only; `random` applies to every model.
    weights = settings.model_weights if model == settings.model or settings.random_weights else None
    return replace(
        settings,
        model=model,
        model_weights=weights,
        model_head=None,
        index_path=settings.index_path if served else index,
        vector_backend="memory",  # vectors are read back from index.csv; never touch a shared store
    )


def embeddings_for(
    settings: Settings, spec: ModelSpec, progress: Progress | None = None
) -> Embeddings:
    """Sync the catalog's embeddings for `spec` (incrementally) and return them."""
    if spec == ModelSpec.served(settings) and spec.head is not None:
        return _synced(replace(settings, vector_backend="memory"), progress)
    base = _synced(model_settings(settings, spec.model), progress)
    if spec.head is None:
        return base
    loaded = load_head(spec.head)
    check_base(loaded, spec.head, base.identity)
    return Embeddings(
        loaded.identity(), base.random_weights, base.products, loaded.head.apply(base.vectors)
    )


def _synced(settings: Settings, progress: Progress | None) -> Embeddings:
    service = SearchService(settings)
    try:
        catalog, _ = service.sync(progress)
    finally:
        service.close()
    identity = service.embedder.identity
    rows = [
        (entry, vector)
        for entry, vector in read_index(settings.index_path).rows()
        if entry.id in catalog.products and entry.model == identity
    ]
    products = [catalog.products[entry.id] for entry, _ in rows]
    vectors = (
        np.stack([vector for _, vector in rows]) if rows else np.zeros((0, service.embedder.dim))
    )
    return Embeddings(
        identity, service.embedder.random_weights, products, vectors.astype(np.float32)
    )
