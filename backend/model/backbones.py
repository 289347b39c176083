"""The torchvision backbones: model, weights, preprocessing, batched embeddings (torch)."""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision
from PIL import Image
from torch import nn
from torchvision.transforms import functional as TF

from ..errors import ConfigError

log = logging.getLogger(__name__)

RANDOM_SEED = 0
# Bumped whenever preprocessing changes, so cached embeddings are recomputed.
PREPROCESS_VERSION = "p1"


@dataclass(frozen=True)
class Backbone:
    """How to build one torchvision model as a feature extractor."""

    name: str
    dim: int
    build: Callable[[], nn.Module]
    weights: Any  # a torchvision WeightsEnum member
    strip_head: Callable[[nn.Module], None]


def _drop_fc(model: nn.Module) -> None:
    model.fc = nn.Identity()


def _drop_classifier(model: nn.Module) -> None:
    # MobileNetV3 / EfficientNet: the pooled features feed `classifier`; keep just the pooling.
    model.classifier = nn.Identity()


def _torchvision(
    name: str, dim: int, weights: Any, strip_head: Callable[[nn.Module], None]
) -> Backbone:
    """A torchvision classifier by name, built without weights (they are loaded separately)."""
    build = functools.partial(getattr(torchvision.models, name), weights=None)
    return Backbone(name, dim, build, weights, strip_head)


_models = torchvision.models
BACKBONES = {
    backbone.name: backbone
    for backbone in (
        _torchvision("resnet18", 512, _models.ResNet18_Weights.IMAGENET1K_V1, _drop_fc),
        _torchvision("resnet50", 2048, _models.ResNet50_Weights.IMAGENET1K_V2, _drop_fc),
        _torchvision(
            "mobilenet_v3_large",
            960,
            _models.MobileNet_V3_Large_Weights.IMAGENET1K_V2,
            _drop_classifier,
        ),
        _torchvision(
            "efficientnet_b0", 1280, _models.EfficientNet_B0_Weights.IMAGENET1K_V1, _drop_classifier
        ),
    )
}


class BackboneEmbedder:
    """Images in, L2-normalised float32 embeddings out."""

    def __init__(self, backbone: Backbone, model: nn.Module, weights_id: str) -> None:
        self.backbone = backbone
        self.model = model.eval()
        self.weights_id = weights_id
        preset = backbone.weights.transforms()
        self.resize_size = preset.resize_size[0]
        self.crop_size = preset.crop_size[0]
        self.interpolation = preset.interpolation
        self.mean = torch.tensor(preset.mean).view(1, 3, 1, 1)
        self.std = torch.tensor(preset.std).view(1, 3, 1, 1)
        # Set by load_embedder where it is native and agrees with float32 (see use_bfloat16).
        self.bfloat16 = False

    @property
    def name(self) -> str:
        return self.backbone.name

    @property
    def dim(self) -> int:
        return self.backbone.dim

    @property
    def random_weights(self) -> bool:
        return self.weights_id.startswith("random")

    @property
    def identity(self) -> str:
        """Names model, weights and preprocessing: embeddings are comparable only if it matches."""
        return f"{self.name}/{self.weights_id}/{PREPROCESS_VERSION}"

    @property
    def min_decode_size(self) -> int:
        """The smallest shorter side that preprocessing needs (lets JPEG decode at reduced scale)."""
        return self.resize_size

    def preprocess(self, image: Image.Image) -> np.ndarray:
        """Resize and centre-crop like the weights' own transforms(); (crop, crop, 3) uint8."""
        image = TF.resize(image, self.resize_size, interpolation=self.interpolation, antialias=True)
        image = TF.center_crop(image, self.crop_size)
        return np.asarray(image.convert("RGB"), dtype=np.uint8)

    def embed_arrays(self, arrays: Sequence[np.ndarray]) -> np.ndarray:
        """Embed preprocessed images in one batch; (N, dim) float32, unit length."""
        batch = torch.from_numpy(np.stack(arrays))  # (N, H, W, 3) uint8
        batch = batch.permute(0, 3, 1, 2).float().div_(255)  # (N, 3, H, W)
        batch = (batch - self.mean) / self.std
        features = nn.functional.normalize(self.forward(batch), dim=1)  # (N, dim)
        return features.numpy().astype(np.float32, copy=False)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        """Run the model on a normalised (N, 3, H, W) batch; (N, dim) float32, not normalised."""
        with (
            torch.inference_mode(),
            torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bfloat16),
        ):
            return self.model(batch.contiguous(memory_format=torch.channels_last)).float()

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


def load_backbone(
    model_name: str, weights: str | None, precision: str = "auto"
) -> BackboneEmbedder:
    """Build a torchvision backbone; weights: None (ImageNet), a file path, or 'random'."""
    backbone = BACKBONES[model_name]
    model = _seeded_build(backbone)
    if weights == "random":
        weights_id = f"random-seed{RANDOM_SEED}"
        log.warning("MODEL_WEIGHTS=random: embeddings come from an untrained network")
    else:
        state, weights_id = _load_state(backbone, weights)
        model.load_state_dict(state)
    backbone.strip_head(model)
    model = model.to(memory_format=torch.channels_last)
    embedder = BackboneEmbedder(backbone, model, weights_id)
    embedder.bfloat16 = precision == "auto" and use_bfloat16(embedder)
    return embedder


BFLOAT16_MIN_COSINE = 0.999


def use_bfloat16(embedder: BackboneEmbedder) -> bool:
    """Whether to infer in bfloat16: native on this CPU, and within 0.999 cosine of float32.

    On CPUs with AVX512-BF16 or AMX it is ~1.8x faster. The check runs the loaded weights on a
    few seeded photo-like images both ways, so weights that bfloat16 would distort stay float32.
    """
    if not _native_bfloat16():
        return False
    batch = _check_batch(embedder.crop_size, embedder.mean, embedder.std)
    exact = embedder.forward(batch)
    embedder.bfloat16 = True
    try:
        fast = embedder.forward(batch)
    finally:
        embedder.bfloat16 = False
    cosine = nn.functional.cosine_similarity(exact, fast).min().item()
    agrees = cosine >= BFLOAT16_MIN_COSINE
    log.info("bfloat16 vs float32 cosine %.5f: inferring in %s", cosine,
             "bfloat16" if agrees else "float32")  # fmt: skip
    return agrees


def _native_bfloat16() -> bool:
    """AVX512-BF16 or AMX on this CPU (elsewhere bfloat16 is emulated and slower)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    native = {"avx512_bf16", "amx_bf16"} & set(flags.split())
    return bool(native) and torch.backends.mkldnn.is_available()


def _check_batch(size: int, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Four seeded photo-like images: smooth colour fields with fine noise, normalised."""
    generator = torch.Generator().manual_seed(RANDOM_SEED)
    coarse = torch.rand(4, 3, 6, 6, generator=generator)
    images = nn.functional.interpolate(
        coarse, size=(size, size), mode="bicubic", align_corners=False
    )
    images = (images + 0.05 * torch.randn(4, 3, size, size, generator=generator)).clamp(0, 1)
    return (images - mean) / std


def _seeded_build(backbone: Backbone) -> nn.Module:
    # Random init is deterministic per seed and leaves the caller's global RNG untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_SEED)
        return backbone.build()


def _load_state(backbone: Backbone, weights: str | None) -> tuple[dict, str]:
    if weights:
        path = Path(weights)
        log.info("loading %s weights from %s", backbone.name, path)
        return _read_state(path), f"file-{_file_digest(path)}"
    cached = hub_checkpoint_path(backbone)
    if cached.is_file():
        log.info("loading %s weights from the torch hub cache %s", backbone.name, cached)
        return _read_state(cached), backbone.weights.name
    log.info("downloading %s weights from %s", backbone.name, backbone.weights.url)
    try:
        state = torch.hub.load_state_dict_from_url(backbone.weights.url, progress=True)
    except Exception as error:  # noqa: BLE001 - any download failure gets the same advice
        raise ConfigError(missing_weights_message(backbone, error)) from None
    return state, backbone.weights.name


def hub_checkpoint_path(backbone: Backbone) -> Path:
    filename = os.path.basename(backbone.weights.url)
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def missing_weights_message(backbone: Backbone, error: BaseException) -> str:
    url = backbone.weights.url
    return (
        f"cannot load the {backbone.name} ImageNet weights: they are not in the torch hub cache "
        f"({hub_checkpoint_path(backbone)}) and downloading {url} failed ({error}).\n"
        "Provide them in one of these ways:\n"
        f"  1. on a machine with internet, download {url} and copy it to "
        f"{hub_checkpoint_path(backbone)} (or set TORCH_HOME to a folder holding checkpoints/);\n"
        "  2. set MODEL_WEIGHTS=/path/to/the/downloaded/file.pth;\n"
        "  3. for an offline demo or tests only, set MODEL_WEIGHTS=random "
        "(results are then NOT meaningful)."
    )


def _read_state(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - corrupt or foreign file
        raise ConfigError(
            f"MODEL_WEIGHTS file {path} is not a readable state dict: {error}"
        ) from None


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:12]
