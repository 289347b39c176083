"""Ground-truth relevance labels: LABELS.csv (`id,label`), or each product's category."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..catalog import Product
from ..errors import ConfigError


def read_pairs(path: Path, first: str, second: str) -> Iterator[tuple[int, str, str]]:
    """(row number, first, second) of each row of a two-column CSV such as `id,label`, stripped;
    a missing file or column is a ConfigError naming both columns."""
    if not path.is_file():
        raise ConfigError(f"{path} does not exist; give a CSV with the columns {first},{second}")
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        columns = [name.strip().lower() for name in reader.fieldnames or []]
        if first not in columns or second not in columns:
            raise ConfigError(
                f"{path.name} must have the columns {first},{second} (found {columns})"
            )
        reader.fieldnames = columns
        for row in reader:
            yield reader.line_num, (row[first] or "").strip(), (row[second] or "").strip()


def load_labels(path: Path) -> dict[str, str]:
    """Read `id,label` rows; an empty label leaves the product unlabelled."""
    labels: dict[str, str] = {}
    for line, product_id, label in read_pairs(path, "id", "label"):
        if product_id in labels and labels[product_id] != label:
            raise ConfigError(
                f"{path.name} row {line}: id {product_id!r} has two labels "
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
