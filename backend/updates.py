"""Live catalog edits: add, replace or delete one product without re-indexing the others.

The files stay the record: products.csv (every other row and column kept as it was) and
index.csv are each rewritten atomically, then the vector store is updated. A crash between
the steps leaves files that the next sync reconciles.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_write_bytes, atomic_writer
from .catalog import Catalog, Product, check_image_url, parse_price
from .errors import CatalogNotWritable, InvalidInput, NotFound
from .images import decode_image, image_format
from .store import Entry, IndexTable, read_index, write_index
from .web import MAX_TEXT_CHARS, MAX_URL_CHARS, parse_text

UPLOADS = "uploads"  # uploaded product photos, inside the catalog folder
EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif", "BMP": ".bmp"}
EDITABLE = ("name", "category", "price", "image_url")


def product_from_fields(
    product_id: str, fields: Mapping[str, Any], existing: Product | None
) -> Product:
    """Validate an add or replace; fields left out keep the existing product's values."""
    if product_id != product_id.strip():
        # Lookups use the id as given and the catalog strips it: " p1" would overwrite p1.
        raise InvalidInput(
            f"product id {product_id!r} starts or ends with spaces; send it without them"
        )
    if not product_id:
        raise InvalidInput("a product id must be 1-200 characters")
    parse_text(product_id, "product id", MAX_TEXT_CHARS)  # one CSV cell: no newline, no NUL
    unknown = sorted(set(fields) - set(EDITABLE))
    if unknown:
        raise InvalidInput(f"unknown field(s) {', '.join(unknown)}; editable: {', '.join(EDITABLE)}")
    given = {name: fields[name] for name in EDITABLE if fields.get(name) is not None}
    for name in ("name", "category", "image_url"):
        if name in given:
            limit = MAX_URL_CHARS if name == "image_url" else MAX_TEXT_CHARS
            given[name] = parse_text(given[name], name, limit)
    image_url = given.get("image_url", existing.image_url if existing else "")
    if not image_url:
        raise InvalidInput(f"product {product_id!r} needs an image: an image_url or an uploaded file")
    try:
        price = _price(given["price"]) if "price" in given else existing.price if existing else None
        image_url = check_image_url(image_url)
    except (ValueError, OverflowError) as error:
        raise InvalidInput(f"product {product_id!r}: {error}") from None
    name = given.get("name", existing.name if existing else "") or product_id
    category = given.get("category", existing.category if existing else "")
    return Product(product_id, name, category, price, image_url)


def _price(raw: Any) -> float | None:
    """A price sent as a number or as text ("" clears it); true/false and lists are not prices."""
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise InvalidInput("price must be a number, or a string holding one")
    return parse_price(raw.strip() if isinstance(raw, str) else repr(float(raw)))


def save_upload(catalog_folder: Path, data: bytes) -> str:
    """Keep an uploaded photo under the catalog folder (named by its content); return its image_url."""
    decode_image(data)  # refuse anything that is not an image we accept, before storing it
    extension = EXTENSIONS[image_format(data)]
    name = f"{UPLOADS}/{hashlib.sha256(data).hexdigest()[:32]}{extension}"
    path = catalog_folder / name
    if not path.is_file():
        with _writing():
            atomic_write_bytes(path, data)
    return name


def write_edit(
    catalog_path: Path,
    index_path: Path,
    product_id: str,
    product: Product | None,
    index_row: tuple[Entry, np.ndarray] | None,
) -> None:
    """Write one product's edit: products.csv (the record) first, then index.csv.

    If index.csv cannot be written, products.csv is put back as it was, so the files never
    disagree; either failure is a CatalogNotWritable.
    """
    with _writing():
        before = catalog_path.read_bytes()
        write_catalog_row(catalog_path, product_id, product)
        try:
            write_index_row(index_path, product_id, index_row)
        except OSError:
            atomic_write_bytes(catalog_path, before)
            raise


@contextlib.contextmanager
def _writing() -> Iterator[None]:
    try:
        yield
    except OSError as error:
        reason = (error.strerror or str(error)).lower()
        where = error.filename or "the catalog folder"
        raise CatalogNotWritable(f"cannot write the catalog: {reason}: {where}") from error


def write_catalog_row(path: Path, product_id: str, product: Product | None) -> None:
    """Replace one product's row in products.csv (append if new; delete it when product is None)."""
    with path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
        rows = list(csv.reader(handle))
    header = [name.strip().lower() for name in rows[0]]
    id_column = header.index("id")
    body, placed = [], False
    for row in rows[1:]:
        if len(row) > id_column and row[id_column].strip() == product_id:
            if product is not None and not placed:
                body.append(_row_for(product, header, row))
                placed = True
            continue  # later duplicates of the id go too: they would shadow the edit
        body.append(row)
    if product is not None and not placed:
        body.append(_row_for(product, header, [""] * len(header)))
    with atomic_writer(path, "w", encoding="utf-8", errors="surrogateescape", newline="") as handle:
        writer = csv.writer(handle, lineterminator=_line_ending(path))
        writer.writerow(rows[0])
        writer.writerows(body)


def _line_ending(path: Path) -> str:
    """Keep the file's own line ending, so an edit changes only the edited row."""
    with path.open("rb") as handle:
        first = handle.readline()
    return "\r\n" if first.endswith(b"\r\n") else "\n"


def _row_for(product: Product, header: list[str], old: list[str]) -> list[str]:
    cells = (old + [""] * len(header))[: len(header)]  # other columns keep their values
    price = "" if product.price is None else repr(product.price)
    values = {"id": product.id, "name": product.name, "category": product.category,
              "price": price, "image_url": product.image_url}  # fmt: skip
    for column, name in enumerate(header):
        if name in values:
            cells[column] = values[name]
    return cells


def write_index_row(index_path: Path, product_id: str, row: tuple[Entry, np.ndarray] | None) -> None:
    """Replace one product's row of index.csv (or remove it when row is None), atomically."""
    table = read_index(index_path)
    rows = [(entry, vector) for entry, vector in table.rows() if entry.id != product_id]
    if row is not None:
        rows.append(row)
    dim = row[1].shape[0] if row is not None else table.vectors.shape[1]
    write_index(index_path, IndexTable.from_rows(rows, dim))


def with_product(catalog: Catalog, product: Product) -> Catalog:
    return replace(catalog, products={**catalog.products, product.id: product})


def without_product(catalog: Catalog, product_id: str) -> Catalog:
    if product_id not in catalog.products:
        raise NotFound(f"product {product_id!r} does not exist")
    return replace(catalog, products={k: v for k, v in catalog.products.items() if k != product_id})
