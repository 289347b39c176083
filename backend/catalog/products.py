"""products.csv -> frozen Product records, with a report of the rows that were skipped."""

from __future__ import annotations

import csv
import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import ConfigError
from .csv_format import REQUIRED_COLUMNS, CsvFormat, detect_format, encoding_advice
from .prices import parse_price

__all__ = ["REQUIRED_COLUMNS", "Catalog", "Product", "SkippedRow", "load_catalog", "parse_price"]
MAX_FIELD_CHARS = 4096
_UNDECODABLE = re.compile("[\udc80-\udcff]")  # bytes that surrogateescape could not decode
# NUL, line breaks, escapes: no field holds them, and a NUL in a path stops every file call.
_CONTROL = re.compile("[\x00-\x1f\x7f]")
# http(s) with a plain host name: accepted without urlsplit, which is slow at 50k rows. Anything
# else (user info, IPv6, odd characters) goes through urlsplit as before.
_PLAIN_HTTP_URL = re.compile(
    r"https?://[a-z0-9.-]+(?::[0-9]+)?(?:[/?#]|\Z)", re.IGNORECASE | re.ASCII
)


@dataclass(frozen=True, slots=True)  # slots: 50k products take ~6 MB less
class Product:
    id: str
    name: str
    category: str
    price: float | None
    image_url: str

    @property
    def is_remote(self) -> bool:
        """Downloaded into the cache: an http(s) URL, or an object in the shop's S3 bucket."""
        return self.image_url.lower().startswith(("http://", "https://", "s3://"))

    @property
    def is_s3(self) -> bool:
        return self.image_url[:5].lower() == "s3://"


@dataclass(frozen=True)
class SkippedRow:
    row: int  # line number in the file, header = 1
    reason: str
    # Lost to the file's encoding (bytes that are not text in it), not to what the row says.
    undecodable: bool = False

    def __str__(self) -> str:
        return f"row {self.row}: {self.reason}"


@dataclass
class Catalog:
    path: Path
    products: dict[str, Product] = field(default_factory=dict)
    skipped: list[SkippedRow] = field(default_factory=list)
    csv_format: CsvFormat = field(default_factory=CsvFormat)

    def __len__(self) -> int:
        return len(self.products)

    def get(self, product_id: str) -> Product | None:
        return self.products.get(product_id)

    @functools.cached_property
    def categories(self) -> list[str]:
        # Asked for on every page and search; a catalog is not changed once loaded (edits
        # build a new one), so computing it once is safe.
        return sorted({p.category for p in self.products.values() if p.category})

    @property
    def undecodable_rows(self) -> int:
        """How many rows were lost to the file's encoding: the file needs re-saving."""
        return sum(row.undecodable for row in self.skipped)

    @functools.cached_property
    def decoding_advice(self) -> str:
        """Why rows with undecodable bytes were refused, and the fix (worked out once)."""
        return encoding_advice(self.path, self.csv_format)


def load_catalog(path: Path, image_base: str | None = None) -> Catalog:
    """Read products.csv strictly; bad rows are skipped and reported, never fatal.

    The file may be UTF-8 (with or without a BOM), UTF-16 with a BOM or Windows-1252 (when it is
    not UTF-8 and reads cleanly as such, see `csv_format`), separated by commas,
    semicolons or tabs: the header, whose columns are known, tells which. `image_base` (a
    catalog read from s3://bucket/folder/) prefixes the relative image paths.
    """
    if not path.is_file():
        raise ConfigError(f"catalog {path} does not exist; set CATALOG_PATH to your products.csv")
    csv_format = detect_format(path)
    catalog = Catalog(path=path, csv_format=csv_format)
    with csv_format.open(path) as handle:
        reader = csv.reader(handle, delimiter=csv_format.delimiter, strict=True)
        header = _read_header(reader, path, csv_format)
        try:
            for cells in reader:
                _add_row(catalog, header, cells, reader.line_num, image_base)
        except csv.Error as error:
            catalog.skipped.append(
                SkippedRow(reader.line_num, f"unreadable CSV ({error}); rest of the file ignored")
            )
    return catalog


def _read_header(reader: Iterator[list[str]], path: Path, csv_format: CsvFormat) -> list[str]:
    try:
        header = [name.strip().lower() for name in next(reader)]
        if csv_format.separator_line:
            header = [name.strip().lower() for name in next(reader)]
    except (StopIteration, csv.Error):
        raise ConfigError(f"{path.name} has no readable header row") from None
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    if missing:
        raise ConfigError(
            f"{path.name} is missing column(s): {', '.join(missing)} (read as "
            f"{csv_format.description}; the header row must name {', '.join(REQUIRED_COLUMNS)})"
        )
    return header


def _add_row(
    catalog: Catalog, header: list[str], cells: list[str], line: int, image_base: str | None
) -> None:
    if not any(cell.strip() for cell in cells):
        return  # blank line
    try:
        product = parse_row(header, cells, catalog.products)
    except ValueError as error:
        # Only on the error path: rows are many.
        if _UNDECODABLE.search("\n".join(cells)):
            catalog.skipped.append(SkippedRow(line, catalog.decoding_advice, undecodable=True))
        else:
            catalog.skipped.append(SkippedRow(line, str(error)))
        return
    if image_base is not None and not product.is_remote:
        product = replace(product, image_url=image_base + product.image_url)
    catalog.products[product.id] = product


def parse_row(header: list[str], cells: list[str], seen: dict[str, Product]) -> Product:
    """Turn one CSV row into a Product, or raise ValueError saying why it is unusable."""
    if len(cells) != len(header):
        raise ValueError(f"has {len(cells)} fields, expected {len(header)}")
    row = dict(zip(header, map(str.strip, cells), strict=True))
    # One pass over the joined row, not one per field: this runs for every catalog row.
    if _UNDECODABLE.search("\n".join(cells)):
        raise ValueError("is not valid UTF-8 text")
    if _CONTROL.search("".join(row.values())):
        raise ValueError("a field contains control characters (such as NUL or a line break)")
    if max(map(len, row.values())) > MAX_FIELD_CHARS:
        raise ValueError(f"a field is longer than {MAX_FIELD_CHARS} characters")
    product_id = row["id"]
    if not product_id:
        raise ValueError("empty id")
    if product_id in seen:
        raise ValueError(f"duplicate id {product_id!r}")
    return Product(
        id=product_id,
        name=row["name"] or product_id,
        category=row["category"],
        price=parse_price(row["price"]),
        image_url=check_image_url(row["image_url"]),
    )


def check_image_url(url: str) -> str:
    """Accept an http(s) URL or a relative path that stays inside its folder (checked again on use)."""
    if not url:
        raise ValueError("empty image_url")
    if _PLAIN_HTTP_URL.match(url):
        return url
    # Without a colon there is no scheme: a relative path (urlsplit is the slow part at 50k rows).
    parts = urlsplit(url) if ":" in url else None
    if parts is None:
        return _check_relative(url)
    if parts.scheme.lower() in ("http", "https"):
        if not parts.hostname:
            raise ValueError(f"image_url {url!r} has no host")
        return url
    if parts.scheme.lower() == "s3":
        if not parts.netloc or not parts.path.strip("/") or url.endswith("/"):
            raise ValueError(f"image_url {url!r} must name an object: s3://bucket/key")
        return url
    # A one-letter "scheme" is a Windows drive: an absolute path, so it leaves the folder.
    if len(parts.scheme) == 1:
        raise ValueError(f"image_url {url!r} leaves the catalog folder")
    if parts.scheme:
        raise ValueError(
            f"image_url {url!r}: scheme '{parts.scheme}' is not allowed (http, https or s3)"
        )
    return _check_relative(url)


def _check_relative(url: str) -> str:
    # Strings, not pathlib (every catalog row passes here): an absolute path starts with a
    # separator, and ".." is a part exactly when it is one of the "/"-separated pieces.
    if url.startswith(("/", "\\")) or ".." in url.replace("\\", "/").split("/"):
        raise ValueError(f"image_url {url!r} leaves the catalog folder")
    return url
