"""How a setting is declared once: its variable, default, bound and doc line, on its field.

A settings class declares each setting as a dataclass field, `name: type = setting(...)`; the
environment parsing, the validation of bounds, `ENV_VARS` and the tables of
docs/configuration.md are all read from those fields (`declared`), never written again.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import ConfigError

# A bound: (variable, value) -> why the value is refused, or None; never called on None.
Bound = Callable[[str, Any], str | None]
_KEY = "setting"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class Setting:
    """One setting as declared: the field it fills, its variable, default, bound and doc line."""

    variable: str
    doc: str
    # How the docs show the default when its value alone would not say it ("random per start").
    shown_default: str | None = None
    bound: Bound | None = None
    # Documented with the server settings (read by the app, but set by the server).
    server_table: bool = False
    name: str = ""
    kind: str = ""
    default: Any = None

    @property
    def default_text(self) -> str:
        if self.shown_default is not None:
            return self.shown_default
        if self.default is None:
            return "unset"
        if isinstance(self.default, bool):
            return f"`{str(self.default).lower()}`"
        if isinstance(self.default, float) and self.default.is_integer():
            return f"`{int(self.default)}`"
        return f"`{self.default}`"

    def parse(self, raw: str, label: str | None = None) -> Any:
        """The value of a non-empty raw string, as the field's type; a clear error if it is not."""
        kind = self.kind
        try:
            if kind in ("Path", "Path | None"):
                return Path(raw)
            if kind in ("float", "float | None"):
                return float(raw)
            if kind in ("int", "int | None"):
                return int(raw)
            if kind == "bool":
                if raw.lower() not in _TRUE | _FALSE:
                    raise ValueError(raw)
                return raw.lower() in _TRUE
        except ValueError:
            raise ConfigError(f"{label or self.variable}={raw!r} is not a valid {kind}") from None
        return raw

    def check(self, value: Any) -> None:
        """Refuse a value out of the declared bound, naming the variable."""
        if value is None or self.bound is None:
            return
        complaint = self.bound(self.variable, value)
        if complaint is not None:
            raise ConfigError(complaint)


def setting(
    variable: str,
    default: Any,
    doc: str,
    *,
    bound: Bound | None = None,
    shown_default: str | None = None,
    secret: bool = False,
    server_table: bool = False,
) -> Any:
    """A dataclass field read from `variable`; `secret` keeps its value out of repr."""
    declared = Setting(variable, doc, shown_default, bound, server_table)
    return field(default=default, repr=not secret, metadata={_KEY: declared})


def declared(cls: type) -> Iterator[Setting]:
    """The settings a class declares, in field order, completed with their field's name,
    type and default."""
    for item in fields(cls):
        base = item.metadata.get(_KEY)
        if base is not None:
            yield Setting(
                base.variable,
                base.doc,
                base.shown_default,
                base.bound,
                base.server_table,
                item.name,
                str(item.type),
                item.default,
            )


def read_environment(cls: type, environ: Mapping[str, str]) -> dict[str, Any]:
    """Field name -> parsed value of every declared variable set (an empty value is unset)."""
    values: dict[str, Any] = {}
    for declaration in declared(cls):
        raw = environ.get(declaration.variable)
        if raw is not None and raw.strip() != "":
            values[declaration.name] = declaration.parse(raw.strip())
    return values


def check_bounds(settings: Any, names: Collection[str] | None = None) -> None:
    """Refuse the first value out of its declared bound (of the fields `names`, if given)."""
    for declaration in declared(type(settings)):
        if names is None or declaration.name in names:
            declaration.check(getattr(settings, declaration.name))


def within(
    low: float,
    high: float,
    says: str,
    *,
    above_low: bool = False,
    or_zero: bool = False,
    shown: str = "{}",
) -> Bound:
    """A number from `low` to `high` (strictly above `low` if `above_low`; or 0 if `or_zero`),
    else "VARIABLE=value must be {says}"."""

    def bound(variable: str, value: float) -> str | None:
        above = value > low if above_low else value >= low
        if (above and value <= high) or (or_zero and value == 0):
            return None
        return f"{variable}={shown.format(value)} must be {says}"

    return bound


def at_least(low: float, says: str) -> Bound:
    return within(low, math.inf, says)


def one_of(choices: tuple[str, ...]) -> Bound:
    def bound(variable: str, value: str) -> str | None:
        if value in choices:
            return None
        return f"{variable}={value!r} must be one of {', '.join(choices)}"

    return bound


def markdown_table(settings: Iterator[Setting] | list[Setting]) -> str:
    """The docs' table of these settings: variable, default, meaning."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    rows += [f"| `{s.variable}` | {s.default_text} | {s.doc} |" for s in settings]
    return "\n".join(rows) + "\n"
