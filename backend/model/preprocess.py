"""Image preprocessing for the neural backbones: resize, centre crop, pixel scaling (no torch).

Every runtime (torch today) feeds the network the same (crop, crop, 3) uint8 arrays and scales
them with the same constants, so the preprocessing is named once, by `tag`, in the model
identity: rows embedded with another preprocessing are re-embedded, never mixed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

# Bumped whenever the resampling itself changes (the tag names the parameters).
VERSION = "p2"
RESAMPLING = {
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
}


@dataclass(frozen=True)
class Preprocessing:
    """Resize the shorter side to `resize`, take the centre `crop` square, scale the pixels.

    `mean` and `std` are per channel, on pixels scaled to [0, 1]: the network sees
    (pixel / 255 - mean) / std. `scaling` names that pair in the identity.
    """

    resize: int
    crop: int
    interpolation: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    scaling: str

    @property
    def tag(self) -> str:
        return f"{VERSION}-r{self.resize}c{self.crop}-{self.interpolation}-{self.scaling}"

    def apply(self, image: Image.Image) -> np.ndarray:
        """Resize and centre-crop like torchvision's Resize + CenterCrop; (crop, crop, 3) uint8.

        Only the source box that lands in the crop is resampled (same sampling grid and filter
        taps as resizing the whole image, then cropping), so a 1 x 10,000 image costs no more
        than a square one.
        """
        width, height = image.size
        new_width, new_height = _resized_size(width, height, self.resize)
        left = int(round((new_width - self.crop) / 2.0))
        top = int(round((new_height - self.crop) / 2.0))
        sx, sy = width / new_width, height / new_height
        box = (left * sx, top * sy, (left + self.crop) * sx, (top + self.crop) * sy)
        resample = RESAMPLING[self.interpolation]
        out = image.convert("RGB").resize((self.crop, self.crop), resample, box=box)
        return np.asarray(out, dtype=np.uint8)  # (crop, crop, 3)


def _resized_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """The size after resizing the shorter side to `short_side` (torchvision's rounding)."""
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = short_side, int(short_side * long / short)
    return (new_short, new_long) if width <= height else (new_long, new_short)


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def imagenet(resize: int, crop: int = 224, interpolation: str = "bilinear") -> Preprocessing:
    """torchvision's ImageNet preprocessing: the weights' own resize, crop and mean/std."""
    return Preprocessing(resize, crop, interpolation, IMAGENET_MEAN, IMAGENET_STD, "imagenet")


# TensorFlow's EfficientNet-Lite inputs: (pixel - 127) / 128, as the weights were trained.
TF_LITE = Preprocessing(256, 224, "bicubic", (127 / 255,) * 3, (128 / 255,) * 3, "tf127")
