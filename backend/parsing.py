"""Parsing the values people type (a form field, a JSON value, a catalog cell): blank, one-line
text, finite numbers, whole numbers in a range, prices; refused with a message naming the field
as the API spells it and as the form labels it. A leaf: it imports nothing of the app but its
errors."""

from __future__ import annotations

import math
import re
from typing import Any

from .errors import InvalidInput

MAX_TEXT_CHARS = 200
MAX_URL_CHARS = 2048
_SURROGATE = re.compile("[\ud800-\udfff]")
# The fields as the search form labels them, for messages to people (the API names parameters);
# a field not listed is named as the API spells it.
LABELS = {
    "k": "the number of results",
    "threshold": "the minimum similarity",
    "category": "the category",
    "min_price": "the lowest price",
    "max_price": "the highest price",
    "image_url": "the image URL",
    "query": "the earlier search",
}


def parse_int(raw: Any, name: str, default: int, low: int, high: int) -> int:
    if blank(raw):
        return default
    number = parse_number(raw, name)
    if not number.is_integer() or not low <= number <= high:
        raise invalid(name, raw, f"must be a whole number from {low} to {high}")
    return int(number)


def parse_price(raw: Any, name: str, default: float | None) -> float | None:
    if blank(raw):
        return default
    number = parse_number(raw, name)
    if number < 0:
        raise invalid(name, raw, "must be a number of at least 0")
    return number


def parse_text(raw: Any, name: str, max_chars: int) -> str:
    """A one-line text value: a string, stripped, bounded, without control characters."""
    if not isinstance(raw, str):
        raise _unfit(name, "must be a string")
    text = raw.strip()
    if len(text) > max_chars:
        raise _unfit(name, f"is longer than {max_chars} characters")
    if any(ord(char) < 32 or ord(char) == 127 for char in text):
        raise _unfit(name, "contains control characters")
    if _SURROGATE.search(text):
        # JSON can spell a lone surrogate ("\udcff"): it is no character, and UTF-8 cannot hold it.
        raise _unfit(name, "contains an invalid character (a lone UTF-16 surrogate)")
    return text


def parse_number(raw: Any, name: str) -> float:
    """A finite number from a JSON number or a decimal string; anything else is refused."""
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise InvalidInput(f"{name} must be a number", plain=f"{_label(name)} must be a number")
    try:
        number = float(raw)
    except (ValueError, OverflowError):
        raise invalid(name, raw, "is not a number") from None
    if not math.isfinite(number):
        raise InvalidInput(
            f"{name} must be a finite number", plain=f"{_label(name)} must be a finite number"
        )
    return number


def invalid(name: str, raw: Any, problem: str) -> InvalidInput:
    """A bad value, named as the API spells it ("k=0 must be...") and as the form labels it."""
    return InvalidInput(
        f"{name}={raw!s:.20} {problem}", plain=f"{_label(name)} ({raw!s:.20}) {problem}"
    )


def _unfit(name: str, problem: str) -> InvalidInput:
    return InvalidInput(f"{name} {problem}", plain=f"{_label(name)} {problem}")


def _label(name: str) -> str:
    label = LABELS.get(name, name)
    return label[0].upper() + label[1:]


def blank(raw: Any) -> bool:
    return raw is None or (isinstance(raw, str) and not raw.strip())
