"""What each backbone is, without torch: dimension, default weights, preprocessing and identity.

Both runtimes read these: the torch backbones (to build, export and fine-tune) and the ONNX
Runtime embedder (to serve), which must know a model's identity and preprocessing before, and
without, importing torch.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

from .preprocess import Preprocessing

RANDOM_SEED = 0
# Bumped whenever preprocessing changes, so cached embeddings are recomputed.
PREPROCESS_VERSION = "p1"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# How embeddings are computed, the last part of every identity: vectors from different runtimes
# or precisions differ slightly, so they are never mixed in one index.
TORCH_FP32, ORT_FP32 = "torch-fp32", "ort-fp32"
RUNTIMES = {"torch": TORCH_FP32, "onnx": ORT_FP32}
# The exported graph: (N, H, W, 3) uint8 preprocessed images -> (N, dim) float32 unit vectors,
# with what it computes (its identity) in the file's metadata.
ONNX_INPUT, ONNX_OUTPUT, ONNX_IDENTITY_KEY = "images", "embeddings", "identity"


@dataclass(frozen=True)
class BackboneSpec:
    """One backbone as a feature extractor: its pooled features, weights and input."""

    name: str
    dim: int
    default_weights: str  # names the weights used when MODEL_WEIGHTS is unset
    preprocessing: Preprocessing
    mean: tuple[float, float, float]  # per channel, on pixels scaled to 0..1
    std: tuple[float, float, float]


def _imagenet(name: str, dim: int, weights: str, resize: int, interpolation: str) -> BackboneSpec:
    preprocessing = Preprocessing(resize, 224, interpolation)
    return BackboneSpec(name, dim, weights, preprocessing, IMAGENET_MEAN, IMAGENET_STD)


# The torchvision backbones with their ImageNet weights' own transforms() (a test checks them).
SPECS = {
    spec.name: spec
    for spec in (
        _imagenet("resnet18", 512, "IMAGENET1K_V1", 256, "bilinear"),
        _imagenet("resnet50", 2048, "IMAGENET1K_V2", 232, "bilinear"),
        _imagenet("mobilenet_v3_large", 960, "IMAGENET1K_V2", 232, "bilinear"),
        _imagenet("efficientnet_b0", 1280, "IMAGENET1K_V1", 256, "bicubic"),
    )
}


def weights_id(spec: BackboneSpec, weights: str | None) -> str:
    """Name the weights: the default ones, the random init, or a file by its content digest."""
    if weights == "random":
        return f"random-seed{RANDOM_SEED}"
    if weights:
        return f"file-{file_digest(Path(weights))}"
    return spec.default_weights


def identity(spec: BackboneSpec, weights: str | None, runtime: str) -> str:
    """Model, weights, preprocessing and runtime: embeddings are comparable only if it matches."""
    return f"{spec.name}/{weights_id(spec, weights)}/{PREPROCESS_VERSION}/{runtime}"


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
