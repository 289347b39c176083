"""Every MODEL: dimensions, own transforms, weights rules, the colour histogram, re-embedding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backend import create_app
from backend.errors import ConfigError
from backend.extensions import get_service
from backend.index.index_file import read_index
from backend.model import MODEL_NAMES, load_embedder
from backend.model.backbones import BACKBONES
from backend.model.histogram import ColorHistogramEmbedder
from backend.model.specs import SPECS
from tests.support.catalogs import HISTOGRAM, RANDOM_TEST_MODEL, draw_image


@pytest.mark.parametrize(
    "name, dim, resize, interpolation",
    [
        ("resnet18", 512, 256, "bilinear"),
        ("resnet50", 2048, 232, "bilinear"),
        ("mobilenet_v3_large", 960, 232, "bilinear"),
        ("efficientnet_b0", 1280, 256, "bicubic"),
    ],
)
def test_each_backbone_embeds_to_unit_vectors_with_its_own_transforms(
    name, dim, resize, interpolation
):
    embedder = load_embedder(name, "random", runtime="torch")
    assert (embedder.name, embedder.dim, embedder.identity) == (
        name,
        dim,
        f"{name}/random-seed0/p2-r{resize}c224-{interpolation}-imagenet/torch-fp32",
    )
    # The torch-free spec that serving relies on is what the weights' own transforms() say.
    spec, preset = SPECS[name], BACKBONES[name].weights.transforms()
    assert (spec.preprocessing.resize, spec.preprocessing.crop) == (resize, 224)
    assert (resize, 224) == (preset.resize_size[0], preset.crop_size[0])
    assert spec.preprocessing.interpolation == interpolation == preset.interpolation.value
    assert list(spec.preprocessing.mean) == preset.mean
    assert list(spec.preprocessing.std) == preset.std
    assert spec.default_weights == BACKBONES[name].weights.name
    vectors = embedder.embed([draw_image("red"), draw_image("blue", "square", (90, 300))])
    assert vectors.shape == (2, dim) and vectors.dtype == np.float32
    assert np.linalg.norm(vectors, axis=1) == pytest.approx([1.0, 1.0], abs=1e-5)
    assert embedder.embed([]).shape == (0, dim)


def test_a_weights_file_is_loaded_and_named_by_its_digest(tmp_path):
    random_model = load_embedder("mobilenet_v3_large", "random", runtime="torch")
    path = tmp_path / "mobilenet.pth"
    # The random-init network's full state dict, classifier included, like a torchvision file.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        import torchvision

        torch.save(torchvision.models.mobilenet_v3_large(weights=None).state_dict(), path)
    from_file = load_embedder("mobilenet_v3_large", str(path), runtime="torch")
    assert from_file.identity.startswith("mobilenet_v3_large/file-")
    images = [draw_image("green", "triangle")]
    assert from_file.embed(images) == pytest.approx(random_model.embed(images), abs=1e-5)


def test_the_hub_cache_is_used_before_any_download(tmp_path, monkeypatch):
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    backbone = BACKBONES["efficientnet_b0"]
    cached = tmp_path / "hub" / "checkpoints" / backbone.weights.url.rsplit("/", 1)[1]
    cached.parent.mkdir(parents=True)
    torch.save(torchvision.models.efficientnet_b0(weights=None).state_dict(), cached)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", _no_network)
    embedder = load_embedder.__wrapped__("efficientnet_b0", None, runtime="torch")
    assert (
        embedder.identity == "efficientnet_b0/IMAGENET1K_V1/p2-r256c224-bicubic-imagenet/torch-fp32"
    )


def _no_network(url, **kwargs):
    raise OSError("network unreachable")


@pytest.mark.parametrize("name", ["resnet50", "mobilenet_v3_large"])
def test_missing_weights_say_how_to_provide_them(name, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", _no_network)
    with pytest.raises(ConfigError) as caught:
        load_embedder.__wrapped__(name, None, runtime="torch")
    message = caught.value.message
    assert BACKBONES[name].weights.url in message and "network unreachable" in message
    assert "MODEL_WEIGHTS=random" in message and "MODEL_WEIGHTS=/path" in message
    assert "MODEL=efficientnet_lite0" in message  # the fully offline choice


def test_unknown_models_are_refused_with_the_choices():
    with pytest.raises(
        ConfigError,
        match="choose one of resnet18, resnet50, mobilenet_v3_large, efficientnet_b0, "
        "efficientnet_lite0, color_histogram",
    ):
        load_embedder("vgg11", "random")


def test_the_model_names_known_without_torch_are_the_backbones_built_with_it():
    assert (*BACKBONES, "efficientnet_lite0", "color_histogram") == MODEL_NAMES


# ---- colour histogram --------------------------------------------------------------------------


def test_color_histogram_ranks_by_colour():
    embedder = load_embedder("color_histogram", None)
    red, red_square, blue = embedder.embed(
        [draw_image("red", "circle"), draw_image("red", "square"), draw_image("blue", "circle")]
    )
    assert red @ red_square > red @ blue
    assert embedder.identity == HISTOGRAM and not embedder.random_weights
    assert embedder.dim == 256 and np.linalg.norm(red) == pytest.approx(1.0)


def test_color_histogram_by_hand():
    embedder = ColorHistogramEmbedder()
    half = np.zeros((2, 2, 3), dtype=np.uint8)
    half[0] = (0, 255, 255)  # hue 0, full saturation and value: bin (0, 3, 3) = 15
    half[1] = (128, 0, 0)  # hue 8 of 16, no saturation, no value: bin (8, 0, 0) = 128
    (vector,) = embedder.embed_arrays([half])
    assert np.flatnonzero(vector).tolist() == [15, 128]
    assert vector[[15, 128]] == pytest.approx([2**-0.5, 2**-0.5])  # sqrt(2), sqrt(2), normalised


def test_color_histogram_preprocess_and_batches_agree():
    embedder = ColorHistogramEmbedder()
    images = [draw_image("cyan", "stripes", (500, 90)), draw_image("yellow", "triangle")]
    arrays = [embedder.preprocess(image) for image in images]
    assert arrays[0].shape == (64, 64, 3) and arrays[0].dtype == np.uint8
    assert embedder.embed(images) == pytest.approx(
        np.concatenate([embedder.embed_arrays(arrays[:1]), embedder.embed_arrays(arrays[1:])])
    )
    assert embedder.embed([]).shape == (0, 256)


def test_color_histogram_takes_no_weights_file(tmp_path):
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"x")
    with pytest.raises(ConfigError, match="has no weights"):
        load_embedder("color_histogram", str(weights))
    assert load_embedder("color_histogram", "random").identity == HISTOGRAM


# ---- switching models ------------------------------------------------------------------------------


def test_switching_models_re_embeds_every_row(app_config):
    first = get_service(create_app(app_config))
    first.sync()
    index_path = app_config["index_path"]
    assert {entry.model for entry in read_index(index_path).entries} == {RANDOM_TEST_MODEL}
    second = get_service(create_app({**app_config, "model": "color_histogram"}))
    _, report = second.sync()
    assert (
        report.summary() == "0 added, 7 updated, 0 removed, 0 unchanged, 0 failed, 0 rows skipped"
    )
    table = read_index(index_path)
    assert {entry.model for entry in table.entries} == {HISTOGRAM}
    assert table.vectors.shape == (7, 256)
    result = second.search_similar("p1", k=1, threshold=0.0)
    assert result.hits[0].product.id == "p2"  # the other red item
