"""Running a feature network with torch: batches, precision, and the runtime part of the identity.

A network here maps a normalised (N, 3, H, W) batch to (N, dim) features; the torchvision
backbones (`backbones.py`) and EfficientNet-Lite0 (`lite0.py`) both run through `TorchEmbedder`.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..errors import ConfigError
from .preprocess import Preprocessing

log = logging.getLogger(__name__)

RANDOM_SEED = 0
BFLOAT16_MIN_COSINE = 0.999


class TorchEmbedder:
    """Images in, L2-normalised float32 embeddings out.

    identity = name / weights / preprocessing / runtime, e.g.
    `efficientnet_lite0/file-3c1f0a9d2b4e/p2-r256c224-bicubic-tf127/torch-fp32`: vectors are
    comparable only when all four match (bfloat16 and float32 vectors are never mixed).
    """

    def __init__(
        self,
        name: str,
        dim: int,
        model: nn.Module,
        weights_id: str,
        preprocessing: Preprocessing,
    ) -> None:
        self.name = name
        self.dim = dim
        self.model = model.eval()
        self.weights_id = weights_id
        self.preprocessing = preprocessing
        self.mean = torch.tensor(preprocessing.mean).view(1, 3, 1, 1)
        self.std = torch.tensor(preprocessing.std).view(1, 3, 1, 1)
        # Set by load_embedder where it is native and agrees with float32 (see use_bfloat16).
        self.bfloat16 = False

    @property
    def random_weights(self) -> bool:
        return self.weights_id.startswith("random")

    @property
    def runtime(self) -> str:
        """How the vectors are computed: the engine and the precision of its arithmetic."""
        return "torch-bf16" if self.bfloat16 else "torch-fp32"

    @property
    def identity(self) -> str:
        """Names model, weights, preprocessing and runtime: vectors compare only if it matches."""
        return f"{self.name}/{self.weights_id}/{self.preprocessing.tag}/{self.runtime}"

    @property
    def resize_size(self) -> int:
        return self.preprocessing.resize

    @property
    def crop_size(self) -> int:
        return self.preprocessing.crop

    @property
    def min_decode_size(self) -> int:
        """The smallest shorter side that preprocessing needs (lets JPEG decode at reduced scale)."""
        return self.preprocessing.resize

    def preprocess(self, image: Image.Image) -> np.ndarray:
        """Resize and centre-crop; (crop, crop, 3) uint8."""
        return self.preprocessing.apply(image)

    def normalise(self, arrays: Sequence[np.ndarray]) -> torch.Tensor:
        """Preprocessed arrays -> the network's input, (N, 3, H, W) float32."""
        batch = torch.from_numpy(np.stack(arrays))  # (N, H, W, 3) uint8
        batch = batch.permute(0, 3, 1, 2).float().div_(255)  # (N, 3, H, W)
        return (batch - self.mean) / self.std

    def embed_arrays(self, arrays: Sequence[np.ndarray]) -> np.ndarray:
        """Embed preprocessed images in one batch; (N, dim) float32, unit length."""
        features = nn.functional.normalize(self.forward(self.normalise(arrays)), dim=1)  # (N, dim)
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


def finish(embedder: TorchEmbedder, precision: str) -> TorchEmbedder:
    """Channels-last weights, and bfloat16 where `precision` allows it and it agrees."""
    embedder.model = embedder.model.to(memory_format=torch.channels_last)
    embedder.bfloat16 = precision == "auto" and use_bfloat16(embedder)
    return embedder


def use_bfloat16(embedder: TorchEmbedder) -> bool:
    """Whether to infer in bfloat16: native on this CPU, and within 0.999 cosine of float32.

    On CPUs with AVX512-BF16 or AMX it is ~1.8x faster. The check runs the loaded weights on a
    few seeded photo-like images both ways, so weights that bfloat16 would distort stay float32.
    """
    if not native_bfloat16():
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


def native_bfloat16() -> bool:
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


def file_digest(path: Path) -> str:
    """The first 12 hex digits of the file's SHA-256: names the weights in the identity."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:12]
