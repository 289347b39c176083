"""Shopper photos to try: `examples.csv` next to products.csv, shown on the home page.

Columns `id,product_id,image_url`: `image_url` is a path relative to the catalog folder (or the
static folder), like a product's; `product_id` names the catalog product the photo shows, if
any. A missing file means no examples; a bad row is skipped with a warning: the home page never
fails because of this file.
"""

from __future__ import annotations

import csv
import logging
import re
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

FILENAME = "examples.csv"
MAX_EXAMPLES = 24
MAX_FILE_BYTES = 64 * 1024
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")


@dataclass(frozen=True)
class Example:
    id: str
    product_id: str | None
    image_url: str  # relative to the catalog folder or the static folder


def examples_path(catalog_path: Path) -> Path:
    return catalog_path.with_name(FILENAME)


def load_examples(catalog_path: Path) -> list[Example]:
    """The shopper photos listed next to the catalog, at most MAX_EXAMPLES; [] when none."""
    path = examples_path(catalog_path)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            log.warning("%s is over %d bytes; no examples shown", path, MAX_FILE_BYTES)
            return []
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as error:
        log.warning("%s cannot be read (%s); no examples shown", path, error)
        return []
    examples: dict[str, Example] = {}
    for number, row in enumerate(csv.DictReader(text.splitlines()), start=2):
        example = _parse(row)
        if example is None or example.id in examples:
            log.warning("%s row %d skipped: needs a unique id and a local image_url", path, number)
            continue
        examples[example.id] = example
    return list(examples.values())[:MAX_EXAMPLES]


def _parse(row: dict) -> Example | None:
    example_id = (row.get("id") or "").strip()
    image_url = (row.get("image_url") or "").strip()
    product_id = (row.get("product_id") or "").strip() or None
    if not _ID.match(example_id) or not image_url or "://" in image_url:
        return None
    return Example(example_id, product_id, image_url)
