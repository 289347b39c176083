"""A products.csv from the photos in a bucket: one product per image object under a prefix.

The id is the key below the prefix without its extension (`milk/oat-milk_1l`), the name is read
from the file name (`Oat milk 1l`), the category is the first folder below the prefix (`milk`,
empty for photos right under it), the price is left empty for the shop to fill in.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from ..atomic import atomic_writer
from .products import REQUIRED_COLUMNS, Product

_SEPARATORS = re.compile(r"[-_.\s]+")


def products_from_keys(bucket: str, prefix: str, keys: Iterable[str]) -> list[Product]:
    """One product per key under prefix, in key order; a repeated id keeps its extension."""
    products: dict[str, Product] = {}
    for key in sorted(keys):
        relative = PurePosixPath(key[len(prefix) :])
        product_id = str(relative.with_suffix(""))
        if product_id in products or not relative.stem:
            product_id = str(relative)  # photo.jpg next to photo.png
        folders = relative.parts[:-1]
        products[product_id] = Product(
            id=product_id,
            name=readable_name(relative.stem or relative.name),
            category=folders[0] if folders else "",
            price=None,
            image_url=f"s3://{bucket}/{key}",
        )
    return list(products.values())


def readable_name(stem: str) -> str:
    """`oat-milk_1l` -> `Oat milk 1l`."""
    words = _SEPARATORS.sub(" ", stem).strip()
    return words[:1].upper() + words[1:] if words else stem


def write_products_csv(path: Path, products: Iterable[Product]) -> int:
    """Write products.csv atomically; return how many rows it holds."""
    count = 0
    with atomic_writer(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(REQUIRED_COLUMNS)
        for product in products:
            price = "" if product.price is None else f"{product.price:g}"
            writer.writerow([product.id, product.name, product.category, price, product.image_url])
            count += 1
    return count
