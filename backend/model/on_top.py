"""An embedder on top of a backbone: a numpy transform (a fine-tuned head, the shopper adapter)
applied to the backbone's vectors, with the backbone's preprocessing and its own identity."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np


class OnTopEmbedder(ABC):
    """The backbone's interface and preprocessing; `transform` maps its (N, D) vectors to this
    embedder's (N, dim) unit vectors."""

    def __init__(self, base, identity: str, dim: int) -> None:
        self.base = base
        self.identity = identity
        self.dim = dim
        self.name = base.name
        self.random_weights = base.random_weights
        self.runtime = base.runtime
        self.crop_size = base.crop_size
        self.min_decode_size = base.min_decode_size
        self.preprocess = base.preprocess

    @abstractmethod
    def transform(self, vectors: np.ndarray) -> np.ndarray:
        """The backbone's (N, D) vectors -> (N, dim) float32 unit vectors."""

    def embed_arrays(self, arrays) -> np.ndarray:
        """Preprocessed images -> (N, dim) float32 unit vectors."""
        return self.transform(self.base.embed_arrays(arrays))

    def embed(self, images) -> np.ndarray:
        """PIL images -> (N, dim) float32 unit vectors."""
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.transform(self.base.embed(images))
