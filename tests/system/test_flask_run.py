"""`flask --app backend run`, Flask's development server: it loads the index at start, so
/readyz turns ready with no search (gunicorn syncs before its workers start)."""

from __future__ import annotations

import pytest

from tests.support.servers import VENV_BIN, free_port, running, server_env, wait_ready

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("options", [[], ["--debug"]], ids=["plain", "debug-with-reloader"])
def test_flask_run_turns_ready_without_a_search(tmp_path, options):
    port = free_port()
    # The colour histogram needs no weights: what is measured is when the index loads.
    env = server_env(tmp_path, port, MODEL="color_histogram")
    env.pop("MODEL_WEIGHTS")
    log = tmp_path / "flask.log"
    command = [str(VENV_BIN / "flask"), "--app", "backend", *options, "run", "--port", str(port)]
    with running(command, env, log) as server:
        ready = wait_ready(f"http://127.0.0.1:{port}", server, log, seconds=120)
    assert (ready["status"], ready["indexed"], ready["catalog_size"]) == ("ready", 7, 7)
    assert (tmp_path / "data" / "index.csv").is_file()
    log_text = log.read_text()
    assert "POST /api/search" not in log_text and "POST /search" not in log_text
    # One sync, by the serving process: not by the reloader's watcher too.
    assert log_text.count(f"; syncing {tmp_path / 'data' / 'index.csv'}") == 1
