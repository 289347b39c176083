"""index.csv: round trip, float16 precision, atomic replacement, corrupt files rebuilt."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest

from backend.atomic import atomic_writer
from backend.index.index_file import Entry, IndexTable, read_index, write_index


def random_table(n: int, dim: int = 512, seed: int = 0) -> IndexTable:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    entries = [
        Entry(f"id{i}", f"images/{i}.jpg", f"{i}:1", f"{i:064x}", "m/w/p1") for i in range(n)
    ]
    return IndexTable(entries, vectors)


def test_round_trip_keeps_entries_and_cosine(tmp_path):
    table = random_table(50)
    path = tmp_path / "index.csv"
    write_index(path, table)
    loaded = read_index(path)
    assert loaded.entries == table.entries
    assert loaded.vectors.dtype == np.float32 and loaded.vectors.flags.c_contiguous
    cosines = np.sum(loaded.vectors * table.vectors, axis=1)
    assert cosines.min() >= 0.99999
    np.testing.assert_allclose(np.linalg.norm(loaded.vectors, axis=1), 1.0, atol=1e-6)


def test_missing_file_is_an_empty_index(tmp_path):
    assert len(read_index(tmp_path / "none.csv")) == 0


@pytest.mark.parametrize(
    "content",
    [
        "garbage\x00\x01",
        "id,name\n1,2\n",
        "id,source,signature,fingerprint,model,vector\na,s,1,f,m,!!notbase64!!\n",
        "id,source,signature,fingerprint,model,vector\na,s,1,f,m,AAA=\n",
        "id,source,signature,fingerprint,model,vector\na,s,1,f,m,AAAA\na,s,1,f,m,AAAA\n",
        "id,source,signature,fingerprint,model,vector\na,s,1,f,m,AAAA\nb,s,1,f,m,AAAAAAAA\n",
        "id,source,signature,fingerprint,model,vector\na,s,1,f,m,AAB8\n",  # float16 +inf
    ],
    ids=[
        "binary",
        "foreign-columns",
        "bad-base64",
        "odd-bytes",
        "duplicate-ids",
        "ragged",
        "infinite",
    ],
)
def test_corrupt_or_foreign_index_is_ignored_with_a_warning(tmp_path, caplog, content):
    path = tmp_path / "index.csv"
    path.write_text(content, encoding="utf-8", errors="surrogateescape")
    with caplog.at_level(logging.WARNING):
        assert len(read_index(path)) == 0
    assert "will be rebuilt" in caplog.text


def test_failed_write_leaves_the_previous_file_and_no_temp(tmp_path):
    path = tmp_path / "index.csv"
    write_index(path, random_table(3))
    before = path.read_bytes()
    with pytest.raises(RuntimeError), atomic_writer(path, "w") as handle:
        handle.write("half a file")
        raise RuntimeError("crash mid-write")
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["index.csv"]


def test_fifty_thousand_rows_stay_compact(tmp_path):
    path = tmp_path / "index.csv"
    write_index(path, random_table(2000))
    bytes_per_row = path.stat().st_size / 2000
    # float16 + base64: 1,368 characters of vector per row, plus the other columns.
    assert bytes_per_row < 1500


def test_quoted_fields_and_other_line_ends_read_like_csv(tmp_path):
    table = random_table(3)
    table.entries[1] = Entry('odd, "id"\nline', "images/a,b.jpg", "1:2", "f" * 64, "m/w/p1")
    path = tmp_path / "index.csv"
    write_index(path, table)
    assert read_index(path).entries == table.entries
    # LF line ends and a UTF-8 BOM, as a spreadsheet program may save the plain file.
    plain = random_table(3)
    write_index(path, plain)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes().replace(b"\r\n", b"\n"))
    loaded = read_index(path)
    assert loaded.entries == plain.entries
    np.testing.assert_allclose(loaded.vectors, plain.vectors, atol=1e-3)


@pytest.mark.parametrize("line", ["a,s,1,f,m", "a,s,1,f,m,AAAA,extra"], ids=["short", "long"])
def test_a_row_with_the_wrong_field_count_is_corrupt(tmp_path, caplog, line):
    path = tmp_path / "index.csv"
    path.write_text("id,source,signature,fingerprint,model,vector\r\n" + line + "\r\n")
    with caplog.at_level(logging.WARNING):
        assert len(read_index(path)) == 0
    assert "will be rebuilt" in caplog.text


def test_replaced_files_keep_their_mode_and_new_ones_follow_the_umask(tmp_path):
    path = tmp_path / "index.csv"
    old_umask = os.umask(0o022)
    try:
        write_index(path, random_table(2))
        assert path.stat().st_mode & 0o777 == 0o644
        path.chmod(0o640)
        write_index(path, random_table(2))
        assert path.stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(old_umask)


def test_the_meta_line_round_trips_and_stays_small(tmp_path):
    from backend.index.index_file import MAX_META_BYTES, IndexMeta, read_meta

    failed = {f'id,"{i}"': "x" * 1000 for i in range(500)}  # commas, quotes, long reasons
    table = random_table(3)
    table.meta = IndexMeta.of('shop, "quoted"/products.csv', failed)
    path = tmp_path / "index.csv"
    write_index(path, table)
    first = path.read_bytes().split(b"\n", 1)[0]
    assert first.startswith(b"#") and len(first) < MAX_META_BYTES
    loaded = read_index(path)
    assert loaded.entries == table.entries and loaded.meta == table.meta
    assert loaded.meta.failed_total == 500 and 0 < len(loaded.meta.failed) <= 100
    assert read_meta(path) == table.meta
    assert read_meta(tmp_path / "none.csv") == IndexMeta()


def test_a_malformed_meta_line_makes_the_index_rebuilt(tmp_path, caplog):
    path = tmp_path / "index.csv"
    write_index(path, random_table(2))
    path.write_bytes(b'#{"catalog": 3}\n' + path.read_bytes())
    with caplog.at_level(logging.WARNING):
        assert len(read_index(path)) == 0
    assert "unreadable" in caplog.text


@pytest.mark.parametrize(
    "tear",
    [
        lambda lines: lines[:-1] + [lines[-1][: len(lines[-1]) // 2]],
        lambda lines: lines[:2] + [lines[2][:700]] + lines[3:],
        lambda lines: lines[:2] + [lines[2][:9]] + lines[3:],
        lambda lines: lines[:2] + [lines[2].replace(b",m/w/p1,", b",m/w/p1,\xe2\x82")] + lines[3:],
    ],
    ids=["last-line-cut", "vector-cut", "fields-cut", "bad-utf8-and-base64"],
)
def test_a_torn_line_loses_only_its_own_row(tmp_path, caplog, tear):
    table = random_table(6)
    path = tmp_path / "index.csv"
    write_index(path, table)
    lines = path.read_bytes().split(b"\r\n")[:-1]  # header + 6 rows
    torn = tear(lines)
    path.write_bytes(b"\r\n".join(torn) + b"\r\n")
    with caplog.at_level(logging.WARNING):
        loaded = read_index(path)
    kept = {entry.id for entry in loaded.entries}
    assert len(kept) >= 4 and kept <= {entry.id for entry in table.entries}
    assert "damaged row(s) left out; they will be rebuilt" in caplog.text
    for entry, vector in zip(loaded.entries, loaded.vectors, strict=True):
        row = table.entries.index(entry)
        assert float(vector @ table.vectors[row]) > 0.9999


def test_rows_of_a_duplicated_id_are_left_out_and_the_rest_kept(tmp_path, caplog):
    table = random_table(3)
    path = tmp_path / "index.csv"
    write_index(path, table)
    lines = path.read_bytes().split(b"\r\n")
    path.write_bytes(b"\r\n".join([*lines[:-1], lines[1], b""]))
    with caplog.at_level(logging.WARNING):
        assert [e.id for e in read_index(path).entries] == ["id1", "id2"]
    assert "2 damaged row(s)" in caplog.text


def test_an_open_quote_keeps_the_rows_before_it(tmp_path, caplog):
    # A CSV quote swallows the rest of the file: the rows before it survive, the rest is rebuilt.
    path = tmp_path / "index.csv"
    write_index(path, random_table(4))
    lines = path.read_bytes().split(b"\r\n")
    path.write_bytes(b"\r\n".join([*lines[:3], b'"torn, quoted', *lines[3:]]))
    with caplog.at_level(logging.WARNING):
        assert [e.id for e in read_index(path).entries] == ["id0", "id1"]
    assert "will be rebuilt" in caplog.text
