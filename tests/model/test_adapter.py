"""The shopper adapter: its maths by hand, its file, and the served search with it (any store)."""

from __future__ import annotations

import numpy as np
import pytest

from backend import create_app
from backend.catalog import Product
from backend.config import load_settings
from backend.errors import ConfigError
from backend.model.adapter import ShopperAdapter, bias_corrected, load_adapter
from backend.quality.adapter_training import AdapterOptions, fit_adapter
from backend.stores.base import StoreHit
from backend.stores.bias import ItemBiases
from tests.support.catalogs import RANDOM_TEST_MODEL, make_app_config

BASE = RANDOM_TEST_MODEL.rsplit("/", 1)[0]  # the test model, runtime aside


def simple_adapter(dim: int, reference: np.ndarray, base: str = BASE) -> ShopperAdapter:
    zeros = np.zeros(dim, np.float32)
    return ShopperAdapter(base, zeros, zeros, zeros, np.eye(dim, dtype=np.float32), reference, 2)


def test_each_domain_is_centred_then_projected_to_unit_length():
    adapter = ShopperAdapter(
        BASE,
        catalog_mean=np.array([1.0, 0.0], np.float32),
        query_mean=np.array([0.0, 1.0], np.float32),
        centre=np.zeros(2, np.float32),
        projection=np.array([[2.0], [1.0]], np.float32),  # (D=2, d=1)
        reference=np.zeros((0, 1), np.float32),
    )
    x = np.array([[0.6, 0.8]], np.float32)
    # As a query: (0.6, 0.8 - 1) -> 2 x 0.6 - 0.2 = 1.0 > 0 -> unit: 1.
    assert adapter.apply(x, query=True)[0, 0] == pytest.approx(1.0)
    # As a catalog photo: (0 - 1, 1) -> 2 x -0.71 + 0.71 < 0 -> unit: -1; as a query the same
    # photo has no direction left after centring: 0.
    catalog_photo = np.array([[0.0, 1.0]], np.float32)
    assert adapter.apply(catalog_photo, query=False)[0, 0] == pytest.approx(-1.0)
    assert adapter.apply(catalog_photo, query=True)[0, 0] == 0.0


def test_item_bias_is_the_mean_of_the_nearest_reference_cosines():
    reference = np.array([[1, 0], [0, 1], [0.6, 0.8]], np.float32)
    adapter = simple_adapter(2, reference)  # 2 neighbours
    bias = adapter.item_bias(np.array([[1, 0], [0, 1]], np.float32))
    assert bias.tolist() == pytest.approx([(1 + 0.6) / 2, (1 + 0.8) / 2])
    assert simple_adapter(2, np.zeros((0, 2), np.float32)).item_bias(np.ones((3, 2))).tolist() == [
        0,
        0,
        0,
    ]


def test_the_corrected_score_maps_onto_zero_to_one():
    scores = bias_corrected(np.array([1.0, 0.5, 0.2, -1.0]), np.array([0.0, 0.5, 0.6, 1.0]))
    assert scores.tolist() == pytest.approx([1.0, 0.75, 0.4, 0.0])


def test_a_hub_is_discounted_among_the_candidates():
    products = [Product(pid, pid, "c", None, f"{pid}.jpg") for pid in ("hub", "own")]
    biases = ItemBiases(lambda vectors: vectors[:, 0])
    biases.replace(["hub", "own"], np.array([[0.6], [0.1]], np.float32))
    hits = [StoreHit(products[0], 0.50), StoreHit(products[1], 0.40)]
    reranked = biases.rerank(hits, bias_corrected)
    assert [hit.product.id for hit in reranked] == ["own", "hub"]  # 2x0.4-0.1 > 2x0.5-0.6
    biases.drop("hub")
    assert [hit.product.id for hit in biases.rerank(hits, bias_corrected)] == ["hub", "own"]


def test_fitting_is_deterministic_and_brings_the_domains_together():
    rng = np.random.default_rng(0)
    products = rng.standard_normal((6, 16))
    shift = rng.standard_normal(16) * 2  # what a phone adds to every photo
    phone = np.concatenate(
        [products + shift + 0.3 * rng.standard_normal((6, 16)) for _ in range(5)]
    )
    labels = [f"p{i}" for i in range(6)]
    options = AdapterOptions(dims=16, reference=8)
    adapter = fit_adapter(phone, labels * 5, products, labels, BASE, options)
    again = fit_adapter(phone, labels * 5, products, labels, BASE, options)
    assert adapter.to_bytes() == again.to_bytes()
    unit = phone / np.linalg.norm(phone, axis=1, keepdims=True)
    queries, catalog = adapter.apply(unit, query=True), adapter.apply(products, query=False)
    raw = (unit @ (products / np.linalg.norm(products, axis=1, keepdims=True)).T).argmax(1)
    adapted = (queries @ catalog.T).argmax(1)
    truth = np.tile(np.arange(6), 5)
    assert (adapted == truth).mean() > (raw == truth).mean()
    assert adapter.reference.shape == (8, 16)


def test_a_bad_or_foreign_adapter_file_is_refused(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ConfigError, match="not a readable adapter"):
        load_adapter(bad)
    with pytest.raises(ConfigError, match="MODEL_ADAPTER='nope.npz' is not a file"):
        load_settings({"MODEL_ADAPTER": "nope.npz"})
    assert load_settings({"MODEL_ADAPTER": "none"}).adapter_choice == (None, False)


@pytest.fixture(params=["memory", "faiss"])
def adapted_app(request, tmp_path, catalog_path):
    """The test model with an adapter whose reference photo sits next to the red ball."""
    from backend.extensions import get_service

    plain = create_app(make_app_config(tmp_path / "plain", catalog_path))
    service = get_service(plain)
    service.sync()
    red = service.store.vector("p1")
    path = tmp_path / "adapter.npz"
    path.write_bytes(simple_adapter(len(red), red[None, :]).to_bytes())
    config = make_app_config(tmp_path / "adapted", catalog_path) | {
        "model_adapter": str(path),
        "vector_backend": request.param,
    }
    return create_app(config), red


def test_the_served_search_uses_the_adapter_and_its_identity(adapted_app):
    from backend.extensions import get_service

    app, red = adapted_app
    service = get_service(app)
    service.sync()
    assert "+adapter-" in service.embedder.identity
    # The red ball is the hub: its bias is its cosine to the reference photo, 1 (stored in half
    # precision).
    assert service.biases.active and service.biases._biases["p1"] == pytest.approx(1.0, abs=1e-3)
    result = service.search_vector(red, k=3, threshold=0.0)
    # 2 x 1 - 1 = 1 -> 1.0 on the served scale; no longer far ahead of the others.
    assert result.hits[0].similarity == pytest.approx(1.0, abs=1e-5)
    assert all(0.0 <= hit.similarity <= 1.0 for hit in result.hits)
    service.delete_product("p2")
    assert "p2" not in service.biases._biases
