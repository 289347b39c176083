"""The embedder interface and `load_embedder`: images in, unit-length float32 vectors out.

Backbones run in ONNX Runtime (`runtime.py`) by default; torch is imported only to export a
model the first time its identity is needed, or with MODEL_RUNTIME=torch. The colour histogram
and the fine-tuned head are numpy.
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
from .specs import SPECS

# Every MODEL value: the backbones, then the no-weights colour histogram baseline.
BACKBONE_NAMES = tuple(SPECS)
MODEL_NAMES = (*BACKBONE_NAMES, COLOR_HISTOGRAM)
# Where exported models go unless MODEL_DIR says otherwise: the default CACHE_DIR's models/.
DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[2] / "cache" / "models"


class Embedder(Protocol):
    """What the indexer, the search service and the evaluation need of a model."""

    name: str
    dim: int
    identity: str  # names model, weights, preprocessing, runtime: vectors compare only if equal
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
    runtime: str = "onnx",
    model_dir: Path = DEFAULT_MODEL_DIR,
    threads: int = 0,
) -> Embedder:
    """Build the embedder once per process; weights: None (ImageNet), a file path, or 'random'.

    `head`: a fine-tuned projection head file (MODEL_HEAD) applied on top of the model.
    `runtime`: "onnx" (the model exported once into `model_dir`) or "torch", both float32;
    `threads`: cores per inference (0: all).
    """
    if head:
        base = load_embedder(model_name, weights, None, runtime, model_dir, threads)
        from .head import load_head_embedder

        return load_head_embedder(base, Path(head))
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
    if runtime == "torch":
        from .backbones import load_backbone

        return load_backbone(model_name, weights)
    from .runtime import load_onnx_embedder

    return load_onnx_embedder(SPECS[model_name], weights, model_dir, threads)
