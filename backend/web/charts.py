"""Charts drawn on the server as inline SVG: no script, no external library, allowed by the CSP.

Each chart is an `<svg role="img">` named by its `<title>` and summarised by its `<desc>`
(screen readers read those, not the shapes); every bar and point carries its own `<title>`,
which a mouse user sees as a tooltip. Colours come from the stylesheet's classes. The page
puts the same figures in a table next to each chart.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH, HEIGHT = 520, 220  # viewBox units; the chart scales to its box
LEFT, RIGHT, TOP, BOTTOM = 60, 14, 18, 34  # plot margins, room for the axis labels
MAX_X_LABELS = 6
MAX_LABEL_CHARS = 24


@dataclass(frozen=True)
class Frame:
    """The chart's text: its id (for ARIA references), title and one-sentence summary."""

    id: str
    title: str
    summary: str


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at or above value (1 for nothing)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return next(step * power for step in (1, 2, 5, 10) if step * power >= value)


def column_chart(
    frame: Frame,
    labels: Sequence[str],
    values: Sequence[float],
    tips: Sequence[str],
    *,
    marker: tuple[float, str] | None = None,
    axis_labels: Sequence[str] = (),
    value_label: Callable[[float], str] = lambda v: f"{v:g}",
) -> Markup:
    """Vertical bars, one per label; `marker`: (position 0-1 along the x axis, its text)."""
    top = nice_ceiling(max(values, default=0))
    width = (WIDTH - LEFT - RIGHT) / max(len(values), 1)
    parts = [*_y_axis(top, value_label)]
    for index, (value, tip) in enumerate(zip(values, tips, strict=True)):
        height = _y(0) - _y(value / top)
        parts.append(
            f'<rect class="chart-bar" x="{LEFT + index * width + width * 0.12:.1f}" '
            f'y="{_y(value / top):.1f}" width="{width * 0.76:.1f}" height="{height:.1f}">'
            f"<title>{escape(tip)}</title></rect>"
        )
    parts += _x_labels(axis_labels or labels, len(values))
    if marker is not None:
        parts.append(_marker(*marker))
    return _svg(frame, parts)


def line_chart(
    frame: Frame,
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    *,
    top: float | None = None,
    value_label: Callable[[float], str] = lambda v: f"{v:g}",
) -> Markup:
    """One line per (name, values) series over the labels; None leaves a gap."""
    found = [v for _, values in series for v in values if v is not None]
    top = top or nice_ceiling(max(found, default=0))
    step = (WIDTH - LEFT - RIGHT) / max(len(labels), 1)
    parts = [*_y_axis(top, value_label)]
    for number, (name, values) in enumerate(series):
        points = [
            (
                LEFT + (index + 0.5) * step,
                _y(value / top),
                f"{labels[index]}: {name} {value_label(value)}",
            )
            for index, value in enumerate(values)
            if value is not None
        ]
        parts += _polylines(number, values, step, top)
        parts += [
            f'<circle class="chart-point chart-series-{number}" cx="{x:.1f}" cy="{y:.1f}" r="3">'
            f"<title>{escape(tip)}</title></circle>"
            for x, y, tip in points
        ]
    parts += _x_labels(labels, len(labels))
    if len(series) > 1:
        parts += _legend([name for name, _ in series])
    return _svg(frame, parts)


def bar_list(frame: Frame, rows: Sequence[tuple[str, int]]) -> Markup:
    """Horizontal bars, one row per (label, count), longest first as given."""
    row_height, label_width = 26, 190
    height = TOP + row_height * max(len(rows), 1) + 8
    top = max((count for _, count in rows), default=1)
    span = WIDTH - label_width - RIGHT - 48
    parts = []
    for index, (label, count) in enumerate(rows):
        y = TOP + index * row_height
        short = label if len(label) <= MAX_LABEL_CHARS else label[: MAX_LABEL_CHARS - 1] + "…"
        bar = max(span * count / top, 2)
        parts.append(
            f'<text class="chart-label" x="{label_width - 8}" y="{y + 17}" text-anchor="end">'
            f"{escape(short)}</text>"
            f'<rect class="chart-bar" x="{label_width}" y="{y + 4}" width="{bar:.1f}" '
            f'height="{row_height - 8}"><title>{escape(label)}: {count}</title></rect>'
            f'<text class="chart-label" x="{label_width + bar + 6:.1f}" y="{y + 17}">{count}</text>'
        )
    return _svg(frame, parts, height)


def _y(fraction: float) -> float:
    return HEIGHT - BOTTOM - fraction * (HEIGHT - TOP - BOTTOM)


def _y_axis(top: float, value_label: Callable[[float], str]) -> list[str]:
    parts = []
    for fraction in (0, 0.5, 1):
        y = _y(fraction)
        parts.append(
            f'<line class="chart-grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="chart-label" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(value_label(top * fraction))}</text>"
        )
    return parts


def _x_labels(labels: Sequence[str], count: int) -> list[str]:
    """At most MAX_X_LABELS labels, evenly spread, the last one always shown; or bin edges."""
    if not count:
        return []
    step = (WIDTH - LEFT - RIGHT) / count
    every = math.ceil(count / MAX_X_LABELS)
    picked = set(range(0, count, every))
    if count - 1 - max(picked) < every / 2:  # too close to the last label: make room for it
        picked.discard(max(picked))
    picked |= {0, count - 1}
    if len(labels) == count + 1:  # labels on the bin edges (a histogram); "" for none
        return [
            f'<text class="chart-label" x="{LEFT + index * step:.1f}" y="{HEIGHT - BOTTOM + 16}" '
            f'text-anchor="middle">{escape(label)}</text>'
            for index, label in enumerate(labels)
            if label
        ]
    return [
        f'<text class="chart-label" x="{LEFT + (index + 0.5) * step:.1f}" '
        f'y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">{escape(labels[index])}</text>'
        for index in sorted(picked)
    ]


def _polylines(number: int, values: Sequence[float | None], step: float, top: float) -> list[str]:
    """One polyline per run of values without a gap."""
    runs: list[list[str]] = [[]]
    for index, value in enumerate(values):
        if value is None:
            runs.append([])
        else:
            runs[-1].append(f"{LEFT + (index + 0.5) * step:.1f},{_y(value / top):.1f}")
    return [
        f'<polyline class="chart-line chart-series-{number}" points="{" ".join(run)}"/>'
        for run in runs
        if len(run) > 1
    ]


def _marker(position: float, text: str) -> str:
    x = LEFT + min(max(position, 0), 1) * (WIDTH - LEFT - RIGHT)
    anchor = "end" if position > 0.8 else "start"
    shift = -4 if anchor == "end" else 4
    return (
        f'<line class="chart-marker" x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{_y(0):.1f}"/>'
        f'<text class="chart-marker-label" x="{x + shift:.1f}" y="{TOP + 10}" '
        f'text-anchor="{anchor}">{escape(text)}</text>'
    )


def _legend(names: Sequence[str]) -> list[str]:
    parts = []
    for number, name in enumerate(names):
        x = WIDTH - RIGHT - 100 * (len(names) - number)
        parts.append(
            f'<line class="chart-line chart-series-{number}" x1="{x}" x2="{x + 18}" '
            f'y1="{TOP + 2}" y2="{TOP + 2}"/>'
            f'<text class="chart-label" x="{x + 24}" y="{TOP + 6}">{escape(name)}</text>'
        )
    return parts


def _svg(frame: Frame, parts: list[str], height: int = HEIGHT) -> Markup:
    title, desc = f"{frame.id}-title", f"{frame.id}-desc"
    return Markup(
        f'<svg class="chart" id="{escape(frame.id)}" viewBox="0 0 {WIDTH} {height}" '
        f'role="img" aria-labelledby="{title} {desc}" xmlns="http://www.w3.org/2000/svg">'
        f'<title id="{title}">{escape(frame.title)}</title>'
        f'<desc id="{desc}">{escape(frame.summary)}</desc>' + "".join(parts) + "</svg>"
    )
