"""MODEL_PRECISION: bfloat16 inference only where it is native and agrees with float32."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from backend.config import load_settings
from backend.errors import ConfigError
from backend.model import load_embedder
from backend.model.backbones import BACKBONES
from backend.model.torch_runtime import TorchEmbedder, native_bfloat16, use_bfloat16
from tests.support.catalogs import draw_image

native = pytest.mark.skipif(not native_bfloat16(), reason="this CPU has no native bfloat16")


def test_an_unknown_precision_is_refused_by_name():
    with pytest.raises(ConfigError, match="MODEL_PRECISION='half'"):
        load_settings(environ={"MODEL_PRECISION": "half"})


def test_float32_is_never_bfloat16():
    embedder = load_embedder("resnet18", "random", None, "float32")
    assert embedder.bfloat16 is False
    assert embedder.runtime == "torch-fp32" and embedder.identity.endswith("/torch-fp32")


@native
def test_auto_uses_bfloat16_and_stays_within_0_999_cosine_of_float32():
    fast = load_embedder("resnet18", "random", None, "auto")
    exact = load_embedder("resnet18", "random", None, "float32")
    assert fast.bfloat16 is True
    # The runtime is part of the identity: bfloat16 rows are never mixed with float32 ones.
    assert fast.identity.endswith("/torch-bf16") and exact.identity.endswith("/torch-fp32")
    assert fast.identity.rsplit("/", 1)[0] == exact.identity.rsplit("/", 1)[0]
    arrays = [
        fast.preprocess(draw_image(colour, shape))
        for colour, shape in [("red", "circle"), ("blue", "stripes"), ("green", "triangle")]
    ]
    cosines = np.sum(fast.embed_arrays(arrays) * exact.embed_arrays(arrays), axis=1)
    assert cosines.min() >= 0.999


class _Cancelling(nn.Module):
    """Features that are the small difference of two large sums: bfloat16 rounding ruins them."""

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.weight = torch.randn(3 * 224 * 224, 8, generator=generator)
        self.nudge = 1e-3 * torch.randn(3 * 224 * 224, 8, generator=generator)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        flat = batch.flatten(1)
        return flat @ self.weight - flat @ (self.weight + self.nudge)


@native
def test_weights_that_bfloat16_distorts_stay_float32():
    backbone = BACKBONES["resnet18"]
    embedder = TorchEmbedder("test", 8, _Cancelling(), "test", backbone.preprocessing)
    assert use_bfloat16(embedder) is False
    assert embedder.bfloat16 is False
