"""products.csv as spreadsheets export it: separators, encodings and prices, never misread."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from backend.catalog import load_catalog
from backend.catalog.edits import write_catalog_row
from backend.catalog.prices import format_price, parse_price
from backend.catalog.products import Product
from backend.errors import ConfigError, InvalidInput

ROWS = [
    ["id", "name", "category", "price", "image_url"],
    ["a", "Äpfel", "Obst", "1,29", "images/a.jpg"],
    ["b", "Crème brûlée", "Dessert", "1.299,00", "images/b.jpg"],
]


def write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "products.csv"
    path.write_bytes(data)
    return path


def text(rows: list[list[str]], delimiter: str, line_end: str = "\r\n") -> str:
    return "".join(delimiter.join(row) + line_end for row in rows)


def assert_read_right(path: Path) -> None:
    catalog = load_catalog(path)
    assert catalog.skipped == []
    assert [(p.id, p.name, p.price) for p in catalog.products.values()] == [
        ("a", "Äpfel", 1.29),
        ("b", "Crème brûlée", 1299.0),
    ]


@pytest.mark.parametrize(
    ("delimiter", "encoding"),
    [
        (";", "utf-8"),  # Excel "CSV" in a European locale, saved as UTF-8
        (";", "utf-8-sig"),  # Excel "CSV UTF-8" in a European locale
        ("\t", "utf-16"),  # Excel "Unicode text": UTF-16 with a BOM, tab-separated
        (",", "utf-16-be-bom"),
        ("\t", "utf-8"),
    ],
)
def test_separators_and_encodings_spreadsheets_write_are_read(tmp_path, delimiter, encoding):
    rows = [
        [f'"{cell}"' if delimiter == "," and "," in cell else cell for cell in row] for row in ROWS
    ]
    body = text(rows, delimiter)
    if encoding == "utf-16-be-bom":
        data = codecs.BOM_UTF16_BE + body.encode("utf-16-be")
    else:
        data = body.encode(encoding)
    assert_read_right(write(tmp_path, data))


def test_excels_separator_line_is_understood(tmp_path):
    assert_read_right(write(tmp_path, ("sep=;\r\n" + text(ROWS, ";")).encode()))


def test_excels_plain_csv_in_windows_1252_keeps_its_accents_and_euro_signs(tmp_path):
    rows = [*ROWS, ["e", "Galette des rois", "Dessert", "€12,50", "images/e.jpg"]]
    path = write(tmp_path, text(rows, ";").encode("cp1252"))
    catalog = load_catalog(path)
    assert catalog.skipped == []
    assert [(p.name, p.price) for p in catalog.products.values()] == [
        ("Äpfel", 1.29),
        ("Crème brûlée", 1299.0),
        ("Galette des rois", 12.5),
    ]
    assert catalog.csv_format.encoding == "cp1252"
    assert catalog.csv_format.note == "read as Windows-1252 (not UTF-8)"


def test_an_8_bit_file_other_than_windows_1252_names_its_encoding_and_how_to_re_save_it(tmp_path):
    # Windows-1250 (Central European): "Ť" is a byte Windows-1252 leaves undefined.
    rows = [*ROWS[:2], ["b", "Ťažký čaj", "Nápoje", "1.299,00", "images/b.jpg"]]
    path = write(tmp_path, text(rows, ";").encode("cp1250"))
    catalog = load_catalog(path)
    assert list(catalog.products) == []
    assert [row.row for row in catalog.skipped] == [2, 3]
    assert catalog.undecodable_rows == 2
    reason = catalog.skipped[0].reason
    assert "not valid UTF-8" in reason and "other than Windows-1252" in reason
    assert "CSV UTF-8" in reason and "Unicode (UTF-8)" in reason


def test_a_utf8_file_with_one_stray_windows_1252_row_stays_utf8(tmp_path):
    # Reading it all as Windows-1252 would garble every other row's accents.
    data = text(ROWS, ";").encode() + "c;Café;Dessert;2;images/c.jpg\r\n".encode("cp1252")
    catalog = load_catalog(write(tmp_path, data))
    assert catalog.csv_format.encoding == "utf-8"
    assert [p.name for p in catalog.products.values()] == ["Äpfel", "Crème brûlée"]
    assert [(row.row, row.undecodable) for row in catalog.skipped] == [(4, True)]


def test_utf16_without_a_byte_order_mark_is_refused_with_the_fix(tmp_path):
    path = write(tmp_path, text(ROWS, "\t").encode("utf-16-le"))
    with pytest.raises(ConfigError, match="UTF-16 without a byte-order mark.*CSV UTF-8"):
        load_catalog(path)


def test_an_unknown_separator_says_how_the_file_was_read(tmp_path):
    path = write(tmp_path, text(ROWS, "|").encode())
    with pytest.raises(ConfigError, match="missing column.*read as UTF-8, separated by commas"):
        load_catalog(path)


@pytest.mark.parametrize(
    ("cell", "price"),
    [
        ("0.49", 0.49),
        ("0,49", 0.49),
        ("€0.39", 0.39),
        ("0,39 €", 0.39),
        ("$ 12.50", 12.5),
        ("12.50 EUR", 12.5),
        ("CHF 3.20", 3.2),
        ("1.299,00", 1299.0),
        ("1,299.00", 1299.0),
        ("1 299,00", 1299.0),
        ("1\u00a0299,50 €", 1299.5),
        ("1'299.00", 1299.0),
        ("1.299.000", 1299000.0),
        ("1,299,000.5", 1299000.5),
        ("1299", 1299.0),
        ("1299.5", 1299.5),
        ("12,5", 12.5),
        ("0,125", 0.125),
        ("1234.567", 1234.567),
        ("1.2990", 1.299),
        (".5", 0.5),
    ],
)
def test_prices_in_the_forms_owners_write_them(cell, price):
    assert parse_price(cell) == price


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("1.299", "ambiguous: 1299 or 1.299?"),
        ("1,299", "ambiguous: 1299 or 1.299?"),
        ("12,345", "ambiguous"),
        ("1.29.00", "is not a number"),
        ("1,2,3", "is not a number"),
        ("1.299,00.5", "is not a number"),
        ("one euro", "is not a number"),
        ("1e3", "is not a number"),
        ("inf", "is not a number"),
        ("-1", "must be a non-negative number"),
        ("€-0.5", "must be a non-negative number"),
        ("EUR", "is not a number"),
    ],
)
def test_prices_that_could_be_misread_are_refused_with_the_accepted_forms(cell, message):
    with pytest.raises(ValueError, match=message.replace("?", r"\?")) as raised:
        parse_price(cell)
    if "non-negative" not in message:
        assert "1.299,00" in str(raised.value) and "€0.39" in str(raised.value)


@pytest.mark.parametrize("cell", ["0", "7", "12.5", "12.99", "05.99", "1299.00", "9" * 15])
def test_plain_prices_read_directly_as_the_general_rules_read_them(cell):
    # A currency symbol sends the cell through every rule; the plain cell is read directly.
    assert parse_price(cell) == parse_price(f"€{cell}") == float(cell)


def test_an_ambiguous_price_skips_its_row_only(tmp_path):
    path = write(
        tmp_path, text([*ROWS, ["c", "Cake", "Dessert", "1.299", "images/c.jpg"]], ";").encode()
    )
    catalog = load_catalog(path)
    assert list(catalog.products) == ["a", "b"]
    assert catalog.skipped[0].row == 4 and "ambiguous" in catalog.skipped[0].reason


@pytest.mark.parametrize("price", [1.299, 0.125, 1299.0, 2.5, 1e-05, 1e16, 123.456, 0.1])
def test_written_prices_read_back_the_same(price):
    assert parse_price(format_price(price)) == price


@pytest.mark.parametrize(
    ("preamble", "delimiter", "encoding"),
    [
        ("", ";", "utf-8"),
        ("sep=;\r\n", ";", "utf-8-sig"),
        ("", "\t", "utf-16"),
        ("", ";", "cp1252"),
    ],
)
def test_an_edit_keeps_the_files_encoding_and_separator(tmp_path, preamble, delimiter, encoding):
    path = write(tmp_path, (preamble + text(ROWS, delimiter)).encode(encoding))
    before = path.read_bytes()
    write_catalog_row(path, "c", Product("c", "Cake", "Dessert", 1.299, "images/c.jpg"))
    after = path.read_bytes()
    assert after.startswith(before)  # the other rows, byte for byte
    added = after[len(before) :].decode({"utf-16": "utf-16-le"}.get(encoding, encoding))
    assert added == delimiter.join(["c", "Cake", "Dessert", "1.2990", "images/c.jpg"]) + "\r\n"
    catalog = load_catalog(path)
    assert catalog.products["c"].price == 1.299 and catalog.products["b"].price == 1299.0


def test_an_edit_a_windows_1252_file_cannot_hold_is_refused_and_the_file_kept(tmp_path):
    path = write(tmp_path, text(ROWS, ";").encode("cp1252"))
    before = path.read_bytes()
    with pytest.raises(InvalidInput, match="'ő' cannot be written.*Windows-1252.*CSV UTF-8"):
        write_catalog_row(path, "c", Product("c", "Sütő", "Dessert", 2.0, "images/c.jpg"))
    assert path.read_bytes() == before
    write_catalog_row(path, "c", Product("c", "Pâté €", "Dessert", 2.0, "images/c.jpg"))
    assert load_catalog(path).products["c"].name == "Pâté €"
