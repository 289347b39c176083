"""Exports: formula cells neutralised, the log as CSV and JSON for a date range."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import pytest

from backend.insights.aggregates import Window
from backend.insights.export import (
    LOG_FIELDS,
    csv_lines,
    iso_time,
    json_array,
    log_objects,
    log_rows,
    neutralise,
)
from backend.insights.records import open_for_reading
from tests.support.searchlog import at, make_record, seed

DAY = dt.date(2026, 5, 1)


@pytest.mark.parametrize(
    "value, cell",
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+1+2", "'+1+2"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t'=1"),  # a tab both starts a formula and separates cells
        ("\r=1", "'\r'=1"),
        ("Red ball", "Red ball"),
        ("a=b", "a=b"),
        ("T-shirt", "T-shirt"),
        ("", ""),
        (-0.25, -0.25),  # numbers the app writes stay numbers
        (3, 3),
        (None, None),
        # A cell after a separator: a spreadsheet that splits on `;` (or a tab, or a line) sees
        # a new cell start there, whatever the quotes around the whole.
        ('Red ball;=HYPERLINK("http://x")', 'Red ball;\'=HYPERLINK("http://x")'),
        ("a,+1+2", "a,'+1+2"),
        ("a; -2+3", "a; '-2+3"),
        ('a;"@SUM(A1)', "a;\"'@SUM(A1)"),
        ("a\t=1", "a\t'=1"),
        ("a\n=1", "a\n'=1"),
        ("a;b=1", "a;b=1"),
        # A plain number, signed or not, is a number in every spreadsheet, never a formula.
        ("-15", "-15"),
        ("+3.5", "+3.5"),
        ("-1e5", "-1e5"),
        ("sizes;-2;+4.5", "sizes;-2;+4.5"),
        ('[["p1", 0.9], ["p2", -0.25]]', '[["p1", 0.9], ["p2", -0.25]]'),  # a top list
        ("-15+A1", "'-15+A1"),
        ("a;-2-2", "a;'-2-2"),
    ],
)
def test_neutralise(value, cell):
    assert neutralise(value) == cell


def test_csv_lines_quote_every_text_cell_and_no_number():
    text = "".join(csv_lines(("rank", "name", "price"), [(1, "Red ball", -2.5), (2, None, 3)]))
    assert text == '"rank","name","price"\r\n1,"Red ball",-2.5\r\n2,"",3\r\n'


def test_csv_lines_neutralise_every_text_cell_and_parse_back():
    rows = [(1, "=cmd|' /C calc'!A0", "toys", -1.5), (2, "Plain, with comma", '"quoted"', None)]
    text = "".join(csv_lines(("rank", "name", "category", "price"), rows))
    assert list(csv.reader(io.StringIO(text))) == [
        ["rank", "name", "category", "price"],
        ["1", "'=cmd|' /C calc'!A0", "toys", "-1.5"],
        ["2", "Plain, with comma", '"quoted"', ""],
    ]


def test_csv_lines_stream_in_chunks():
    chunks = list(csv_lines(("n",), [(n,) for n in range(1200)]))
    assert len(chunks) == 3  # 500, 500, then 200 rows and the header's line
    assert "".join(chunks).count("\r\n") == 1201


def test_json_array_is_valid_json_for_any_length():
    for items in ([], [{"a": 1}], [{"a": 1}, {"b": "é"}]):
        assert json.loads("".join(json_array(items))) == items


@pytest.fixture
def log_conn(tmp_path):
    path = tmp_path / "searches.sqlite"
    seed(
        path,
        [
            make_record(at(DAY, 0, 0), category="=2+5", ref="@evil", kind="similar"),
            make_record(at(DAY, 23, 59), top=(("-p", 0.5),)),
            make_record(at(DAY + dt.timedelta(days=1), 0, 0)),  # the next day: outside
        ],
    )
    conn = open_for_reading(path)
    yield conn
    conn.close()


def test_log_csv_holds_the_range_with_formulas_neutralised(log_conn):
    text = "".join(csv_lines(LOG_FIELDS, log_rows(log_conn, Window(DAY, DAY))))
    header, first, second = list(csv.reader(io.StringIO(text)))
    assert header == list(LOG_FIELDS)
    row = dict(zip(header, first, strict=True))
    assert (row["time"], row["kind"], row["query"], row["category"]) == (
        "2026-05-01T00:00:00.000Z",
        "similar",
        "'@evil",
        "'=2+5",
    )
    assert json.loads(row["top"]) == [["p1", 0.9], ["p2", 0.4]]
    assert dict(zip(header, second, strict=True))["best_id"] == "'-p"


def test_log_json_has_objects_with_top_as_a_list(log_conn):
    items = json.loads("".join(json_array(log_objects(log_conn, Window(DAY, DAY)))))
    assert len(items) == 2
    assert items[0]["category"] == "=2+5"  # JSON is data, not a spreadsheet: kept as it is
    assert items[0]["top"] == [{"id": "p1", "similarity": 0.9}, {"id": "p2", "similarity": 0.4}]
    assert items[1]["time"] == "2026-05-01T23:59:00.000Z"
    assert set(items[0]) == set(LOG_FIELDS)


def test_no_log_exports_a_header_or_an_empty_array():
    assert "".join(csv_lines(LOG_FIELDS, log_rows(None, Window(DAY, DAY)))).count("\r\n") == 1
    assert json.loads("".join(json_array(log_objects(None, Window(DAY, DAY))))) == []


def test_iso_time():
    assert iso_time(0.25) == "1970-01-01T00:00:00.250Z"
