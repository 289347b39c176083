"""Retrieval metrics against hand-computed values; leave-one-out evaluation; `flask evaluate`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from backend.catalog import load_catalog
from backend.errors import ConfigError
from backend.index.index_file import read_index
from backend.quality import leave_one_out as quality
from backend.quality import metrics as m
from backend.quality.labels import load_labels, product_labels
from backend.quality.leave_one_out import evaluate_vectors
from tests.support.catalogs import HISTOGRAM, RANDOM_RESNET18, RANDOM_TEST_MODEL

# ---- pure metrics -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "scores, relevant, expected",
    [
        ([0.9, 0.1, 0.5], [0, 1, 1], [0, 1, 1]),  # 0.9, 0.5, 0.1
        ([0.5, 0.5, 0.5], [1, 0, 0], [0, 0, 1]),  # a three-way tie: the relevant one ranks last
        ([0.7, 0.7, 0.2], [1, 0, 1], [0, 1, 1]),
        ([], [], []),
    ],
)
def test_rank_by_score_breaks_ties_against_the_model(scores, relevant, expected):
    ranked = m.rank_by_score(np.array(scores, dtype=float), np.array(relevant, dtype=bool))
    assert ranked.tolist() == [[bool(x) for x in expected]]


@pytest.mark.parametrize(
    "ranked, k, expected",
    [
        ([1, 0, 1, 0], 1, 1.0),
        ([1, 0, 1, 0], 2, 0.5),
        ([1, 0, 1, 0], 3, 2 / 3),
        ([1, 0, 1, 0], 6, 2 / 6),  # fewer candidates than k: the missing ranks are misses
        ([0, 0, 0], 2, 0.0),
        ([], 5, 0.0),  # no candidates at all
    ],
)
def test_precision_at_k(ranked, k, expected):
    assert m.precision_at_k(np.array([ranked], dtype=bool).reshape(1, -1), k)[0] == pytest.approx(
        expected
    )


@pytest.mark.parametrize(
    "ranked, n_relevant, k, expected",
    [
        ([1, 0, 1, 0], 2, 1, 0.5),
        ([1, 0, 1, 0], 2, 3, 1.0),
        ([1, 0, 1], 4, 3, 0.5),  # two of four found
        ([0, 0], 0, 2, 0.0),  # nothing relevant: 0.0, not a division by zero
        ([], 3, 5, 0.0),
    ],
)
def test_recall_at_k(ranked, n_relevant, k, expected):
    ranked = np.array([ranked], dtype=bool).reshape(1, -1)
    assert m.recall_at_k(ranked, np.array([n_relevant]), k)[0] == pytest.approx(expected)


@pytest.mark.parametrize(
    "ranked, n_relevant, k, expected",
    [
        ([1, 0, 1, 0], 2, None, (1 + 2 / 3) / 2),
        ([0, 1, 0, 1], 2, None, (1 / 2 + 2 / 4) / 2),
        ([1, 1, 1], 3, None, 1.0),
        ([0, 1], 3, None, (1 / 2) / 3),  # relevant items never retrieved still count
        ([1, 0, 1, 0], 2, 2, 1 / 2),  # AP@2: only rank 1 counts, divided by min(2, 2)
        ([0, 0, 1, 1], 2, 3, (1 / 3) / 2),
        ([1, 0, 0, 0], 5, 2, 1 / 2),  # AP@k divides by min(k, n_relevant)
        ([0, 0, 0], 0, None, 0.0),
        ([], 2, None, 0.0),
    ],
)
def test_average_precision(ranked, n_relevant, k, expected):
    ranked = np.array([ranked], dtype=bool).reshape(1, -1)
    assert m.average_precision(ranked, np.array([n_relevant]), k)[0] == pytest.approx(expected)


def test_metrics_work_on_several_queries_at_once():
    ranked = np.array([[1, 0, 1], [0, 1, 1]], dtype=bool)
    assert m.precision_at_k(ranked, 2).tolist() == [0.5, 0.5]
    assert m.average_precision(ranked, np.array([2, 2])).tolist() == pytest.approx(
        [(1 + 2 / 3) / 2, (1 / 2 + 2 / 3) / 2]
    )


def test_k_must_be_positive():
    with pytest.raises(ValueError):
        m.precision_at_k(np.ones((1, 3), dtype=bool), 0)


@pytest.mark.parametrize("values, expected", [([], 0.0), ([1.0], 1.0), ([0.0, 0.5, 1.0], 0.5)])
def test_mean_of_nothing_is_zero(values, expected):
    assert m.mean(np.array(values)) == expected


def test_counts_at_or_above_include_scores_equal_to_the_threshold():
    scores = np.array([0.5, 0.7, 0.9, 0.2, 0.5])
    relevant = np.array([1, 0, 1, 0, 0], dtype=bool)
    above, relevant_above = m.counts_at_or_above(scores, relevant, np.array([0.0, 0.5, 0.9, 1.0]))
    assert above.tolist() == [5, 4, 1, 0]
    assert relevant_above.tolist() == [2, 2, 1, 0]


def test_counts_at_or_above_ignore_minus_infinity_and_handle_no_scores():
    above, hits = m.counts_at_or_above(
        np.array([-np.inf, 0.3]), np.array([True, True]), np.array([0.0, 0.5])
    )
    assert above.tolist() == [1, 0] and hits.tolist() == [1, 0]
    above, hits = m.counts_at_or_above(np.array([]), np.array([], dtype=bool), np.array([0.0, 0.5]))
    assert above.tolist() == [0, 0] and hits.tolist() == [0, 0]
    with pytest.raises(ValueError):
        m.counts_at_or_above(np.array([0.1]), np.array([True]), np.array([0.5, 0.5]))


def test_threshold_sweep_and_best_f1_by_hand():
    # 2 queries, 4 relevant pairs in all; at t=0.5: 4 shown, 3 relevant; at t=0.8: 1 shown, 1 relevant.
    points = m.threshold_sweep(
        np.array([0.5, 0.8, 1.0]), np.array([4, 1, 0]), np.array([3, 1, 0]), 4, 2
    )
    first, second, last = points
    assert (first.precision, first.recall, first.mean_results) == (0.75, 0.75, 2.0)
    assert first.f1 == pytest.approx(0.75)
    assert (second.precision, second.recall) == (1.0, 0.25)
    assert second.f1 == pytest.approx(2 * 0.25 / 1.25)
    assert (last.precision, last.recall, last.f1, last.mean_results) == (0.0, 0.0, 0.0, 0.0)
    assert m.best_f1(points) == first


def test_best_f1_prefers_the_lower_threshold_among_equals_and_none_for_nothing():
    points = m.threshold_sweep(np.array([0.2, 0.4]), np.array([2, 2]), np.array([1, 1]), 2, 1)
    assert m.best_f1(points).threshold == 0.2
    assert m.best_f1([]) is None


def test_top_k_keeps_each_querys_best_scores_in_order():
    scores = np.array([[0.2, 0.9, 0.5, 0.7], [0.1, 0.3, 0.3, -np.inf]])
    relevant = np.array([[1, 0, 1, 0], [1, 1, 0, 1]], dtype=bool)
    best, flags = m.top_k(scores, relevant, 2)
    assert best.tolist() == [[0.9, 0.7], [0.3, 0.3]]
    assert flags.tolist() == [[False, False], [False, True]]  # a tie: the non-relevant first
    assert m.top_k(scores, relevant, 10)[0].shape == (2, 4)  # k above the candidates: all


def test_top_k_sweep_by_hand():
    # 2 queries, k = 2. Query 1 keeps 0.9 (relevant) and 0.6; query 2 keeps 0.4 and 0.3 (relevant).
    scores = np.array([[0.9, 0.6, 0.1], [0.4, 0.3, 0.2]])
    relevant = np.array([[1, 0, 0], [0, 1, 0]], dtype=bool)
    thresholds = np.array([0.0, 0.5, 0.95])
    best, flags = m.top_k(scores, relevant, 2)
    shown, relevant_shown = m.counts_at_or_above(best, flags, thresholds)
    with_any = m.counts_at_or_above(best[:, 0], np.ones(2, bool), thresholds)[0]
    low, mid, high = m.top_k_sweep(thresholds, shown, relevant_shown, with_any, 2)
    assert (low.shown, low.relevant_share, low.none_share) == (2.0, 0.5, 0.0)
    assert (mid.shown, mid.relevant_share, mid.none_share) == (1.0, 0.5, 0.5)
    assert (high.shown, high.relevant_share, high.none_share) == (0.0, 0.0, 1.0)
    assert m.top_k_sweep(thresholds, shown * 0, shown * 0, with_any * 0, 0)[0].none_share == 0.0


def test_the_top_k_view_of_leave_one_out_by_hand():
    # a1 and a2 alike, b1 and b2 alike, the pairs far apart: with k = 1 each query shows its twin.
    vectors = unit([1, 0], [0.96, 0.28], [0, 1], [0.28, 0.96])
    result = evaluate_vectors(vectors, ["a", "a", "b", "b"], [1], top_k=1)
    at = {round(p.threshold, 3): p for p in result.top_k_sweep}
    assert result.top_k == 1
    assert (at[0.5].shown, at[0.5].relevant_share, at[0.5].none_share) == (1.0, 1.0, 0.0)
    assert (at[0.99].shown, at[0.99].none_share) == (0.0, 1.0)


# ---- leave-one-out over vectors ---------------------------------------------------------------


def unit(*rows) -> np.ndarray:
    vectors = np.array(rows, dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_leave_one_out_by_hand():
    # a1 and a2 point one way, b1 and b2 another; b2 leans towards the a's. c is alone; x unlabelled.
    vectors = unit([1, 0, 0], [0.9, 0.1, 0], [0, 1, 0], [0.8, 0.6, 0], [0, 0, 1], [0.7, 0, 0.7])
    labels = ["a", "a", "b", "b", "c", None]
    result = evaluate_vectors(vectors, labels, [1, 2], model="toy")
    assert (result.queries, result.skipped_singletons, result.unlabelled) == (4, 1, 1)
    # Nearest other item: a1->a2 (hit), a2->a1 (hit), b1->b2 (hit), b2->a2 (miss).
    assert result.precision[1] == pytest.approx(3 / 4)
    assert result.recall[1] == pytest.approx(3 / 4)
    # b2 ranks a2, a1, b1: its AP is 1/3; every other query's is 1.
    assert result.map == pytest.approx((1 + 1 + 1 + 1 / 3) / 4)
    worst = result.per_label[0]
    assert (worst.label, worst.items, worst.average_precision) == (
        "b",
        2,
        pytest.approx((1 + 1 / 3) / 2),
    )
    assert [score.label for score in result.per_label] == ["b", "a"]


def test_chunking_does_not_change_the_result(monkeypatch):
    rng = np.random.default_rng(3)
    vectors = unit(*rng.normal(size=(40, 8)))
    labels = [f"l{i % 5}" for i in range(40)]
    whole = evaluate_vectors(vectors, labels, [1, 5])
    monkeypatch.setattr(quality, "CHUNK_ROWS", 7)
    chunked = evaluate_vectors(vectors, labels, [1, 5])
    assert chunked.to_dict() == whole.to_dict()


def test_identical_vectors_score_as_badly_as_their_ties_allow():
    vectors = unit(*[[1.0, 1.0]] * 4)  # a degenerate model: everything alike
    result = evaluate_vectors(vectors, ["a", "a", "b", "b"], [1])
    assert result.precision[1] == 0.0
    assert result.best.threshold == 0.0  # one block of ties: every threshold up to 1 shows all


def test_nothing_to_evaluate_gives_zeros():
    result = evaluate_vectors(unit([1, 0], [0, 1]), ["a", None], [1, 5])
    assert (result.queries, result.precision[1], result.map, result.per_label) == (0, 0.0, 0.0, [])


# ---- labels ---------------------------------------------------------------------------------------


def test_labels_file_and_category_fallback(tmp_path, catalog_path):
    path = tmp_path / "labels.csv"
    path.write_text("\ufeffID,Label\np1,round\np3,round\np4,\n", encoding="utf-8")
    labels = load_labels(path)
    assert labels == {"p1": "round", "p3": "round"}
    products = list(load_catalog(catalog_path).products.values())[:4]
    assert product_labels(products, labels) == ["round", None, "round", None]
    assert product_labels(products, None) == ["toys", "toys", "toys", "clothes"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("id,name\n1,x\n", "must have the columns id,label"),
        ("id,label\n1,x\n1,y\n", "row 3: id '1' has two labels"),
    ],
)
def test_bad_labels_files_are_refused(tmp_path, text, message):
    path = tmp_path / "labels.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_labels(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_labels(tmp_path / "none.csv")


# ---- the command ------------------------------------------------------------------------------


def test_evaluate_command_prints_tables_and_writes_json_and_figure(runner, tmp_path):
    out = tmp_path / "report"
    result = runner.invoke(args=["evaluate", "--k", "1,3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "7 queries (0 alone in their label, 0 unlabelled" in result.output
    assert "P@1" in result.output and "mAP@3" in result.output and "worst labels" in result.output
    assert "random-init weights" in result.output
    document = json.loads((out / "evaluation.json").read_text())
    (model,) = document["models"]
    assert model["model"] == RANDOM_TEST_MODEL
    assert set(model["precision"]) == {"1", "3"} and len(model["sweep"]) == len(quality.THRESHOLDS)
    assert (out / "evaluation.png").read_bytes().startswith(b"\x89PNG")
    # The top-k view, with the served default (SIMILARITY_THRESHOLD 0.5 here) marked.
    assert "what a shopper sees of the top 12" in result.output
    assert model["top_k"] == 12 and len(model["top_k_sweep"]) == len(quality.THRESHOLDS)
    assert re.search(r"^0\.500 <\s+\d+\.\d\s+\d+\.\d%\s+\d+\.\d%$", result.output, re.M)
    smaller = runner.invoke(args=["evaluate", "--top-k", "3", "--out", str(out)])
    assert "what a shopper sees of the top 3" in smaller.output


def test_the_figure_zooms_to_where_the_scores_are():
    from backend.quality.report import score_range

    rng = np.random.default_rng(0)
    # An untrained-like model: every cosine between 0.97 and 1.
    vectors = unit(*(np.ones((30, 16)) + 0.05 * rng.normal(size=(30, 16))))
    result = evaluate_vectors(vectors, [f"l{i % 3}" for i in range(30)], [1])
    low, high = score_range([result])
    assert 0.9 <= low < high <= 1.0
    assert score_range([]) == (0.0, 1.0)


def test_evaluate_other_models_use_their_own_index(runner, app_config, tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text("id,label\np1,red\np2,red\np3,other\np7,other\n", encoding="utf-8")
    assert runner.invoke(args=["index"]).exit_code == 0
    served = app_config["index_path"]
    written = served.stat().st_mtime_ns
    result = runner.invoke(
        args=[
            "evaluate",
            "--labels",
            str(labels),
            "--model",
            "color_histogram",
            "--model",
            "resnet18",
            "--out",
            str(tmp_path / "report"),
        ]
    )
    assert result.exit_code == 0, result.output
    assert "4 queries (0 alone in their label, 3 unlabelled" in result.output
    assert HISTOGRAM in result.output and RANDOM_RESNET18 in result.output
    assert served.stat().st_mtime_ns == written  # the served index was not re-embedded
    sibling = read_index(served.with_name("index-color_histogram.csv"))
    assert {entry.model for entry in sibling.entries} == {HISTOGRAM}


def test_evaluate_bad_input_exits_with_a_message(runner, tmp_path):
    missing = runner.invoke(args=["evaluate", "--labels", str(tmp_path / "nope.csv")])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    bad_k = runner.invoke(args=["evaluate", "--k", "0,5"])
    assert bad_k.exit_code == 2 and "at least 1" in bad_k.output
    unknown = runner.invoke(args=["evaluate", "--model", "vgg11"])
    assert unknown.exit_code == 2 and "MODEL='vgg11' is unknown" in unknown.output


BENCH_LABELS = Path(__file__).resolve().parents[3] / "shared" / "bench" / "labels.csv"


@pytest.mark.skipif(
    not BENCH_LABELS.is_file(), reason="the benchmark catalog (../shared/bench) is absent"
)
def test_the_benchmark_labels_file_reads():
    labels = load_labels(BENCH_LABELS)
    assert len(labels) == 6308 and len(set(labels.values())) == 89
