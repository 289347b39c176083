"""Evaluation results as a terminal table, a JSON file and a PNG figure (written atomically)."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path

from ..atomic import atomic_write_bytes
from .leave_one_out import Evaluation

SWEEP_STEP = 100  # show every 100th threshold (0.0, 0.1, ...) in the terminal; the JSON has all


def format_summary(results: Sequence[Evaluation]) -> str:
    """One row per model: P@K, R@K, mAP@K for each K, then mAP and the best-F1 threshold."""
    ks = results[0].ks if results else []
    header = ["model", *[f"{m}@{k}" for k in ks for m in ("P", "R", "mAP")], "mAP", "best t", "F1"]
    rows = []
    for result in results:
        cells = [result.model]
        for k in ks:
            cells += [
                f"{result.precision[k]:.3f}",
                f"{result.recall[k]:.3f}",
                f"{result.map_at_k[k]:.3f}",
            ]
        best = result.best
        cells += [
            f"{result.map:.3f}",
            f"{best.threshold:.3f}" if best else "-",
            f"{best.f1:.3f}" if best else "-",
        ]
        rows.append(cells)
    return _table(header, rows)


def format_labels(result: Evaluation, limit: int) -> str:
    """The `limit` worst labels by mean AP, worst first."""
    header = ["label", "items", *[f"P@{k}" for k in result.ks], "AP"]
    rows = [
        [score.label, str(score.items), *[f"{score.precision[k]:.3f}" for k in result.ks],
         f"{score.average_precision:.3f}"]
        for score in result.per_label[:limit]
    ]  # fmt: skip
    return _table(header, rows)


def format_sweep(result: Evaluation) -> str:
    """Precision, recall, F1 and mean results at or above every 0.1 of threshold, and the best."""
    points = result.sweep[::SWEEP_STEP]
    if result.best is not None and result.best not in points:
        points = sorted([*points, result.best], key=lambda point: point.threshold)
    header = ["threshold", "precision", "recall", "F1", "mean results"]
    rows = [
        [f"{p.threshold:.3f}" + (" *" if p == result.best else ""), f"{p.precision:.3f}",
         f"{p.recall:.3f}", f"{p.f1:.3f}", f"{p.mean_results:.1f}"]
        for p in points
    ]  # fmt: skip
    return _table(header, rows)


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def write_json(path: Path, results: Sequence[Evaluation], context: dict) -> None:
    document = {**context, "models": [result.to_dict() for result in results]}
    atomic_write_bytes(path, json.dumps(document, indent=2).encode("utf-8"))


def write_figure(path: Path, results: Sequence[Evaluation]) -> None:
    """Left: P@K bars per model; right: precision and recall against the threshold."""
    from matplotlib.figure import Figure  # heavy: imported only when a figure is drawn

    figure = Figure(figsize=(12, 4.8), layout="constrained")
    bars, curves = figure.subplots(1, 2)
    width = 0.8 / max(len(results), 1)
    for number, result in enumerate(results):
        positions = [i + number * width for i in range(len(result.ks))]
        bars.bar(positions, [result.precision[k] for k in result.ks], width, label=result.model)
        thresholds = [point.threshold for point in result.sweep]
        # Where nothing is shown precision is undefined (0.0 in the data): leave a gap, not a cliff.
        precision = [p.precision if p.mean_results > 0 else float("nan") for p in result.sweep]
        line = curves.plot(thresholds, precision, label=f"{result.model} precision")
        colour = line[0].get_color()
        curves.plot(
            thresholds,
            [p.recall for p in result.sweep],
            "--",
            color=colour,
            label=f"{result.model} recall",
        )
        if result.best is not None:
            curves.plot([result.best.threshold], [result.best.f1], "o", color=colour)
    ks = results[0].ks if results else []
    bars.set_xticks(
        [i + width * (len(results) - 1) / 2 for i in range(len(ks))], [f"P@{k}" for k in ks]
    )
    bars.set_ylim(0, 1)
    bars.set_title("Precision@K (leave-one-out)")
    bars.legend(fontsize="small")
    curves.set_xlabel("cosine similarity threshold")
    curves.set_ylim(0, 1)
    curves.set_title("Precision and recall vs threshold (dot: best F1)")
    curves.legend(fontsize="x-small")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    atomic_write_bytes(path, buffer.getvalue())
