"""The embedder interface and `load_embedder`: images in, unit-length float32 vectors out.

Backbones (torch) are imported only when one is loaded; the colour histogram and the
fine-tuned head are numpy.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

from ..errors import ConfigError
from .histogram import NAME as COLOR_HISTOGRAM

# Every MODEL value: the torchvision backbones, then the no-weights colour histogram baseline.
BACKBONE_NAMES = ("resnet18", "resnet50", "mobilenet_v3_large", "efficientnet_b0")
MODEL_NAMES = (*BACKBONE_NAMES, COLOR_HISTOGRAM)


class Embedder(Protocol):
    """What the indexer, the search service and the evaluation need of a model."""

    name: str
    dim: int
    identity: str  # names model, weights and preprocessing: vectors compare only if equal
    random_weights: bool
    crop_size: int  # side of the square array that preprocess returns
    min_decode_size: int  # the smallest shorter side preprocessing needs (JPEG draft decoding)

    def preprocess(self, image: Image.Image) -> np.ndarray:
        """One RGB image -> the model's input array (H, W, 3) uint8."""
        ...

    def embed_arrays(self, arrays: Sequence[np.ndarray]) -> np.ndarray:
        """Preprocessed arrays -> (N, dim) float32, unit length."""
        ...

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        """PIL images -> (N, dim) float32, unit length."""
        ...


@functools.lru_cache(maxsize=4)
def load_embedder(
    model_name: str = "resnet18",
    weights: str | None = None,
    head: str | None = None,
    precision: str = "auto",
) -> Embedder:
    """Build the embedder once per process; weights: None (ImageNet), a file path, or 'random'.

    `head`: a fine-tuned projection head file (MODEL_HEAD) applied on top of the model.
    `precision`: "auto" (bfloat16 where it is native and agrees with float32) or "float32".
    """
    if head:
        from .head import load_head_embedder

        return load_head_embedder(load_embedder(model_name, weights, None, precision), Path(head))
    if model_name == COLOR_HISTOGRAM:
        from .histogram import ColorHistogramEmbedder

        if weights not in (None, "random"):
            raise ConfigError(
                f"MODEL={COLOR_HISTOGRAM} has no weights, but MODEL_WEIGHTS={weights!r}; "
                "unset MODEL_WEIGHTS"
            )
        return ColorHistogramEmbedder()
    if model_name not in BACKBONE_NAMES:
        raise ConfigError(
            f"MODEL={model_name!r} is unknown; choose one of {', '.join(MODEL_NAMES)}"
        )
    from .backbones import load_backbone

    return load_backbone(model_name, weights, precision)
