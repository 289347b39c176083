"""Running a feature network with torch in float32: the graph that is exported, and torch eager.

A network here maps a normalised (N, 3, H, W) batch to (N, dim) features; the torchvision
backbones (`backbones.py`) and EfficientNet-Lite0 (`lite0.py`) are both wrapped in
`ImagesToEmbeddings`, the one graph that ONNX Runtime serves once exported (`export.py`) and
that `TorchEmbedder` runs with MODEL_RUNTIME=torch, when exporting and when fine-tuning.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from .specs import RANDOM_SEED, TORCH_FP32, BackboneSpec, SpecEmbedder, identity


class ImagesToEmbeddings(nn.Module):
    """Preprocessed uint8 images in, unit-length embeddings out: the graph that is exported."""

    scale: torch.Tensor  # buffers, registered below
    shift: torch.Tensor

    def __init__(self, features: nn.Module, spec: BackboneSpec) -> None:
        super().__init__()
        self.features = features
        mean = torch.tensor(spec.preprocessing.mean)
        std = torch.tensor(spec.preprocessing.std)
        # (pixel / 255 - mean) / std as one multiply-add per pixel.
        self.register_buffer("scale", (1 / (255 * std)).view(1, 3, 1, 1))
        self.register_buffer("shift", (-mean / std).view(1, 3, 1, 1))

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """(N, H, W, 3) uint8 -> (N, 3, H, W) float32, channels-last in memory (the fast layout)."""
        return images.permute(0, 3, 1, 2).float() * self.scale + self.shift

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.features(self.normalise(images)), dim=1)  # (N, dim)


class TorchEmbedder(SpecEmbedder):
    """Images in, L2-normalised float32 embeddings out, computed by torch eager in float32."""

    runtime = TORCH_FP32

    def __init__(self, spec: BackboneSpec, features: nn.Module, weights: str | None) -> None:
        self.spec = spec
        features = features.eval().to(memory_format=torch.channels_last)
        self.model = ImagesToEmbeddings(features, spec).eval()
        self.weights = weights  # the MODEL_WEIGHTS it was loaded with
        self.identity = identity(spec, weights, self.runtime)
        self.random_weights = weights == "random"

    def normalise(self, arrays: Sequence[np.ndarray]) -> torch.Tensor:
        """Preprocessed arrays -> the network's input, (N, 3, H, W) float32."""
        return self.model.normalise(torch.from_numpy(np.stack(arrays)))

    def embed_arrays(self, arrays: Sequence[np.ndarray]) -> np.ndarray:
        """Embed preprocessed images in one batch; (N, dim) float32, unit length."""
        batch = torch.from_numpy(np.stack(arrays))  # (N, H, W, 3) uint8
        with torch.inference_mode():
            return self.model(batch).numpy()  # (N, dim)


def seeded(build):
    """Build a network with seeded random init, leaving the caller's global RNG untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_SEED)
        return build()


def read_state(path: Path) -> dict:
    """A state dict from a weights file, tensors only (no pickled code runs)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - corrupt or foreign file
        raise ConfigError(
            f"MODEL_WEIGHTS file {path} is not a readable state dict: {error}"
        ) from None
