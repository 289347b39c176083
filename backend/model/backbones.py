"""The torchvision backbones: model, weights, preprocessing, batched embeddings (torch)."""

from __future__ import annotations

import functools
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

from ..errors import ConfigError
from .specs import RANDOM_SEED, SPECS, TORCH_FP32, BackboneSpec, identity

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backbone:
    """How to build one torchvision model as a feature extractor."""

    spec: BackboneSpec
    build: Callable[[], nn.Module]
    weights: Any  # a torchvision WeightsEnum member
    strip_head: Callable[[nn.Module], None]

    @property
    def name(self) -> str:
        return self.spec.name


def _drop_fc(model: nn.Module) -> None:
    model.fc = nn.Identity()


def _drop_classifier(model: nn.Module) -> None:
    # MobileNetV3 / EfficientNet: the pooled features feed `classifier`; keep just the pooling.
    model.classifier = nn.Identity()


def _torchvision(name: str, weights: Any, strip_head: Callable[[nn.Module], None]) -> Backbone:
    """A torchvision classifier by name, built without weights (they are loaded separately)."""
    build = functools.partial(getattr(torchvision.models, name), weights=None)
    return Backbone(SPECS[name], build, weights, strip_head)


_models = torchvision.models
BACKBONES = {
    backbone.name: backbone
    for backbone in (
        _torchvision("resnet18", _models.ResNet18_Weights.IMAGENET1K_V1, _drop_fc),
        _torchvision("resnet50", _models.ResNet50_Weights.IMAGENET1K_V2, _drop_fc),
        _torchvision(
            "mobilenet_v3_large", _models.MobileNet_V3_Large_Weights.IMAGENET1K_V2, _drop_classifier
        ),
        _torchvision(
            "efficientnet_b0", _models.EfficientNet_B0_Weights.IMAGENET1K_V1, _drop_classifier
        ),
    )
}


class ImagesToEmbeddings(nn.Module):
    """Preprocessed uint8 images in, unit-length embeddings out: the graph that is exported."""

    def __init__(self, features: nn.Module, spec: BackboneSpec) -> None:
        super().__init__()
        self.features = features
        mean, std = torch.tensor(spec.mean), torch.tensor(spec.std)
        # (pixel / 255 - mean) / std as one multiply-add per pixel.
        self.register_buffer("scale", (1 / (255 * std)).view(1, 3, 1, 1))
        self.register_buffer("shift", (-mean / std).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # (N, H, W, 3) uint8 -> (N, 3, H, W) float32, channels-last in memory (the fast layout)
        batch = images.permute(0, 3, 1, 2).float()
        batch = batch * self.scale + self.shift
        return nn.functional.normalize(self.features(batch), dim=1)  # (N, dim)


class BackboneEmbedder:
    """Images in, L2-normalised float32 embeddings out, computed by torch in float32."""

    runtime = TORCH_FP32

    def __init__(self, spec: BackboneSpec, model: ImagesToEmbeddings, weights: str | None) -> None:
        self.spec = spec
        self.model = model.eval()
        self.weights = weights  # the MODEL_WEIGHTS it was loaded with
        self.identity = identity(spec, weights, self.runtime)
        self.random_weights = weights == "random"

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

    def embed_arrays(self, arrays: Sequence[np.ndarray]) -> np.ndarray:
        """Embed preprocessed images in one batch; (N, dim) float32, unit length."""
        batch = torch.from_numpy(np.stack(arrays))  # (N, H, W, 3) uint8
        with torch.inference_mode():
            return self.model(batch).numpy()  # (N, dim)

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


def load_backbone(model_name: str, weights: str | None) -> BackboneEmbedder:
    """Build a torchvision backbone; weights: None (ImageNet), a file path, or 'random'."""
    backbone = BACKBONES[model_name]
    model = _seeded_build(backbone)
    if weights == "random":
        log.warning("MODEL_WEIGHTS=random: embeddings come from an untrained network")
    else:
        model.load_state_dict(_load_state(backbone, weights))
    backbone.strip_head(model)
    model = model.to(memory_format=torch.channels_last)
    return BackboneEmbedder(backbone.spec, ImagesToEmbeddings(model, backbone.spec), weights)


def _seeded_build(backbone: Backbone) -> nn.Module:
    # Random init is deterministic per seed and leaves the caller's global RNG untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_SEED)
        return backbone.build()


def _load_state(backbone: Backbone, weights: str | None) -> dict:
    if weights:
        path = Path(weights)
        log.info("loading %s weights from %s", backbone.name, path)
        return _read_state(path)
    cached = hub_checkpoint_path(backbone)
    if cached.is_file():
        log.info("loading %s weights from the torch hub cache %s", backbone.name, cached)
        return _read_state(cached)
    log.info("downloading %s weights from %s", backbone.name, backbone.weights.url)
    try:
        return torch.hub.load_state_dict_from_url(backbone.weights.url, progress=True)
    except Exception as error:  # noqa: BLE001 - any download failure gets the same advice
        raise ConfigError(missing_weights_message(backbone, error)) from None


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
