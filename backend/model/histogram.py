"""`color_histogram`: a no-weights, no-network baseline model (HSV colour histogram).

It fits the embedder interface (`name`, `dim`, `identity`, `preprocess`, `embed_arrays`, `embed`),
so it indexes, serves and evaluates like a neural backbone: useful offline and as a sanity floor
that a real model must beat.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

NAME = "color_histogram"
# Joint bins per channel: hue matters most for "looks alike", saturation and value less.
HUE_BINS, SATURATION_BINS, VALUE_BINS = 16, 4, 4
SIZE = 64  # pixels per side: plenty for a colour distribution, and cheap
VERSION = "h1"  # bumped whenever binning or preprocessing changes


class ColorHistogramEmbedder:
    """Images in, square-rooted, L2-normalised HSV histograms out ((N, 256) float32)."""

    name = NAME
    dim = HUE_BINS * SATURATION_BINS * VALUE_BINS
    random_weights = False
    weights_id = "none"
    crop_size = SIZE
    min_decode_size = SIZE
    runtime = "numpy-fp32"

    @property
    def identity(self) -> str:
        return f"{NAME}/none/{VERSION}/{self.runtime}"

    def preprocess(self, image: Image.Image) -> np.ndarray:
        """Resize the whole image (no crop: the border's colours count too); (64, 64, 3) HSV uint8."""
        small = image.convert("RGB").resize((SIZE, SIZE), Image.Resampling.BILINEAR)
        return np.asarray(small.convert("HSV"), dtype=np.uint8)

    def embed_arrays(self, arrays: Sequence[np.ndarray]) -> np.ndarray:
        """Histograms of preprocessed images in one batch; (N, 256) float32, unit length."""
        hsv = np.stack(arrays).reshape(len(arrays), -1, 3).astype(np.int64)  # (N, P, 3)
        h = hsv[..., 0] * HUE_BINS // 256
        s = hsv[..., 1] * SATURATION_BINS // 256
        v = hsv[..., 2] * VALUE_BINS // 256
        bins = (h * SATURATION_BINS + s) * VALUE_BINS + v  # (N, P)
        offsets = np.arange(len(arrays))[:, None] * self.dim
        counts = np.bincount((bins + offsets).ravel(), minlength=len(arrays) * self.dim)
        # The square root (Hellinger) keeps one dominant colour, usually the background,
        # from swamping every other bin in the cosine.
        features = np.sqrt(counts.reshape(len(arrays), self.dim).astype(np.float32))  # (N, 256)
        return features / np.linalg.norm(features, axis=1, keepdims=True)

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Embed PIL images; (N, 256) float32, unit length."""
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.embed_arrays([self.preprocess(image) for image in images])
