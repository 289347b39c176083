"""Search options and their bounds: the one definition that the form, the JSON API, the CLI, the
OpenAPI document and the Python API all read, and the parsing of them from request values (over
the generic parsers of `parsing.py`)."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from .errors import InvalidInput
from .parsing import (
    MAX_TEXT_CHARS,
    blank,
    invalid,
    parse_int,
    parse_number,
    parse_price,
    parse_text,
)

MIN_K, MAX_K = 1, 100
K_CHOICES = (6, 12, 24, 48)  # the form's menu (plus the default and whatever was asked for)
# A result is shown at threshold t when similarity >= t - MATCH_TOLERANCE: the cosine of an image
# with itself comes out of float32 maths as 0.99999994, and must pass the 100 % filter it is
# labelled for. `match_percent` rounds with the same tolerance, so label and filter agree.
MATCH_TOLERANCE = 1e-6
# An image compared with its own stored vector (float16 in index.csv) scores within 1e-5 of 1,
# not always exactly 1: such a match counts as 1, and only such a match reaches 100 %.
IDENTICAL = 0.99995
THRESHOLD_FORMS = (
    "a whole percent between 0 and 100 (e.g. 70), or a similarity between 0 and 1 (e.g. 0.7)"
)


@dataclass(frozen=True)
class OptionField:
    """One search option as clients see it: name, type, bounds and a description."""

    name: str
    kind: type
    description: str
    minimum: float | None = None
    maximum: float | None = None


OPTION_FIELDS = (
    OptionField("k", int, "How many nearest products to consider.", MIN_K, MAX_K),
    OptionField(
        "threshold",
        float,
        "Minimum match of the results shown, from 0 to 1 (0.1: a 10 % chance of being the "
        'product in the photo); for a model without a calibration, and for "more like '
        'this", a minimum cosine similarity.',
        0,
        1,
    ),
    OptionField("category", str, "Only products of this category (one of the catalog's)."),
    OptionField("min_price", float, "Only products at this price or more.", 0),
    OptionField("max_price", float, "Only products at this price or less.", 0),
)


@dataclass(frozen=True)
class SearchOptions:
    """Validated search options; `threshold` in [0, 1] is a minimum match (a chance) where the
    results carry one, else a minimum cosine similarity.

    Build them with `SearchService.options(...)` (the served defaults) or from request values
    with `parse_options`; an out-of-range value raises InvalidInput naming the option.
    """

    k: int = 12
    threshold: float = 0.70
    category: str | None = None
    min_price: float | None = None
    max_price: float | None = None

    def __post_init__(self) -> None:
        k, threshold = self.k, self.threshold
        if isinstance(k, bool) or not isinstance(k, int) or not MIN_K <= k <= MAX_K:
            raise invalid("k", k, f"must be a whole number from {MIN_K} to {MAX_K}")
        if not _is_number(threshold) or not 0.0 <= threshold <= 1.0:
            raise InvalidInput(
                f"threshold={threshold!s:.20} must be between 0 and 1",
                plain="The minimum similarity must be between 0 and 100 %",
            )
        for name in ("min_price", "max_price"):
            price = getattr(self, name)
            if price is not None and (not _is_number(price) or not 0 <= price < math.inf):
                raise invalid(name, price, "must be a number of at least 0")
        low, high = self.min_price, self.max_price
        if low is not None and high is not None and low > high:
            raise InvalidInput(
                f"min_price={low:g} must not be above max_price={high:g}",
                plain=f"The lowest price ({low:g}) is above the highest price ({high:g}): "
                "lower the first or raise the second",
            )

    def with_changes(self, **changes: Any) -> SearchOptions:
        """A copy with some options changed (and validated); unknown names are refused."""
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise InvalidInput(f"unknown search option(s): {', '.join(sorted(unknown))}")
        return replace(self, **changes) if changes else self

    @property
    def percent(self) -> int:
        return round(self.threshold * 100)

    def query_args(self) -> dict[str, Any]:
        """The options as page query parameters (threshold in percent), for shareable links."""
        args: dict[str, Any] = {"threshold": self.percent, "k": self.k}
        for name in ("category", "min_price", "max_price"):
            value = getattr(self, name)
            if value is not None:
                args[name] = f"{value:g}" if isinstance(value, float) else value
        return args


def parse_options(
    values: Mapping[str, Any],
    defaults: SearchOptions,
    categories: Collection[str],
    *,
    percent: bool,
) -> SearchOptions:
    """Read the options from request values (strings or JSON values); blank means the default.

    `percent`: the threshold is given from 0 to 100 (the pages) instead of 0 to 1 (API, CLI).
    """
    return SearchOptions(
        k=parse_int(values.get("k"), "k", defaults.k, MIN_K, MAX_K),
        threshold=parse_threshold(
            values.get("threshold"), _default_threshold(defaults, percent), percent
        ),
        category=parse_category(values.get("category"), categories, defaults.category),
        min_price=parse_price(values.get("min_price"), "min_price", defaults.min_price),
        max_price=parse_price(values.get("max_price"), "max_price", defaults.max_price),
    )


def _default_threshold(defaults: SearchOptions, percent: bool) -> float:
    # The pages' slider moves in whole percents: its default is one too.
    return defaults.percent / 100 if percent else defaults.threshold


def parse_threshold(raw: Any, default: float, percent: bool) -> float:
    """A threshold from 0 to 1; with `percent` (the pages), a whole percent from 0 to 100.

    On the percent scale a decimal from 0 to 1 is a similarity as the API writes it: a shared
    `?threshold=0.7` means 70 %, never 0.7 %. Anything else that is not a whole percent is refused.
    """
    if blank(raw):
        return default
    number = parse_number(raw, "threshold")
    if not percent:
        if not 0.0 <= number <= 1.0:
            raise InvalidInput(f"threshold={raw!s:.20} must be between 0 and 1")
        return number
    written = raw.strip() if isinstance(raw, str) else repr(raw)
    share = number * 100 if "." in written and 0.0 <= number <= 1.0 else number
    if not 0.0 <= share <= 100.0 or abs(share - round(share)) > 1e-9:
        raise InvalidInput(
            f"threshold={raw!s:.20} must be {THRESHOLD_FORMS}",
            plain=f"The minimum similarity ({raw!s:.20}) must be {THRESHOLD_FORMS}",
        )
    return round(share) / 100


def match_percent(similarity: float) -> int:
    """The similarity as the whole percent a result is labelled with; 100 only when identical.

    Rounded down (with MATCH_TOLERANCE), so a result labelled p % is shown at a threshold of
    p % and hidden above it: the label and the filter (`passes`) always agree.
    """
    return math.floor(_effective(similarity) * 100 + 100 * MATCH_TOLERANCE)


def passes(similarity: float, threshold: float) -> bool:
    """Whether a result of this similarity is shown at this threshold (see `match_percent`)."""
    return _effective(similarity) >= threshold - MATCH_TOLERANCE


def _effective(similarity: float) -> float:
    return 1.0 if similarity >= IDENTICAL else similarity


def parse_category(raw: Any, categories: Collection[str], default: str | None = None) -> str | None:
    if blank(raw):
        return default
    category = parse_text(raw, "category", MAX_TEXT_CHARS)
    if category not in categories:
        raise InvalidInput(
            f"category {category!r} is not in the catalog",
            plain=f"There is no category “{category:.50}” in the catalog; choose one from the list",
        )
    return category


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
