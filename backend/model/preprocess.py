"""Resize and centre-crop without torch, pixel for pixel what torchvision's transforms do to a PIL image.

torchvision resizes a PIL image with PIL itself (shorter side to `resize`, the longer one
truncated), then crops the centre, padding with black where the image is smaller than the crop.
Doing the same here lets the ONNX Runtime path serve without importing torch, and both runtimes
see identical input arrays, so their embeddings differ only by the graph's arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

# Past this ratio of the long side to the short one, only the kept part is resized.
MAX_ASPECT = 4
INTERPOLATIONS = {
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
}


@dataclass(frozen=True)
class Preprocessing:
    """Shorter side to `resize` pixels, then the centre `crop` x `crop` square, as uint8 RGB."""

    resize: int
    crop: int
    interpolation: str  # a key of INTERPOLATIONS

    def apply(self, image: Image.Image) -> np.ndarray:
        """One RGB image -> (crop, crop, 3) uint8."""
        if image.mode != "RGB":
            image = image.convert("RGB")
        width, height = image.size
        size = resized_size(width, height, self.resize)
        box = centre_box(*size, self.crop)
        if max(size) > MAX_ASPECT * self.resize:
            return self._resize_kept_part(image, size, box)
        if size != (width, height):
            image = image.resize(size, INTERPOLATIONS[self.interpolation])
        return np.asarray(image.crop(box), dtype=np.uint8)  # PIL fills black outside the image

    def _resize_kept_part(
        self, image: Image.Image, size: tuple[int, int], box: tuple[int, int, int, int]
    ) -> np.ndarray:
        """Resize only the part of a long, thin image that the crop keeps (a 20,000 x 1 image
        would be gigabytes resized whole). PIL's filter still reads the pixels around that part,
        so values differ from the whole resize by one level at most (float32 box rounding)."""
        left, top, right, bottom = box
        inside = (max(left, 0), max(top, 0), min(right, size[0]), min(bottom, size[1]))
        x_scale, y_scale = image.width / size[0], image.height / size[1]
        x0, y0, x1, y1 = inside
        source = (x0 * x_scale, y0 * y_scale, x1 * x_scale, y1 * y_scale)
        kept = image.resize(
            (inside[2] - inside[0], inside[3] - inside[1]),
            INTERPOLATIONS[self.interpolation],
            box=source,
        )
        padded = np.zeros((self.crop, self.crop, 3), dtype=np.uint8)  # black, as torchvision pads
        padded[inside[1] - top : inside[3] - top, inside[0] - left : inside[2] - left] = kept
        return padded


def resized_size(width: int, height: int, shorter: int) -> tuple[int, int]:
    """(width, height) with the shorter side scaled to `shorter`, the longer one truncated."""
    short, long = min(width, height), max(width, height)
    new_long = int(shorter * long / short)
    return (shorter, new_long) if width <= height else (new_long, shorter)


def centre_box(width: int, height: int, crop: int) -> tuple[int, int, int, int]:
    """The crop box (left, top, right, bottom) in the resized image; negative where it pads.

    torchvision rounds the offset half to even (Python's round) and, when padding, puts the odd
    pixel on the right and bottom.
    """
    left = -((crop - width) // 2) if crop > width else int(round((width - crop) / 2.0))
    top = -((crop - height) // 2) if crop > height else int(round((height - crop) / 2.0))
    return left, top, left + crop, top + crop
