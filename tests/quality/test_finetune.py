"""Fine-tuning: label-level split, the loss by hand, learning that transfers to unseen labels,
determinism, the head file, serving with MODEL_HEAD, and `flask finetune`."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, replace

import numpy as np
import pytest
import torch

from backend import create_app
from backend.config import load_settings
from backend.errors import ConfigError, InvalidInput
from backend.extensions import get_service
from backend.index.index_file import read_index
from backend.model.head import check_base, load_head, save_head
from backend.quality.finetune import (
    FinetuneOptions,
    split_labels,
    supervised_contrastive_loss,
    train_head,
)
from backend.quality.leave_one_out import evaluate_vectors
from tests.support.catalogs import (
    COLOURS,
    HISTOGRAM,
    RANDOM_RESNET18,
    RANDOM_TEST_MODEL,
    TEST_MODEL,
    make_app_config,
    write_catalog,
)

FAST = FinetuneOptions(epochs=4, hidden=32, batch_labels=8, per_label=4, learning_rate=1e-2)


def test_split_holds_out_whole_labels_deterministically():
    labels = [f"l{i % 10}" for i in range(50)] + ["alone", None]
    split = split_labels(labels, 0.3, seed=4)
    assert len(split.held_out_labels) == 3 and len(split.train_labels) == 7
    held = {labels[row] for row in split.held_out}
    assert held == set(split.held_out_labels)
    assert held.isdisjoint(labels[row] for row in split.train)
    assert len(split.train) + len(split.held_out) == 50  # the singleton and the unlabelled sit out
    assert split_labels(labels, 0.3, seed=4).held_out_labels == split.held_out_labels
    assert split_labels(labels, 0.3, seed=5).held_out_labels != split.held_out_labels


@pytest.mark.parametrize(
    "labels, holdout",
    [(["a", "a", "b", "b", "c", "c"], 0.5), ([f"l{i % 9}" for i in range(18)], 0.99)],
)
def test_split_refuses_too_few_labels(labels, holdout):
    with pytest.raises(InvalidInput):
        split_labels(labels, holdout, seed=0)


def test_holdout_zero_trains_on_every_label():
    labels = [f"l{i % 4}" for i in range(12)] + ["alone", None]
    split = split_labels(labels, 0.0, seed=0)
    assert split.train_labels == ["l0", "l1", "l2", "l3"] and split.held_out_labels == []
    assert len(split.train) == 12 and len(split.held_out) == 0


def test_a_training_batch_never_holds_the_same_row_twice():
    from backend.quality.finetune import _balanced_batch

    rows_by_label = [np.arange(0, 2), np.arange(2, 12), np.arange(12, 15)]  # 2, 10 and 3 rows
    rng = np.random.default_rng(0)
    for _ in range(50):
        batch = _balanced_batch(rng, rows_by_label, replace(FAST, batch_labels=3, per_label=4))
        assert len(batch) == len(set(batch.tolist())) == 2 + 4 + 3


def test_supervised_contrastive_loss_by_hand():
    z = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    # Each anchor: one positive at cosine 1, two negatives at 0 -> -log(e / (e + 2)).
    loss = supervised_contrastive_loss(z, torch.tensor([0, 0, 1, 1]), temperature=1.0)
    assert loss.item() == pytest.approx(-math.log(math.e / (math.e + 2)), abs=1e-6)


def synthetic(labels: int, per_label: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """Label identity lives in 4 dimensions; 20 larger noise dimensions hide it from the cosine."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(labels, 4))
    signal = np.repeat(centres, per_label, axis=0) + 0.2 * rng.normal(size=(labels * per_label, 4))
    vectors = np.hstack([signal, 1.5 * rng.normal(size=(labels * per_label, 20))]).astype(
        np.float32
    )
    names = [f"s{seed}-{i}" for i in range(labels) for _ in range(per_label)]
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True), names


def test_the_head_improves_retrieval_on_labels_it_never_saw():
    train_vectors, train_labels = synthetic(24, 8, seed=1)
    unseen_vectors, unseen_labels = synthetic(10, 8, seed=2)
    head = train_head(train_vectors, train_labels, "toy/none/v1", replace(FAST, epochs=15))
    before = evaluate_vectors(unseen_vectors, unseen_labels, [1, 5])
    after = evaluate_vectors(head.apply(unseen_vectors), unseen_labels, [1, 5])
    assert after.precision[1] > before.precision[1] + 0.2
    assert after.map > before.map


def test_training_is_deterministic_per_seed(tmp_path):
    vectors, labels = synthetic(12, 6, seed=3)
    one = save_head(tmp_path / "one.npz", train_head(vectors, labels, "toy/none/v1", FAST))
    two = save_head(tmp_path / "two.npz", train_head(vectors, labels, "toy/none/v1", FAST))
    other = save_head(
        tmp_path / "other.npz", train_head(vectors, labels, "toy/none/v1", replace(FAST, seed=1))
    )
    assert one.digest == two.digest != other.digest
    assert (tmp_path / "one.npz").read_bytes() == (tmp_path / "two.npz").read_bytes()


def test_head_file_round_trip_and_refusals(tmp_path):
    vectors, labels = synthetic(8, 4, seed=5)
    head = train_head(vectors, labels, "toy/none/v1", FAST)
    path = tmp_path / "head.npz"
    saved = save_head(path, head)
    loaded = load_head(path)
    assert loaded.identity() == saved.identity() == f"toy/none/v1+head-{saved.digest}"
    assert loaded.head.apply(vectors) == pytest.approx(head.apply(vectors))
    assert np.linalg.norm(loaded.head.apply(vectors), axis=1) == pytest.approx(
        np.ones(len(vectors)), abs=1e-5
    )
    with pytest.raises(ConfigError, match="was trained on toy/none/v1, but the model is resnet18"):
        check_base(loaded, path, RANDOM_RESNET18)
    (tmp_path / "junk.npz").write_bytes(b"not a head")
    with pytest.raises(ConfigError, match="is not a readable projection head"):
        load_head(tmp_path / "junk.npz")
    with pytest.raises(ConfigError, match="MODEL_HEAD='nope.npz' is not a file"):
        load_settings({}, {"model_head": "nope.npz"})


def test_the_head_file_records_its_training_options(tmp_path):
    vectors, labels = synthetic(8, 4, seed=5)
    head = train_head(vectors, labels, "toy/none/v1", FAST)
    assert head.residual is True
    assert head.info == {"options": asdict(FAST)}
    save_head(tmp_path / "head.npz", head)
    loaded = load_head(tmp_path / "head.npz").head
    assert loaded.residual is True
    assert loaded.info == {"options": asdict(FAST)}


# ---- the command and serving -----------------------------------------------------------------


@pytest.fixture
def colour_shop(tmp_path):
    """18 products, labelled by colour: 6 labels of 3 shapes each."""
    items = [
        (f"{colour}-{shape}", f"{colour} {shape}", colour, colour, shape)
        for colour in COLOURS
        for shape in ("circle", "square", "triangle")
    ]
    return make_app_config(tmp_path, write_catalog(tmp_path / "shop", items))


def test_finetune_command_trains_saves_and_serves(colour_shop, tmp_path):
    runner = create_app(colour_shop).test_cli_runner()
    args = ["finetune", "--epochs", "3", "--holdout", "0.34", "--k", "1,2"]
    result = runner.invoke(args=args)
    assert result.exit_code == 0, result.output
    assert "trained on 12 products of 4 labels; held out 6 products of 2 labels" in result.output
    assert re.search(r"^before\s+\d\.\d{3}", result.output, re.M) and re.search(
        r"^after\s+\d\.\d{3}", result.output, re.M
    )
    head_path = colour_shop["index_path"].with_name(f"head-{TEST_MODEL}.npz")
    identity = re.search(
        rf"\(({re.escape(RANDOM_TEST_MODEL)}\+head-[0-9a-f]{{12}})\)", result.output
    ).group(1)
    assert f"MODEL_HEAD={head_path}" in result.output
    held_out = head_path.with_suffix(".heldout.csv").read_text().splitlines()
    assert held_out[0] == "id,label" and len(held_out) == 7
    again = runner.invoke(args=args)
    assert identity in again.output  # same seed, same head

    served = get_service(create_app({**colour_shop, "model_head": str(head_path)}))
    assert served.embedder.identity == identity
    served.sync()
    table = read_index(colour_shop["index_path"])
    assert {entry.model for entry in table.entries} == {identity}
    result = served.search_similar("red-circle", k=3, threshold=0.0)
    assert len(result.hits) == 3 and "red-circle" not in [hit.product.id for hit in result.hits]


def test_finetune_with_holdout_zero_trains_on_every_label(colour_shop):
    runner = create_app(colour_shop).test_cli_runner()
    result = runner.invoke(args=["finetune", "--epochs", "2", "--holdout", "0"])
    assert result.exit_code == 0, result.output
    assert "trained on 18 products of 6 labels: every label (none held out)" in result.output
    assert "measure the head on a separate catalog" in result.output
    head_path = colour_shop["index_path"].with_name(f"head-{TEST_MODEL}.npz")
    assert head_path.is_file() and not head_path.with_suffix(".heldout.csv").exists()


def test_evaluate_a_head_file_on_its_backbone_index(colour_shop, tmp_path):
    runner = create_app(colour_shop).test_cli_runner()
    assert runner.invoke(args=["finetune", "--epochs", "2", "--holdout", "0.34"]).exit_code == 0
    head_path = colour_shop["index_path"].with_name(f"head-{TEST_MODEL}.npz")
    labels = head_path.with_suffix(".heldout.csv")
    result = runner.invoke(
        args=[
            "evaluate",
            "--labels",
            str(labels),
            "--model",
            TEST_MODEL,
            "--model",
            str(head_path),
            "--out",
            str(tmp_path / "report"),
        ]
    )
    assert result.exit_code == 0, result.output
    assert "6 queries (0 alone in their label, 12 unlabelled" in result.output
    assert re.search(
        rf"^{re.escape(RANDOM_TEST_MODEL)}\+head-[0-9a-f]{{12}}\s+\d", result.output, re.M
    )


def test_a_head_for_another_model_is_refused_at_startup(colour_shop):
    vectors, labels = synthetic(8, 4, seed=6)
    path = colour_shop["index_path"].with_name("toy.npz")
    save_head(path, train_head(vectors, labels, HISTOGRAM, FAST))
    service = get_service(create_app({**colour_shop, "model_head": str(path)}))
    with pytest.raises(ConfigError, match=f"was trained on {HISTOGRAM}"):
        service.embedder  # noqa: B018


def test_a_head_trained_on_another_runtimes_embeddings_is_refused(tmp_path):
    vectors, labels = synthetic(8, 4, seed=7)
    path = tmp_path / "head.npz"
    torch_eager = RANDOM_RESNET18.replace("/ort-fp32", "/torch-fp32")
    save_head(path, train_head(vectors, labels, torch_eager, FAST))
    with pytest.raises(
        ConfigError,
        match="trained on torch-fp32 embeddings, but this server "
        r"computes ort-fp32 ones \(MODEL_RUNTIME\)",
    ):
        check_base(load_head(path), path, RANDOM_RESNET18)
