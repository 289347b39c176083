"""The shopper-photo evaluation as a terminal table, a JSON file and a PNG figure."""

from __future__ import annotations

import io
import json
from pathlib import Path

from ..atomic import atomic_write_bytes
from .shopper import BAND_WIDTH, ShopperEvaluation


def format_shopper(result: ShopperEvaluation) -> str:
    found = ", ".join(
        f"{'P@1' if k == 1 else f'top-{k}'} {share:.3f}" for k, share in result.found_at.items()
    )
    lines = [
        f"{result.model}: {result.queries} query photos",
        f"own product found: {found}",
        f"MRR {result.mrr:.3f}; not in the top results at all: {result.unfound}",
        f"'0 matches' at the served threshold {result.threshold:.2f}: "
        f"{result.empty_at_threshold} of {result.queries}",
        f"\nreliability of the figure on the top {result.top_k} cards (threshold off):",
        format_bands(result),
    ]
    return "\n".join(lines)


def format_bands(result: ShopperEvaluation) -> str:
    rows = ["band     cards   right   fraction right"]
    for band in result.bands:
        if band.count:
            label = f"{band.low}-{band.low + BAND_WIDTH - 1}"
            rows.append(f"{label:>7}  {band.count:6d}  {band.right:6d}   {band.fraction_right:.3f}")
    return "\n".join(rows)


def write_shopper_json(path: Path, result: ShopperEvaluation, context: dict) -> None:
    document = {**context, "shopper": result.to_dict()}
    atomic_write_bytes(path, json.dumps(document, indent=2).encode("utf-8"))


def write_shopper_figure(path: Path, result: ShopperEvaluation) -> None:
    """Share found at each depth; the figure on the card against the fraction right."""
    from matplotlib.figure import Figure  # heavy: imported only when a figure is drawn

    figure = Figure(figsize=(11, 4.5), layout="constrained")
    found, reliable = figure.subplots(1, 2)
    ks = list(result.found_at)
    found.bar([f"top-{k}" for k in ks], [result.found_at[k] for k in ks])
    found.set_ylim(0, 1)
    found.set_title(f"Own product found ({result.queries} photos, MRR {result.mrr:.2f})")
    bands = [band for band in result.bands if band.count]
    centres = [band.low + BAND_WIDTH / 2 for band in bands]
    reliable.plot([0, 100], [0, 1], ":", color="grey", label="figure = chance")
    reliable.bar(
        centres, [b.fraction_right for b in bands], width=BAND_WIDTH * 0.9, label="fraction right"
    )
    for centre, band in zip(centres, bands, strict=True):
        reliable.annotate(
            str(band.count),
            (centre, band.fraction_right),
            ha="center",
            textcoords="offset points",
            xytext=(0, 3),
            fontsize="x-small",
        )
    reliable.set_xlim(0, 100)
    reliable.set_ylim(0, 1.05)
    reliable.set_xlabel("figure on the card")
    reliable.set_title("Reliability (cards per band above the bars)")
    reliable.legend(fontsize="x-small")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    atomic_write_bytes(path, buffer.getvalue())
