"""products.csv parsing: every validation case is reported with its row and reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.catalog import load_catalog
from backend.errors import ConfigError

HEADER = "id,name,category,price,image_url\n"


def write(tmp_path: Path, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / "products.csv"
    path.write_text(text, encoding=encoding, newline="")
    return path


def test_reads_products_and_parses_prices(tmp_path):
    path = write(
        tmp_path,
        HEADER + "a,Apple,Fruit,1.25,images/a.jpg\nb,Bread,Bakery,,https://shop.example/b.jpg\n",
    )
    catalog = load_catalog(path)
    assert list(catalog.products) == ["a", "b"]
    assert catalog.products["a"].price == 1.25
    assert catalog.products["b"].price is None
    assert catalog.products["b"].is_remote
    assert catalog.categories == ["Bakery", "Fruit"]
    assert catalog.skipped == []


def test_utf8_bom_is_accepted(tmp_path):
    path = write(tmp_path, HEADER + "a,Äpfel,Obst,2,images/a.jpg\n", encoding="utf-8-sig")
    assert load_catalog(path).products["a"].name == "Äpfel"


def test_columns_in_any_order_and_case(tmp_path):
    path = write(tmp_path, "Image_URL,ID,Name,Category,Price\nimages/a.jpg,a,Apple,Fruit,3\n")
    assert load_catalog(path).products["a"].image_url == "images/a.jpg"


def test_missing_columns_named_in_one_error(tmp_path):
    path = write(tmp_path, "id,name\na,Apple\n")
    with pytest.raises(ConfigError, match="missing column\\(s\\): category, price, image_url"):
        load_catalog(path)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_catalog(tmp_path / "nope.csv")


def test_empty_file_has_no_header(tmp_path):
    with pytest.raises(ConfigError, match="no readable header"):
        load_catalog(write(tmp_path, ""))


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (",Nameless,Fruit,1,images/a.jpg", "empty id"),
        ("a,Again,Fruit,1,images/a2.jpg", "duplicate id 'a'"),
        ("c,Cheap,Fruit,one euro,images/c.jpg", "price 'one euro' is not a number"),
        ("c,Negative,Fruit,-1,images/c.jpg", "price '-1' must be a non-negative number"),
        ("c,Infinite,Fruit,inf,images/c.jpg", "price 'inf' is not a number"),
        ("c,No image,Fruit,1,", "empty image_url"),
        ("c,Up,Fruit,1,../secret.jpg", "image_url '../secret.jpg' leaves the catalog folder"),
        ("c,Deep,Fruit,1,images/../../x.jpg", "leaves the catalog folder"),
        ("c,Abs,Fruit,1,/etc/passwd", "image_url '/etc/passwd' leaves the catalog folder"),
        ("c,Win,Fruit,1,..\\..\\x.jpg", "leaves the catalog folder"),
        (
            "c,Drive,Fruit,1,C:\\shop\\x.jpg",
            "image_url 'C:\\\\shop\\\\x.jpg' leaves the catalog folder",
        ),
        ("c,File,Fruit,1,file:///etc/passwd", "scheme 'file' is not allowed"),
        ("c,Ftp,Fruit,1,ftp://shop.example/c.jpg", "scheme 'ftp' is not allowed"),
        ("c,Data,Fruit,1,data:image/png;base64,AAAA", "has 6 fields, expected 5"),
        ('c,Data,Fruit,1,"data:image/png;base64,AAAA"', "scheme 'data' is not allowed"),
        ("c,Gopher,Fruit,1,gopher://shop.example/c", "scheme 'gopher' is not allowed"),
        ("c,Hostless,Fruit,1,http:///c.jpg", "has no host"),
        ("c,Short,Fruit", "has 3 fields, expected 5"),
        ("c,Long,Fruit,1,images/c.jpg,extra", "has 6 fields, expected 5"),
        ("c," + "N" * 5000 + ",Fruit,1,images/c.jpg", "longer than 4096 characters"),
    ],
    ids=lambda value: value[:40] if isinstance(value, str) else value,
)
def test_bad_rows_are_skipped_with_row_number_and_reason(tmp_path, row, reason):
    path = write(
        tmp_path,
        HEADER + "a,Apple,Fruit,1,images/a.jpg\n" + row + "\nz,Zucchini,Veg,2,images/z.jpg\n",
    )
    catalog = load_catalog(path)
    assert list(catalog.products) == ["a", "z"]
    assert len(catalog.skipped) == 1
    assert catalog.skipped[0].row == 3
    assert reason in catalog.skipped[0].reason


def test_metadata_url_is_accepted_by_the_catalog_and_left_to_the_fetcher(tmp_path):
    # Syntax is fine; the safe fetcher refuses the address when the image is downloaded.
    path = write(tmp_path, HEADER + "m,Meta,X,1,http://169.254.169.254/latest/meta-data\n")
    assert "m" in load_catalog(path).products


def test_unterminated_quote_stops_parsing_with_a_report(tmp_path):
    path = write(
        tmp_path, HEADER + 'a,Apple,Fruit,1,images/a.jpg\nb,"Broken,Fruit,1,images/b.jpg\n'
    )
    catalog = load_catalog(path)
    assert list(catalog.products) == ["a"]
    assert "unreadable CSV" in catalog.skipped[0].reason


def test_huge_field_is_reported_not_fatal(tmp_path):
    path = write(
        tmp_path, HEADER + "a,Apple,Fruit,1,images/a.jpg\nb," + "x" * 200_000 + ",Fruit,1,b.jpg\n"
    )
    catalog = load_catalog(path)
    assert list(catalog.products) == ["a"]
    assert catalog.skipped and catalog.skipped[0].row >= 3


def test_blank_lines_are_ignored(tmp_path):
    path = write(tmp_path, HEADER + "\na,Apple,Fruit,1,images/a.jpg\n\n")
    catalog = load_catalog(path)
    assert list(catalog.products) == ["a"] and catalog.skipped == []


def test_not_utf8_is_reported(tmp_path):
    path = tmp_path / "products.csv"
    # \x81 and \x9d are not Windows-1252 either: the file is not read as such.
    path.write_bytes(HEADER.encode() + b"a,Apple,Fruit,1,images/a.jpg\nb,\x81\x9d,Fruit,1,b.jpg\n")
    catalog = load_catalog(path)
    assert list(catalog.products) == ["a"]
    assert "not valid UTF-8" in catalog.skipped[0].reason
