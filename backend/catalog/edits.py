"""Live catalog edits: validate one product's fields, and rewrite its row of products.csv.

products.csv stays the record: every other row and column is kept as it was, and the file is
rewritten atomically. `SearchService` writes index.csv after it and updates the vector store.
"""

from __future__ import annotations

import contextlib
import csv
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..atomic import atomic_writer
from ..errors import CatalogNotWritable, InvalidInput, NotFound
from ..parsing import MAX_TEXT_CHARS, MAX_URL_CHARS, parse_text
from .csv_format import ENCODING_NAMES, RESAVE_AS_UTF8, CsvFormat, detect_format
from .prices import check_price, format_price, parse_price
from .products import Catalog, Product, check_image_url

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
        raise InvalidInput(
            f"unknown field(s) {', '.join(unknown)}; editable: {', '.join(EDITABLE)}"
        )
    given = {name: fields[name] for name in EDITABLE if fields.get(name) is not None}
    for name in ("name", "category", "image_url"):
        if name in given:
            limit = MAX_URL_CHARS if name == "image_url" else MAX_TEXT_CHARS
            given[name] = parse_text(given[name], name, limit)
    image_url = given.get("image_url", existing.image_url if existing else "")
    if not image_url:
        raise InvalidInput(
            f"product {product_id!r} needs an image: an image_url or an uploaded file"
        )
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
    return parse_price(raw.strip()) if isinstance(raw, str) else check_price(float(raw))


@contextlib.contextmanager
def catalog_writes() -> Iterator[None]:
    """Turn a failed write of the catalog's files into CatalogNotWritable (a clear 500)."""
    try:
        yield
    except OSError as error:
        reason = (error.strerror or str(error)).lower()
        where = error.filename or "the catalog folder"
        raise CatalogNotWritable(f"cannot write the catalog: {reason}: {where}") from error


def write_catalog_row(path: Path, product_id: str, product: Product | None) -> None:
    """Replace one product's row in products.csv (append if new; delete it when product is None).

    The file keeps its encoding, separator and line ending.
    """
    csv_format = detect_format(path)
    with csv_format.open(path) as handle:
        rows = list(csv.reader(handle, delimiter=csv_format.delimiter))
    preamble = [rows.pop(0)] if csv_format.separator_line else []
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
    if product is not None:
        _check_encodable(product, csv_format, path)
    with atomic_writer(
        path, "w", encoding=csv_format.encoding, errors="surrogateescape", newline=""
    ) as handle:
        writer = csv.writer(
            handle, delimiter=csv_format.delimiter, lineterminator=_line_ending(path)
        )
        writer.writerows([*preamble, rows[0], *body])


def _check_encodable(product: Product, csv_format: CsvFormat, path: Path) -> None:
    """Refuse text the file's encoding cannot hold (Windows-1252 has "é" and "€" but no "ő"),
    before anything is written: the file stays as it was."""
    text = "".join((product.id, product.name, product.category, product.image_url))
    try:
        text.encode(csv_format.encoding)
    except UnicodeEncodeError as error:
        raise InvalidInput(
            f"product {product.id!r}: {text[error.start : error.end]!r} cannot be written to "
            f"{path.name}, which is {ENCODING_NAMES[csv_format.encoding]}; {RESAVE_AS_UTF8}"
        ) from None


def _line_ending(path: Path) -> str:
    """Keep the file's own line ending, so an edit changes only the edited row."""
    with path.open("rb") as handle:
        first = handle.readline()
    return "\r\n" if first.endswith((b"\r\n", b"\r\x00\n", b"\x00\r\x00\n")) else "\n"


def _row_for(product: Product, header: list[str], old: list[str]) -> list[str]:
    cells = (old + [""] * len(header))[: len(header)]  # other columns keep their values
    price = "" if product.price is None else format_price(product.price)
    values = {
        "id": product.id,
        "name": product.name,
        "category": product.category,
        "price": price,
        "image_url": product.image_url,
    }
    for column, name in enumerate(header):
        if name in values:
            cells[column] = values[name]
    return cells


def with_product(catalog: Catalog, product: Product) -> Catalog:
    return replace(catalog, products={**catalog.products, product.id: product})


def without_product(catalog: Catalog, product_id: str) -> Catalog:
    if product_id not in catalog.products:
        raise NotFound(f"product {product_id!r} does not exist")
    return replace(catalog, products={k: v for k, v in catalog.products.items() if k != product_id})
