"""`flask index` and `flask search`: summaries, ranked output, clear errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.catalogs import draw_image


def test_index_prints_a_summary_and_the_random_mode_notice(runner):
    result = runner.invoke(args=["index"])
    assert result.exit_code == 0, result.output
    assert "7 added, 0 updated, 0 removed, 0 unchanged, 0 failed" in result.output
    assert "MODEL_WEIGHTS=random" in result.output
    again = runner.invoke(args=["index"])
    assert "0 added, 0 updated, 0 removed, 7 unchanged, 0 failed" in again.output


def test_index_reports_skipped_rows_and_failures(tmp_path, app_config):
    from backend import create_app

    with app_config["catalog_path"].open("a", encoding="utf-8") as handle:
        handle.write("bad,Bad,toys,abc,images/p1.png\nmiss,Missing,toys,1,images/none.png\n")
    result = create_app(app_config).test_cli_runner().invoke(args=["index"])
    assert result.exit_code == 0
    assert "skipped products.csv row 9: price 'abc' is not a number" in result.output
    assert "failed miss: image file 'images/none.png' not found" in result.output
    # The summary line itself counts and names them.
    summary = next(line for line in result.output.splitlines() if line.startswith("index: "))
    assert "7 added, 0 updated, 0 removed, 0 unchanged, 1 failed (miss), 1 row skipped (row 9)" in (
        summary
    )


def test_index_fails_when_the_catalog_has_rows_but_none_could_be_indexed(tmp_path, app_config):
    from backend import create_app

    for image in (app_config["catalog_path"].parent / "images").iterdir():
        image.unlink()
    with app_config["catalog_path"].open("a", encoding="utf-8") as handle:
        handle.write("bad,Bad,toys,abc,images/p1.png\n")
    result = create_app(app_config).test_cli_runner().invoke(args=["index"])
    assert result.exit_code == 1
    assert "0 added, 0 updated, 0 removed, 0 unchanged, 7 failed" in result.output
    assert "nothing in products.csv could be indexed (1 row skipped, 7 images failed" in (
        result.output
    )


def test_index_of_an_empty_catalog_is_not_a_failure(tmp_path, app_config):
    from backend import create_app

    app_config["catalog_path"].write_text("id,name,category,price,image_url\n")
    result = create_app(app_config).test_cli_runner().invoke(args=["index"])
    assert result.exit_code == 0, result.output


def test_search_prints_ranked_results(runner, tmp_path):
    query = tmp_path / "query.png"
    draw_image("yellow", "triangle").save(query)
    result = runner.invoke(args=["search", str(query), "--k", "3", "--threshold", "0"])
    assert result.exit_code == 0, result.output
    lines = [
        line for line in result.output.splitlines() if line.strip().startswith(("1 ", "2 ", "3 "))
    ]
    assert len(lines) == 3
    assert "1.0000  p5  Yellow tent  [outdoor]  13.50" in lines[0]


def test_search_with_category_filter(runner, tmp_path):
    query = tmp_path / "query.png"
    draw_image("yellow", "triangle").save(query)
    result = runner.invoke(args=["search", str(query), "--threshold", "0", "--category", "clothes"])
    assert "p4" in result.output and "p6" in result.output and "p5" not in result.output


def test_search_bad_inputs_exit_non_zero_with_a_message(runner, tmp_path):
    missing = runner.invoke(args=["search", str(tmp_path / "nope.png")])
    assert missing.exit_code != 0 and "is not a file or an http(s) URL" in missing.output
    text = tmp_path / "notes.png"
    text.write_text("hello")
    not_image = runner.invoke(args=["search", str(text)])
    assert not_image.exit_code != 0 and "not a recognised image" in not_image.output
    refused = runner.invoke(args=["search", "http://127.0.0.1/x.png"])
    assert refused.exit_code != 0 and "refused" in refused.output
    bad_k = runner.invoke(args=["search", str(text), "--k", "0"])
    assert bad_k.exit_code == 2


def flask_command(*args: str, **env: str) -> subprocess.CompletedProcess:
    """Run the real `flask --app backend ...` in a fresh process."""
    environ = {key: value for key, value in os.environ.items() if key != "SECRET_KEY"} | env
    return subprocess.run(
        [str(Path(sys.executable).parent / "flask"), "--app", "backend", *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=60,
    )


def test_a_bad_setting_is_one_line_naming_it_and_exit_status_2():
    done = flask_command("index", SIMILARITY_THRESHOLD="2")
    assert done.returncode == 2
    assert done.stderr.strip() == "Error: SIMILARITY_THRESHOLD=2.0 must be between 0 and 1"


def test_a_folder_at_index_path_is_one_line_naming_it(tmp_path):
    folder = tmp_path / "index.csv"
    folder.mkdir()
    done = flask_command("index", INDEX_PATH=str(folder))
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"Error: INDEX_PATH={str(folder)!r} is a folder; give the path of a file in it"
    )


def test_an_unwritable_index_folder_is_one_line(tmp_path, app_config):
    from backend import create_app

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the index folder should be")
    app = create_app(app_config | {"index_path": blocker / "index.csv"})
    result = app.test_cli_runner().invoke(args=["index"])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Error: ") and "not-a-folder" in last


def test_commands_do_not_print_the_web_servers_secret_key_warning(tmp_path):
    done = flask_command("routes", CATALOG_PATH=str(tmp_path / "none.csv"))
    assert done.returncode == 0, done.stderr
    assert "SECRET_KEY" not in done.stdout + done.stderr


def test_search_with_a_price_range_and_an_unknown_category(runner, tmp_path):
    query = tmp_path / "query.png"
    draw_image("yellow", "triangle").save(query)
    ranged = runner.invoke(args=["search", str(query), "--threshold", "0", "--max-price", "10"])
    assert ranged.exit_code == 0 and "  p1  " in ranged.output and "  p2  " not in ranged.output
    unknown = runner.invoke(args=["search", str(query), "--category", "boats"])
    assert unknown.exit_code == 2 and "category 'boats' is not in the catalog" in unknown.output


def test_index_reads_a_windows_1252_catalog_and_says_so(tmp_path, app_config):
    from backend import create_app
    from backend.extensions import get_service

    path = app_config["catalog_path"]
    text = path.read_text(encoding="utf-8").replace(",Red box,", ",Boîte rouge à 5 €,")
    path.write_bytes(text.encode("cp1252"))
    app = create_app(app_config)
    result = app.test_cli_runner().invoke(args=["index"])
    assert result.exit_code == 0, result.output
    assert "catalog: products.csv read as Windows-1252 (not UTF-8)" in result.output
    assert "7 added, 0 updated, 0 removed, 0 unchanged, 0 failed, 0 rows skipped" in result.output
    assert get_service(app).catalog.get("p2").name == "Boîte rouge à 5 €"


def test_index_exits_non_zero_when_rows_were_lost_to_the_files_encoding(tmp_path, app_config):
    from backend import create_app

    with app_config["catalog_path"].open("ab") as handle:  # a Windows-1250 row: not Windows-1252
        handle.write("cz,Ťažký,toys,1,images/p1.png\n".encode("cp1250"))
    result = create_app(app_config).test_cli_runner().invoke(args=["index"])
    assert result.exit_code == 1
    assert "7 added" in result.output  # the readable rows are indexed all the same
    assert "1 row of products.csv could not be read and is not searchable" in result.output
    assert "not valid UTF-8" in result.output and "CSV UTF-8" in result.output
