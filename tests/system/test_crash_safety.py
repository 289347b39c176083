"""Crash safety: kill -9 at any moment never leaves a partial index.csv or cached image behind."""

from __future__ import annotations

import hashlib
import logging
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from backend import create_app
from backend.atomic import atomic_write_bytes, atomic_writer, temp_files
from backend.extensions import get_service
from backend.index.index_file import read_index
from tests.support.catalogs import COLOURS, TEST_MODEL, draw_image, image_bytes
from tests.support.http_servers import Handler, ImageServer, serve

ROOT = Path(__file__).resolve().parents[2]
SHAPES = ("circle", "square", "stripes", "triangle")
KILLS = 20
CHECKPOINT_EVERY = 1
GATED = "gated"  # the product whose image download waits for the gate: the build cannot finish
SUMMARY = re.compile(r"(\d+) added, (\d+) updated, (\d+) removed, (\d+) unchanged, (\d+) failed")

# A writer that dies half-way through replacing a file: it writes, says so, then waits to be killed.
HALF_WRITER = """
import sys, time
from pathlib import Path
from backend.extensions import get_service
from backend.atomic import atomic_writer
with atomic_writer(Path(sys.argv[1]), "wb") as handle:
    handle.write(b"partial")
    handle.flush()
    print("writing", flush=True)
    time.sleep(60)
"""


def test_a_writer_killed_mid_write_leaves_the_old_file_and_the_next_write_cleans_up(tmp_path):
    target = tmp_path / "index.csv"
    atomic_write_bytes(target, b"complete")
    with subprocess.Popen(
        [sys.executable, "-c", HALF_WRITER, str(target)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    ) as writer:
        assert writer.stdout.readline() == "writing\n"
        writer.send_signal(signal.SIGKILL)
        writer.wait(10)
    assert target.read_bytes() == b"complete"
    [stale] = temp_files(target)
    assert stale.read_bytes() == b"partial"
    atomic_write_bytes(target, b"next")
    assert target.read_bytes() == b"next"
    assert temp_files(target) == []


def test_a_live_writer_is_waited_for_and_its_temp_file_kept(tmp_path):
    target = tmp_path / "index.csv"
    writing, release = threading.Event(), threading.Event()

    def slow_writer() -> None:
        with atomic_writer(target, "wb") as handle:
            handle.write(b"first")
            writing.set()
            release.wait(10)

    first = threading.Thread(target=slow_writer)
    first.start()
    assert writing.wait(10)
    second = threading.Thread(target=atomic_write_bytes, args=(target, b"second"))
    second.start()
    second.join(0.3)
    assert second.is_alive()  # blocked on the folder lock, not deleting the live temp file
    assert len(temp_files(target)) == 1
    release.set()
    first.join(10)
    second.join(10)
    assert target.read_bytes() == b"second"
    assert temp_files(target) == []


def test_a_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "index.csv"
    atomic_write_bytes(target, b"complete")
    with pytest.raises(RuntimeError), atomic_writer(target, "wb") as handle:
        handle.write(b"half")
        raise RuntimeError("disk full")
    assert target.read_bytes() == b"complete"
    assert temp_files(target) == []


class Shop:
    """A catalog that changes between builds: local images redrawn, remote ones re-versioned."""

    def __init__(self, folder: Path, server: ImageServer, rng: random.Random) -> None:
        self.folder, self.server, self.rng = folder, server, rng
        self.rows: dict[str, str] = {}  # id -> image_url
        self.versions: dict[str, int] = {}
        self.next_id = 0
        (folder / "images").mkdir(parents=True)
        for _ in range(8):
            self.add_local()
        for _ in range(2):
            self.add_remote()
        self.gated_version = 0
        self.write()

    def add_local(self) -> None:
        pid = self._new_id()
        self.rows[pid] = f"images/{pid}.png"
        self.redraw(pid)

    def add_remote(self) -> None:
        pid = self._new_id()
        self.versions[pid] = 0
        self.rows[pid] = self.server.url(f"/img/{pid}-0.png")

    def redraw(self, pid: str) -> None:
        size = (self.rng.randint(64, 220), self.rng.randint(64, 220))
        image = draw_image(self.rng.choice(list(COLOURS)), self.rng.choice(SHAPES), size)
        image.save(self.folder / self.rows[pid])

    def change(self, trial: int) -> None:
        """Give the next build work: new content, new URLs, and now and then a new product."""
        local = [pid for pid, url in self.rows.items() if not url.startswith("http")]
        # Most images change, so a build runs long enough after its first checkpoint to be killed.
        for pid in self.rng.sample(local, 6):
            self.redraw(pid)
        if trial % 2:
            remote = self.rng.choice([pid for pid in self.rows if pid in self.versions])
            self.versions[remote] += 1
            self.rows[remote] = self.server.url(f"/img/{remote}-{self.versions[remote]}.png")
        if trial % 3 == 2:
            del self.rows[self.rng.choice(local)]
            self.add_local()
        self.write()

    def write(self) -> None:
        # Last in the catalog, so every other product is embedded (and checkpointed) before the
        # build waits for it; a new URL each time, so every build has to fetch it.
        self.rows.pop(GATED, None)
        self.gated_version += 1
        self.rows[GATED] = self.server.url(f"/gate/{GATED}-{self.gated_version}.png")
        lines = ["id,name,category,price,image_url"]
        lines += [f"{pid},Item {pid},things,1.50,{url}" for pid, url in self.rows.items()]
        (self.folder / "products.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")

    def expected_summary(self, index: Path, model: str) -> str:
        """What the next complete sync must report, judged from index.csv alone."""
        entries = {entry.id: entry for entry in read_index(index).entries}
        added = [pid for pid in self.rows if pid not in entries]
        removed = [pid for pid in entries if pid not in self.rows]
        fresh = [pid for pid in self.rows if pid in entries and self.is_fresh(entries[pid], model)]
        updated = len(self.rows) - len(added) - len(fresh)
        return f"{len(added)} added, {updated} updated, {len(removed)} removed, {len(fresh)} unchanged, 0 failed"  # noqa: E501

    def is_fresh(self, entry, model: str) -> bool:
        url = self.rows[entry.id]
        if entry.source != url or entry.model != model:
            return False
        if url.startswith("http"):
            return True  # a remote image is known by its URL
        return entry.fingerprint == hashlib.sha256((self.folder / url).read_bytes()).hexdigest()

    def _new_id(self) -> str:
        self.next_id += 1
        return f"p{self.next_id}"


def draw_by_path(handler: Handler) -> None:
    """/img/<id>-<version>.png: a picture that depends on the path only; remembers what it sent."""
    seed = int(hashlib.sha256(handler.path.encode()).hexdigest(), 16)
    body = image_bytes(draw_image(list(COLOURS)[seed % 6], SHAPES[seed // 6 % 4]))
    handler.server.served.add(body)
    handler.reply(200, "image/png", body)


def draw_after_the_gate(handler: Handler) -> None:
    """/gate/...: the same pictures, sent only once the test opens the gate."""
    handler.server.gate.wait(30)
    draw_by_path(handler)


@pytest.fixture
def drawing_server() -> Iterator[ImageServer]:
    server = ImageServer({"/img/": draw_by_path, "/gate/": draw_after_the_gate})
    server.served = set()
    server.gate = threading.Event()
    server.gate.set()
    yield from serve(server)


class ForkServer:
    """Runs `flask --app backend index` children that start in milliseconds (see forkserver.py)."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.logs = logs
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.forkserver"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def ask(self, line: str) -> str:
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        return self.process.stdout.readline().strip()

    def start_index(self, name: str) -> tuple[int, Path]:
        log = self.logs / f"{name}.log"
        return int(self.ask(f"run {log} --app backend index")), log

    def wait(self, pid: int) -> int:
        return int(self.ask(f"wait {pid}"))

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(10)
        self.process.stdout.close()


def index_env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "CATALOG_PATH": str(tmp_path / "shop" / "products.csv"),
        "INDEX_PATH": str(tmp_path / "index" / "index.csv"),
        "CACHE_DIR": str(tmp_path / "cache"),
        "MODEL": TEST_MODEL,
        "MODEL_WEIGHTS": "random",
        "FETCH_ALLOW_LOOPBACK": "true",
        "INDEX_CHECKPOINT_EVERY": str(CHECKPOINT_EVERY),
    }


def kill_at_random_moment(
    children: ForkServer, index: Path, trial: int, rng: random.Random, gate: threading.Event
) -> None:
    """Start a build and kill -9 it: after its first checkpoint, or (every 4th) blindly.

    The gated image is held back until the kill has landed, so the build cannot finish first,
    however fast the machine: every build is a kill, by construction.
    """
    before = index.stat().st_ino if index.exists() else None
    gate.clear()
    pid, log = children.start_index(f"kill-{trial}")
    started = time.monotonic()
    if trial % 4 == 3:
        time.sleep(rng.uniform(0.0, 1.0))
    else:
        while (
            time.monotonic() - started < 20
            and (index.stat().st_ino if index.exists() else None) == before
        ):
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.1))
    os.kill(pid, signal.SIGKILL)
    status = children.wait(pid)
    gate.set()
    assert status == -signal.SIGKILL, log.read_text()


def cache_files(cache: Path) -> tuple[list[Path], list[Path]]:
    files = [path for path in cache.rglob("*") if path.is_file()]
    temps = [path for path in files if path.name.endswith(".tmp")]
    return [path for path in files if path not in temps], temps


def assert_nothing_lost(index: Path, before: dict, shop: Shop, model: str, caplog) -> None:
    """index.csv loads whole, and every row fresh before the build and not since changed survives."""
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="backend.index.index_file"):
        after = rows_of(index)
    assert caplog.records == []  # read_index warns (and starts over) on a file it cannot parse
    for pid, (entry, vector) in before.items():
        if pid in shop.rows and shop.is_fresh(entry, model):
            assert after.get(pid) == (entry, vector), f"row {pid} was lost"
    assert len(temp_files(index)) <= 1  # at most the one the killed writer was writing


def rows_of(index: Path) -> dict:
    return {entry.id: (entry, vector.tobytes()) for entry, vector in read_index(index).rows()}


@pytest.mark.slow
def test_kill_9_at_random_moments_never_loses_the_index(tmp_path, caplog, drawing_server):
    rng = random.Random(4)
    env = index_env(tmp_path)
    index, cache = Path(env["INDEX_PATH"]), Path(env["CACHE_DIR"])
    shop = Shop(tmp_path / "shop", drawing_server, rng)
    app = create_app(
        {
            "catalog_path": Path(env["CATALOG_PATH"]),
            "index_path": index,
            "cache_dir": cache,
            "model": TEST_MODEL,
            "model_weights": "random",
            "fetch_allow_loopback": True,
            "index_checkpoint_every": CHECKPOINT_EVERY,
        }
    )
    cli = app.test_cli_runner()
    model = get_service(app).embedder.identity
    children = ForkServer(env, tmp_path)
    try:
        for trial in range(KILLS):
            shop.change(trial)
            before = rows_of(index)
            kill_at_random_moment(children, index, trial, rng, drawing_server.gate)
            assert_nothing_lost(index, before, shop, model, caplog)
            complete, _ = cache_files(cache)
            assert all(path.read_bytes() in drawing_server.served for path in complete)

            # The next sync embeds exactly what was missing, and removes the dead writer's debris.
            expected = shop.expected_summary(index, model)
            result = cli.invoke(args=["index"])
            assert result.exit_code == 0, result.output
            assert SUMMARY.search(result.output).group(0) == expected, f"trial {trial}"
            assert temp_files(index) == [] and cache_files(cache)[1] == []
    finally:
        children.close()

    # A real `flask` process agrees that nothing is left to do.
    final = subprocess.run(
        [str(Path(sys.executable).with_name("flask")), "--app", "backend", "index"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert final.returncode == 0, final.stderr
    assert f"0 added, 0 updated, 0 removed, {len(shop.rows)} unchanged, 0 failed" in final.stdout
