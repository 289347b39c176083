"""Ground-truth relevance labels: LABELS.csv (`id,label`), or each product's category."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

from ..catalog import Product
from ..errors import ConfigError


def load_labels(path: Path) -> dict[str, str]:
    """Read `id,label` rows; an empty label leaves the product unlabelled."""
    if not path.is_file():
        raise ConfigError(
            f"labels file {path} does not exist; give a CSV with the columns id,label"
        )
    labels: dict[str, str] = {}
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        columns = [name.strip().lower() for name in reader.fieldnames or []]
        if "id" not in columns or "label" not in columns:
            raise ConfigError(f"{path.name} must have the columns id,label (found {columns})")
        reader.fieldnames = columns
        for row in reader:
            product_id, label = (row["id"] or "").strip(), (row["label"] or "").strip()
            if product_id in labels and labels[product_id] != label:
                raise ConfigError(
                    f"{path.name} row {reader.line_num}: id {product_id!r} has two labels "
                    f"({labels[product_id]!r} and {label!r})"
                )
            if product_id and label:
                labels[product_id] = label
    return labels


def product_labels(products: Iterable[Product], labels: dict[str, str] | None) -> list[str | None]:
    """One label per product, in order: from `labels` when given, else the category; None if none."""
    if labels is None:
        return [product.category or None for product in products]
    return [labels.get(product.id) for product in products]
