"""products.csv -> frozen Product records, with a report of the rows that were skipped."""

from __future__ import annotations

import csv
import functools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import ConfigError

REQUIRED_COLUMNS = ("id", "name", "category", "price", "image_url")
MAX_FIELD_CHARS = 4096
_UNDECODABLE = re.compile("[\udc80-\udcff]")  # bytes that surrogateescape could not decode
# NUL, line breaks, escapes: no field holds them, and a NUL in a path stops every file call.
_CONTROL = re.compile("[\x00-\x1f\x7f]")
# http(s) with a plain host name: accepted without urlsplit, which is slow at 50k rows. Anything
# else (user info, IPv6, odd characters) goes through urlsplit as before.
_PLAIN_HTTP_URL = re.compile(
    r"https?://[a-z0-9.-]+(?::[0-9]+)?(?:[/?#]|\Z)", re.IGNORECASE | re.ASCII
)


@dataclass(frozen=True)
class Product:
    id: str
    name: str
    category: str
    price: float | None
    image_url: str

    @property
    def is_remote(self) -> bool:
        return self.image_url.lower().startswith(("http://", "https://"))


@dataclass(frozen=True)
class SkippedRow:
    row: int  # line number in the file, header = 1
    reason: str

    def __str__(self) -> str:
        return f"row {self.row}: {self.reason}"


@dataclass
class Catalog:
    path: Path
    products: dict[str, Product] = field(default_factory=dict)
    skipped: list[SkippedRow] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.products)

    def get(self, product_id: str) -> Product | None:
        return self.products.get(product_id)

    @functools.cached_property
    def categories(self) -> list[str]:
        # Asked for on every page and search; a catalog is not changed once loaded (edits
        # build a new one), so computing it once is safe.
        return sorted({p.category for p in self.products.values() if p.category})


def load_catalog(path: Path) -> Catalog:
    """Read products.csv strictly; bad rows are skipped and reported, never fatal."""
    if not path.is_file():
        raise ConfigError(f"catalog {path} does not exist; set CATALOG_PATH to your products.csv")
    catalog = Catalog(path=path)
    # utf-8-sig strips a BOM when present; newline="" lets csv handle quoted line breaks;
    # surrogateescape keeps undecodable bytes visible so just their row is refused.
    with path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
        reader = csv.reader(handle, strict=True)
        header = _read_header(reader, path)
        try:
            for cells in reader:
                _add_row(catalog, header, cells, reader.line_num)
        except csv.Error as error:
            catalog.skipped.append(
                SkippedRow(reader.line_num, f"unreadable CSV ({error}); rest of the file ignored")
            )
    return catalog


def _read_header(reader: csv.reader, path: Path) -> list[str]:
    try:
        header = [name.strip().lower() for name in next(reader)]
    except (StopIteration, csv.Error):
        raise ConfigError(f"{path.name} has no readable header row") from None
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    if missing:
        raise ConfigError(f"{path.name} is missing column(s): {', '.join(missing)}")
    return header


def _add_row(catalog: Catalog, header: list[str], cells: list[str], line: int) -> None:
    if not any(cell.strip() for cell in cells):
        return  # blank line
    try:
        product = parse_row(header, cells, catalog.products)
    except ValueError as error:
        catalog.skipped.append(SkippedRow(line, str(error)))
    else:
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


def parse_price(text: str) -> float | None:
    if not text:
        return None
    try:
        price = float(text)
    except ValueError:
        raise ValueError(f"price {text!r} is not a number") from None
    if not math.isfinite(price) or price < 0:
        raise ValueError(f"price {text!r} must be a non-negative number")
    return price


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
    # A one-letter "scheme" is a Windows drive: an absolute path, so it leaves the folder.
    if len(parts.scheme) == 1:
        raise ValueError(f"image_url {url!r} leaves the catalog folder")
    if parts.scheme:
        raise ValueError(f"image_url {url!r}: scheme '{parts.scheme}' is not allowed (http/https)")
    return _check_relative(url)


def _check_relative(url: str) -> str:
    # Strings, not pathlib (every catalog row passes here): an absolute path starts with a
    # separator, and ".." is a part exactly when it is one of the "/"-separated pieces.
    if url.startswith(("/", "\\")) or ".." in url.replace("\\", "/").split("/"):
        raise ValueError(f"image_url {url!r} leaves the catalog folder")
    return url
