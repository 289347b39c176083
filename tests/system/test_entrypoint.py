"""The Docker image's entrypoint, run here as the image runs it: started as root on a root-owned
disk (as Render mounts one), it hands the data folders to the app's user and runs the server as
that user; started as another user, it changes nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.servers import ROOT

ENTRYPOINT = ROOT / "docker-entrypoint.sh"
USER, UID = "nobody", 65534  # stands for the image's `app`: a user without rights on the disk

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="needs root (to own the disk and change owners) and setpriv, as in the image",
)


@pytest.fixture
def disk() -> Iterator[Path]:
    """A root-owned folder with a file made in a root shell, where the user can reach it (not
    under pytest's private tmp folder)."""
    base = Path(tempfile.mkdtemp(prefix="entrypoint-", dir="/tmp"))
    try:
        base.chmod(0o755)
        disk = base / "data"
        (disk / "shop").mkdir(parents=True)
        (disk / "shop" / "products.csv").write_text("id,name,category,price,image_url\n")
        yield disk
    finally:
        shutil.rmtree(base)


def env_for(disk: Path) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "APP_USER": USER,
        "INDEX_PATH": str(disk / "index.csv"),
        "CACHE_DIR": str(disk / "cache"),
    }


# What the server does on the disk: write index.csv, fill the cache, let an admin edit rewrite
# the catalog; and say who and which process it is.
WRITES = (
    'echo "$(id -u) $$"; echo row > "$INDEX_PATH"; mkdir -p "$CACHE_DIR/images"; '
    'echo p1,Tea,drinks,2.5,tea.jpg >> "$(dirname "$INDEX_PATH")/shop/products.csv"'
)


def run(command: list[str], env: dict[str, str]) -> tuple[subprocess.Popen, str, str]:
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    out, err = process.communicate(timeout=60)
    return process, out, err


def as_user(command: list[str]) -> list[str]:
    return ["setpriv", f"--reuid={UID}", f"--regid={UID}", "--clear-groups", "--", *command]


def owners(disk: Path) -> set[int]:
    return {path.stat().st_uid for path in [disk, *disk.rglob("*")]}


def test_the_user_cannot_write_a_root_owned_disk_by_itself(disk):
    process, _, err = run(as_user(["sh", "-c", WRITES]), env_for(disk))
    assert process.returncode != 0 and "Permission denied" in err


def test_started_as_root_it_hands_the_disk_over_and_runs_the_command_as_the_user(disk):
    process, out, err = run([str(ENTRYPOINT), "sh", "-c", WRITES], env_for(disk))
    assert process.returncode == 0, err
    uid, pid = out.split()
    # The user's process, and the same process: exec'd, so it gets the stop signal itself.
    assert (int(uid), int(pid)) == (UID, process.pid)
    assert (disk / "index.csv").read_text() == "row\n"
    assert (disk / "shop" / "products.csv").read_text().endswith("p1,Tea,drinks,2.5,tea.jpg\n")
    assert owners(disk) == {UID}


def test_a_file_left_by_a_root_shell_is_handed_over_at_the_next_start(disk):
    run([str(ENTRYPOINT), "true"], env_for(disk))
    (disk / "cache" / "left-by-root").write_text("x")  # e.g. `flask index` in a root shell
    assert owners(disk) == {0, UID}
    process, _, err = run([str(ENTRYPOINT), "sh", "-c", WRITES], env_for(disk))
    assert process.returncode == 0, err
    assert owners(disk) == {UID}


def test_started_as_another_user_it_changes_nothing(disk):
    writable = disk / "mine"
    writable.mkdir()
    os.chown(writable, UID, UID)
    env = env_for(disk) | {"INDEX_PATH": str(writable / "index.csv"), "CACHE_DIR": str(writable)}
    process, out, err = run(
        as_user([str(ENTRYPOINT), "sh", "-c", 'id -u; touch "$INDEX_PATH"']), env
    )
    assert process.returncode == 0, err
    assert out.split() == [str(UID)]
    assert disk.stat().st_uid == 0 and (disk / "shop" / "products.csv").stat().st_uid == 0
