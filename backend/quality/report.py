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
        [
            score.label,
            str(score.items),
            *[f"{score.precision[k]:.3f}" for k in result.ks],
            f"{score.average_precision:.3f}",
        ]
        for score in result.per_label[:limit]
    ]
    return _table(header, rows)


def _rows_to_show(points: list, marked: Sequence[float]) -> list:
    """Every 0.1 of threshold, plus the marked thresholds (best F1, the served default)."""
    wanted = {round(t, 3) for t in marked}
    return [
        p for n, p in enumerate(points) if n % SWEEP_STEP == 0 or round(p.threshold, 3) in wanted
    ]


def _mark(threshold: float, best: float | None, served: float | None) -> str:
    marks = ("*" if best is not None and round(threshold, 3) == round(best, 3) else "") + (
        "<" if served is not None and round(threshold, 3) == round(served, 3) else ""
    )
    return f"{threshold:.3f}" + (f" {marks}" if marks else "")


def format_sweep(result: Evaluation, served: float | None = None) -> str:
    """Precision, recall, F1 and mean results at or above every 0.1 of threshold, the best F1
    (*) and the served default (<)."""
    best = result.best.threshold if result.best else None
    points = _rows_to_show(result.sweep, [t for t in (best, served) if t is not None])
    header = ["threshold", "precision", "recall", "F1", "mean results"]
    rows = [
        [
            _mark(p.threshold, best, served),
            f"{p.precision:.3f}",
            f"{p.recall:.3f}",
            f"{p.f1:.3f}",
            f"{p.mean_results:.1f}",
        ]
        for p in points
    ]
    return _table(header, rows)


def format_top_k(result: Evaluation, served: float | None = None) -> str:
    """What a shopper sees of the top k at each threshold: shown, relevant share, none at all."""
    best = result.best.threshold if result.best else None
    points = _rows_to_show(result.top_k_sweep, [t for t in (best, served) if t is not None])
    header = ["threshold", f"shown of {result.top_k}", "relevant", "queries with none"]
    rows = [
        [
            _mark(p.threshold, best, served),
            f"{p.shown:.1f}",
            f"{p.relevant_share:.1%}",
            f"{p.none_share:.1%}",
        ]
        for p in points
    ]
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
    """P@K bars per model; precision and recall against the threshold; the top-k view."""
    from matplotlib.figure import Figure  # heavy: imported only when a figure is drawn

    figure = Figure(figsize=(17, 4.8), layout="constrained")
    bars, curves, seen = figure.subplots(1, 3)
    width = 0.8 / max(len(results), 1)
    for number, result in enumerate(results):
        positions = [i + number * width for i in range(len(result.ks))]
        line = bars.bar(
            positions, [result.precision[k] for k in result.ks], width, label=result.model
        )
        colour = line.patches[0].get_facecolor() if line.patches else None
        _draw_sweep(curves, result, colour)
        _draw_top_k(seen, result, colour)
    ks = results[0].ks if results else []
    bars.set_xticks(
        [i + width * (len(results) - 1) / 2 for i in range(len(ks))], [f"P@{k}" for k in ks]
    )
    bars.set_ylim(0, 1)
    bars.set_title("Precision@K (leave-one-out)")
    bars.legend(fontsize="x-small")
    low, high = score_range(results)
    for axes in (curves, seen):
        axes.set_xlim(low, high)
        axes.set_ylim(0, 1.02)
        axes.set_xlabel("cosine similarity threshold")
        axes.grid(alpha=0.3)
    curves.set_title("Pooled precision (solid) and recall (dashed)")
    top_k = results[0].top_k if results else 0
    seen.set_title(
        f"Top {top_k}: shown/{top_k} (solid), relevant (dashed), none (dotted)", fontsize="medium"
    )
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    atomic_write_bytes(path, buffer.getvalue())


def _draw_sweep(axes, result: Evaluation, colour) -> None:
    thresholds = [point.threshold for point in result.sweep]
    # Where nothing is shown precision is undefined (0.0 in the data): leave a gap, not a cliff.
    precision = [p.precision if p.mean_results > 0 else float("nan") for p in result.sweep]
    axes.plot(thresholds, precision, color=colour)
    axes.plot(thresholds, [p.recall for p in result.sweep], "--", color=colour)
    best = result.best
    if best is not None:
        axes.plot([best.threshold], [best.f1], "o", color=colour)
        axes.annotate(
            f"best F1 {best.f1:.2f} at {best.threshold:.2f}",
            (best.threshold, best.f1),
            textcoords="offset points",
            xytext=(6, 6),
            fontsize="x-small",
            color=colour,
        )


def _draw_top_k(axes, result: Evaluation, colour) -> None:
    points = result.top_k_sweep
    thresholds = [p.threshold for p in points]
    k = max(result.top_k, 1)
    axes.plot(thresholds, [p.shown / k for p in points], color=colour)
    shares = [p.relevant_share if p.shown > 0 else float("nan") for p in points]
    axes.plot(thresholds, shares, "--", color=colour)
    axes.plot(thresholds, [p.none_share for p in points], ":", color=colour)


def score_range(results: Sequence[Evaluation], margin: float = 0.02) -> tuple[float, float]:
    """The thresholds worth looking at: from where nearly every relevant pair is still above
    (recall 0.99) to where nearly nothing is shown (0.01 results per query), with a margin."""
    lows, highs = [], []
    for result in results:
        sweep = result.sweep
        if not sweep:
            continue
        above = [p.threshold for p in sweep if p.recall >= 0.99]
        lows.append(max(above) if above else sweep[0].threshold)
        empty = [p.threshold for p in sweep if p.mean_results <= 0.01]
        highs.append(min(empty) if empty else sweep[-1].threshold)
    if not lows:
        return 0.0, 1.0
    low, high = max(min(lows) - margin, 0.0), min(max(highs) + margin, 1.0)
    return (low, high) if high - low >= 0.05 else (max(high - 0.05, 0.0), min(low + 0.05, 1.0))
