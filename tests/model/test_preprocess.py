"""Preprocessing without torch: the same pixels as torchvision's Resize + CenterCrop."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from backend.model.preprocess import TF_LITE, Preprocessing, imagenet
from tests.support.catalogs import draw_image


def photo_like(size: tuple[int, int]) -> Image.Image:
    """A smooth, detailed picture (drawn shapes, blurred noise) of the given size."""
    rng = np.random.default_rng(size[0] * 7919 + size[1])
    noise = Image.fromarray((rng.random((24, 24, 3)) * 255).astype(np.uint8)).resize(size)
    return Image.blend(draw_image("purple", "triangle", size), noise, 0.4)


@pytest.mark.parametrize(
    "size",
    [
        (640, 480),
        (480, 640),
        (256, 256),
        (198, 198),
        (300, 299),
        (1000, 90),
        (90, 1000),
        (3000, 257),
    ],
)
@pytest.mark.parametrize("preprocessing", [imagenet(256), imagenet(232), TF_LITE])
def test_the_crop_matches_torchvision_resize_then_center_crop(size, preprocessing):
    image = photo_like(size)
    mode = InterpolationMode(preprocessing.interpolation)
    resized = TF.resize(image, preprocessing.resize, interpolation=mode, antialias=True)
    expected = np.asarray(TF.center_crop(resized, preprocessing.crop), dtype=int)
    got = preprocessing.apply(image)
    assert got.shape == (preprocessing.crop, preprocessing.crop, 3) and got.dtype == np.uint8
    # Resampling only the box that lands in the crop rounds a few pixels differently.
    assert np.abs(got.astype(int) - expected).max() <= 3
    assert (got != expected).mean() < 0.05


def test_an_extreme_aspect_ratio_costs_no_more_than_a_square():
    # A 1 x 20,000 strip: resizing it whole would make a 256 x 5,120,000 image (3.9 GB).
    strip = Image.new("RGB", (1, 20_000), (200, 10, 10))
    assert TF_LITE.apply(strip).shape == (224, 224, 3)


def test_the_tag_names_every_parameter():
    assert TF_LITE.tag == "p2-r256c224-bicubic-tf127"
    assert imagenet(232).tag == "p2-r232c224-bilinear-imagenet"
    other = Preprocessing(256, 224, "bicubic", (0.5,) * 3, (0.5,) * 3, "half")
    assert other.tag != TF_LITE.tag


def test_grey_and_alpha_images_become_rgb():
    for mode in ("L", "RGBA", "P"):
        array = imagenet(256).apply(draw_image("blue").convert(mode))
        assert array.shape == (224, 224, 3) and array.dtype == np.uint8
