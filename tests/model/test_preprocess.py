"""Preprocessing without torch gives torchvision's pixels: resize, centre crop, padding."""

from __future__ import annotations

import resource
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from backend.model.preprocess import Preprocessing
from tests.support.catalogs import draw_image

PHOTOS = sorted((Path(__file__).resolve().parents[2] / "backend/static/catalog").glob("*.jpg"))


def torchvision_pixels(image: Image.Image, preprocessing: Preprocessing) -> np.ndarray:
    """What the torchvision backbones did before: TF.resize then TF.center_crop on the PIL image."""
    mode = InterpolationMode(preprocessing.interpolation)
    resized = TF.resize(image, preprocessing.resize, interpolation=mode, antialias=True)
    return np.asarray(TF.center_crop(resized, preprocessing.crop).convert("RGB"))


def photo(size: tuple[int, int], index: int = 0) -> Image.Image:
    return Image.open(PHOTOS[index]).convert("RGB").resize(size, Image.Resampling.BICUBIC)


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
@pytest.mark.parametrize(
    "size",
    [(640, 480), (480, 640), (256, 256), (257, 300), (299, 256), (1000, 333), (224, 224),
     (100, 80), (230, 90), (60, 240)],
)  # fmt: skip
def test_pixels_are_torchvisions(size, interpolation):
    preprocessing = Preprocessing(256, 224, interpolation)
    image = photo(size, index=len(PHOTOS) // 2)
    ours, theirs = preprocessing.apply(image), torchvision_pixels(image, preprocessing)
    assert ours.dtype == np.uint8 and ours.shape == (224, 224, 3)
    assert np.array_equal(ours, theirs)


@pytest.mark.parametrize("size", [(1100, 256), (300, 1500), (5, 900), (2000, 30)])
def test_long_thin_images_are_within_one_level_of_torchvision(size):
    preprocessing = Preprocessing(256, 224, "bicubic")
    image = photo(size)
    ours, theirs = preprocessing.apply(image), torchvision_pixels(image, preprocessing)
    difference = np.abs(ours.astype(int) - theirs.astype(int))
    assert difference.max() <= 1 and difference.mean() < 0.5


def test_a_small_resize_pads_black_like_torchvision():
    preprocessing = Preprocessing(100, 224, "bilinear")  # the crop is larger than the image
    for size in [(160, 120), (121, 300), (99, 99)]:
        image = draw_image("red", "circle", size)
        ours, theirs = preprocessing.apply(image), torchvision_pixels(image, preprocessing)
        assert np.array_equal(ours, theirs) and ours[0, 0].tolist() == [0, 0, 0]


def test_grey_and_alpha_images_become_rgb():
    preprocessing = Preprocessing(256, 224, "bilinear")
    for mode in ("L", "RGBA", "P"):
        assert preprocessing.apply(draw_image("blue").convert(mode)).shape == (224, 224, 3)


def test_a_long_thin_image_costs_no_more_than_its_crop():
    """A 40,000 x 1 image scaled to a 256-pixel short side would be 10 G pixels; only the crop is."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    array = Preprocessing(256, 224, "bilinear").apply(Image.new("RGB", (40_000, 1), (9, 99, 199)))
    assert array.shape == (224, 224, 3) and array[100, 100].tolist() == [9, 99, 199]
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 50
