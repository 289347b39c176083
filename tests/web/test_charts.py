"""Server-drawn SVG charts: well-formed, named for screen readers, every label escaped."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from backend.web.charts import Frame, bar_list, column_chart, line_chart, nice_ceiling

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = '<script>alert("x")</script> & "quotes"'


def parse(markup) -> ET.Element:
    return ET.fromstring(str(markup))  # raises on anything but well-formed XML


@pytest.mark.parametrize(
    "value, ceiling",
    [(0, 1), (0.3, 0.5), (1, 1), (3, 5), (6, 10), (12, 20), (51, 100), (700, 1000)],
)
def test_nice_ceiling(value, ceiling):
    assert nice_ceiling(value) == pytest.approx(ceiling)


def charts():
    frame = Frame("chart-x", HOSTILE, "Summary: " + HOSTILE)
    yield column_chart(
        frame, ["a", "b", "c"], [1, 0, 7], [HOSTILE, "b: 0", "c: 7"], marker=(0.7, "threshold 0.70")
    )
    yield line_chart(frame, ["a", "b", "c"], [("p50", [1.0, None, 3.0]), ("p95", [2, 2, 9])])
    yield bar_list(frame, [(HOSTILE, 3), ("Plain", 1)])
    yield column_chart(frame, [], [], [])  # no data at all


@pytest.mark.parametrize("markup", list(charts()))
def test_a_chart_is_a_named_image_with_its_text_escaped(markup):
    svg = parse(markup)
    assert svg.get("role") == "img"
    title, desc = svg.find(f"{SVG}title"), svg.find(f"{SVG}desc")
    assert svg.get("aria-labelledby") == f"{title.get('id')} {desc.get('id')}"
    assert title.text == HOSTILE and desc.text == "Summary: " + HOSTILE
    assert "<script>" not in str(markup)


def test_column_heights_follow_the_values():
    svg = parse(column_chart(Frame("c", "t", "s"), ["a", "b"], [5, 10], ["a", "b"]))
    heights = [float(rect.get("height")) for rect in svg.iter(f"{SVG}rect")]
    assert heights[1] == pytest.approx(2 * heights[0])
    assert [rect.find(f"{SVG}title").text for rect in svg.iter(f"{SVG}rect")] == ["a", "b"]


def test_a_gap_in_a_series_splits_its_line():
    svg = parse(line_chart(Frame("c", "t", "s"), list("abcde"), [("x", [1, 2, None, 4, 5])]))
    assert len(list(svg.iter(f"{SVG}polyline"))) == 2
    assert len(list(svg.iter(f"{SVG}circle"))) == 4


def test_long_labels_are_shortened_but_kept_whole_in_the_tooltip():
    name = "A very long product name that goes on and on (p123)"
    svg = parse(bar_list(Frame("c", "t", "s"), [(name, 2)]))
    shown = [text.text for text in svg.iter(f"{SVG}text")]
    assert shown[0].endswith("…") and len(shown[0]) == 24
    assert svg.find(f"{SVG}rect/{SVG}title").text == f"{name}: 2"
