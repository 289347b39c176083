"""The shopper adapter: a learned transform that brings phone photos and catalogue photos together.

A phone photo taken in a shop and the studio photo of the same product differ in ways the
backbone was never asked to ignore (light, clutter, angle), and its embeddings keep two domains
apart. The adapter, trained by `scripts/train_adapter.py` and saved as an .npz file (numpy, no
torch), fixes that in three measured steps (docs/quality.md#shopper-photos):

1. domain centring: catalog vectors minus the catalogue photos' mean, query vectors minus the
   phone photos' mean (each domain's offset removed);
2. a linear projection learned on products' phone <-> catalogue photos (within-product
   whitening: directions in which photos of one product vary weigh less), then unit length;
3. a hubness correction (CSLS) at search time: a catalog item that is close to every phone
   photo is discounted by its mean similarity to its nearest phone photos of a reference
   sample, shipped in the file.

Index rows store catalog vectors after steps 1-2, and the identity names the adapter's digest,
so an index built without it (or with another one) is re-embedded, like a model change.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from .on_top import OnTopEmbedder

FORMAT = "shopper-adapter/1"
# Catalog items scored per bias-corrected search: the store's nearest by cosine, re-ranked.
CANDIDATES = 64
# Catalog rows per product of the item-bias computation: bounds its memory at any catalog size.
BIAS_CHUNK = 4096


@dataclass(frozen=True)
class ShopperAdapter:
    base_identity: str  # name/weights/preprocessing of the backbone it was trained on
    catalog_mean: np.ndarray  # (D,) mean of catalogue-photo embeddings
    query_mean: np.ndarray  # (D,) mean of phone-photo embeddings
    centre: np.ndarray  # (D,) subtracted before the projection
    projection: np.ndarray  # (D, d)
    reference: np.ndarray  # (R, d) unit phone-photo vectors, for the item bias; may be (0, d)
    neighbours: int = 10  # the item bias averages its nearest `neighbours` reference photos
    info: dict = field(default_factory=dict)  # how it was trained: data, seed, scores

    @property
    def dim(self) -> int:
        return self.projection.shape[1]

    def apply(self, vectors: np.ndarray, *, query: bool) -> np.ndarray:
        """(N, D) backbone unit vectors -> (N, d) float32 unit vectors of the shared space."""
        offset = self.query_mean if query else self.catalog_mean
        x = _unit(np.asarray(vectors, dtype=np.float32) - offset)  # (N, D)
        return _unit((x - self.centre) @ self.projection)  # (N, d)

    def item_bias(self, vectors: np.ndarray) -> np.ndarray:
        """Each catalog vector's mean cosine to its nearest reference phone photos; (N,)."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if len(self.reference) == 0:
            return np.zeros(len(vectors), dtype=np.float32)
        k = min(self.neighbours, len(self.reference))
        out = np.empty(len(vectors), dtype=np.float32)
        for start in range(0, len(vectors), BIAS_CHUNK):
            scores = vectors[start : start + BIAS_CHUNK] @ self.reference.T  # (B, R)
            out[start : start + len(scores)] = np.partition(scores, -k, axis=1)[:, -k:].mean(1)
        return out

    def to_bytes(self) -> bytes:
        meta = {
            "format": FORMAT,
            "base_identity": self.base_identity,
            "neighbours": self.neighbours,
            "info": self.info,
        }
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer,
            catalog_mean=self.catalog_mean.astype(np.float32),
            query_mean=self.query_mean.astype(np.float32),
            centre=self.centre.astype(np.float32),
            # Half precision: half the file, and the scores move in the fourth decimal only.
            projection=self.projection.astype(np.float16),
            reference=self.reference.astype(np.float16),
            meta=np.array(json.dumps(meta)),
        )
        return buffer.getvalue()


def bias_corrected(similarity: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """The CSLS score 2 x cosine - item bias, mapped from [-1, 1] onto [0, 1] like a cosine
    read as a percentage: 0.5 is a score of 0; an exact copy of a catalog photo stays 1."""
    return np.clip((2 * similarity - bias + 1) / 2, 0.0, 1.0)


def _unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


@dataclass(frozen=True)
class LoadedAdapter:
    adapter: ShopperAdapter
    digest: str  # of the file: any retraining gives a new identity

    def identity(self, base_identity: str) -> str:
        return f"{base_identity}+adapter-{self.digest}"


def load_adapter(path: Path) -> LoadedAdapter:
    """Read an adapter file; anything else is a ConfigError naming the file."""
    try:
        data = path.read_bytes()
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            meta = json.loads(str(arrays["meta"]))
            if meta.get("format") != FORMAT:
                raise ValueError(f"format {meta.get('format')!r} is not {FORMAT!r}")
            catalog_mean, query_mean, centre, projection, reference = (
                arrays[name].astype(np.float32)
                for name in ("catalog_mean", "query_mean", "centre", "projection", "reference")
            )
            adapter = ShopperAdapter(
                meta["base_identity"],
                catalog_mean,
                query_mean,
                centre,
                projection,
                reference,
                int(meta["neighbours"]),
                meta.get("info", {}),
            )
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as error:
        raise ConfigError(f"MODEL_ADAPTER file {path} is not a readable adapter: {error}") from None
    return LoadedAdapter(adapter, hashlib.sha256(data).hexdigest()[:12])


def trained_on(loaded: LoadedAdapter, identity: str) -> bool:
    """Whether the adapter fits this backbone (its runtime aside: both compute the same vectors
    up to the last digits, which a linear map does not amplify)."""
    return identity.rsplit("/", 1)[0] == loaded.adapter.base_identity


class AdaptedEmbedder(OnTopEmbedder):
    """A backbone embedder with the shopper adapter on top: catalog vectors by `embed`,
    shoppers' photos by `embed_query`; same interface, its own identity."""

    def __init__(self, base, loaded: LoadedAdapter) -> None:
        super().__init__(base, loaded.identity(base.identity), loaded.adapter.dim)
        self.adapter = loaded.adapter

    def transform(self, vectors: np.ndarray) -> np.ndarray:
        """Catalog photos' vectors: the catalogue side of the adapter."""
        return self.adapter.apply(vectors, query=False)

    def embed_query(self, images) -> np.ndarray:
        """Shoppers' photos -> (N, d) float32 unit vectors."""
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.adapter.apply(self.base.embed(images), query=True)

    def item_bias(self, vectors: np.ndarray) -> np.ndarray:
        return self.adapter.item_bias(vectors)


def adapt(base, path: Path, *, required: bool):
    """`base` with the adapter at `path`; one trained on another backbone is refused when
    `required` (named in MODEL_ADAPTER), else left off (the bundled default of another model)."""
    loaded = load_adapter(path)
    if trained_on(loaded, base.identity):
        return AdaptedEmbedder(base, loaded)
    if required:
        raise ConfigError(
            f"MODEL_ADAPTER {path} was trained on {loaded.adapter.base_identity}, but the model "
            f"is {base.identity}; train one for this model (scripts/train_adapter.py) or set "
            "MODEL_ADAPTER=none"
        )
    return base
