"""One record per model (backend/model/specs.py): every MODEL value has one, and the tables the
pages and the settings read are that record's fields."""

from __future__ import annotations

import pytest

from backend.model import (
    BUNDLED_ADAPTERS,
    MODEL_NAMES,
    bundled_adapter,
    default_threshold,
    display_name,
    threshold_meaning,
)
from backend.model.histogram import ColorHistogramEmbedder
from backend.model.specs import FALLBACK_THRESHOLD, MODELS, SPECS, BackboneSpec, ModelSpec


def test_every_model_value_is_one_record():
    assert tuple(MODELS) == MODEL_NAMES
    assert all(isinstance(spec, ModelSpec) and spec.name == name for name, spec in MODELS.items())
    assert all(isinstance(spec, BackboneSpec) for spec in SPECS.values())
    assert MODELS["color_histogram"].dim == ColorHistogramEmbedder.dim == 256
    assert len({spec.display_name for spec in MODELS.values()}) == len(MODELS)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_what_the_pages_and_settings_read_comes_from_the_record(name):
    spec = MODELS[name]
    assert display_name(name) == spec.display_name
    assert default_threshold(name) == spec.default_threshold
    assert threshold_meaning(name) == spec.threshold_meaning
    assert 0 < spec.default_threshold < 1
    if spec.adapted_threshold is None:
        assert default_threshold(name, adapted=True) == spec.default_threshold
        assert bundled_adapter(name) is None and name not in BUNDLED_ADAPTERS
    else:  # a model that declares an adapter ships its file
        assert default_threshold(name, adapted=True) == spec.adapted_threshold
        assert bundled_adapter(name) == BUNDLED_ADAPTERS[name] == spec.bundled_adapter
        assert spec.bundled_adapter.is_file()


def test_the_measured_defaults_and_the_fallback():
    assert (default_threshold("efficientnet_lite0"), display_name("efficientnet_lite0")) == (
        0.35,
        "EfficientNet-Lite0",
    )
    assert default_threshold("efficientnet_lite0", adapted=True) == 0.50
    assert default_threshold("resnet18") == FALLBACK_THRESHOLD == 0.70
    assert display_name("someone_elses_model") == "someone_elses_model"
    assert default_threshold("someone_elses_model") == FALLBACK_THRESHOLD
