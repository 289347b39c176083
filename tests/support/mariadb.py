"""A throwaway MariaDB for the tests, from Debian's `mariadb-server` package.

`mariadb_server` runs `mariadb-install-db` into a temp folder of its own and starts `mariadbd`
on a free loopback port (and a socket in that folder), with nothing of the system's read or
touched (`--no-defaults`), once per test session, and stops it and deletes the folder at the end.
`mysql_url` gives each test its own empty database, reached as a password-protected user over
TCP. Where `mariadbd` is missing the tests that ask for them skip, naming the package.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

PACKAGE_HINT = "MySQL tests need Debian's mariadb-server package (apt-get install mariadb-server)"
USER = "shop"
PASSWORD = "s3cret-Pw_42"


def find_program(name: str) -> str | None:
    """A MariaDB program on PATH, or in the sbin folders a non-root PATH leaves out."""
    return shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/usr/bin") / name) if p.is_file()),
        None,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class MariaDB:
    """One private server: its data folder, socket and port; stopped and started at will."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.data = folder / "data"
        self.socket = folder / "mariadb.sock"
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self._as_root = ["--user=root"] if os.geteuid() == 0 else []

    def install(self) -> None:
        subprocess.run(
            [
                find_program("mariadb-install-db"),
                "--no-defaults",
                f"--datadir={self.data}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--skip-name-resolve",
                *self._as_root,
            ],
            check=True,
            capture_output=True,
            timeout=600,  # minutes on a busy machine
        )

    def start(self, timeout: float = 180) -> None:
        log = self.folder / "mariadbd.log"
        self.process = subprocess.Popen(
            [
                find_program("mariadbd"),
                "--no-defaults",
                f"--datadir={self.data}",
                f"--socket={self.socket}",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                f"--pid-file={self.folder / 'mariadbd.pid'}",
                f"--log-error={log}",
                f"--tmpdir={self.folder}",
                "--skip-name-resolve",
                "--skip-log-bin",
                "--innodb-buffer-pool-size=128M",
                "--innodb-log-file-size=48M",
                "--max-allowed-packet=64M",
                "--innodb-flush-log-at-trx-commit=2",
                *self._as_root,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = log.read_text(errors="replace")[-2000:] if log.is_file() else ""
                raise RuntimeError(f"mariadbd exited with {self.process.returncode}: {tail}")
            if self._accepts():
                self.admin().close()
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"mariadbd did not answer within {timeout:g} s")

    def _accepts(self) -> bool:
        """The server listens on its socket (checked raw: a refused driver connect leaks it)."""
        with socket.socket(socket.AF_UNIX) as probe:
            try:
                probe.connect(str(self.socket))
            except OSError:
                return False
        return True

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # a clean InnoDB shutdown: nothing committed is lost
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    def admin(self):
        import pymysql

        return pymysql.connect(unix_socket=str(self.socket), user="root", autocommit=True)

    def create_database(self) -> str:
        """A new empty database that USER may use; return its mysql:// URL (over TCP)."""
        name = f"test_{uuid.uuid4().hex[:12]}"
        with self.admin() as conn, conn.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {name}")
            cursor.execute(f"GRANT ALL ON {name}.* TO '{USER}'@'127.0.0.1'")
        return self.url(name)

    def url(self, database: str, password: str = PASSWORD) -> str:
        return f"mysql://{USER}:{password}@127.0.0.1:{self.port}/{database}"

    def drop_database(self, name: str) -> None:
        with self.admin() as conn, conn.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {name}")


def start_mariadb(folder: Path | None = None) -> tuple[MariaDB, Path]:
    """Install and start a private server in folder (a new temp one), with USER created."""
    folder = folder or Path(tempfile.mkdtemp(prefix="search-tests-mariadb-"))
    folder.mkdir(parents=True, exist_ok=True)
    server = MariaDB(folder)
    server.install()
    server.start()
    with server.admin() as conn, conn.cursor() as cursor:
        cursor.execute(f"CREATE USER '{USER}'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}'")
    return server, folder


@pytest.fixture(scope="session")
def mariadb_server():
    if find_program("mariadbd") is None or find_program("mariadb-install-db") is None:
        pytest.skip(PACKAGE_HINT)
    server, folder = start_mariadb()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def mysql_url(mariadb_server) -> str:
    """A fresh, empty database on the private server, as a mysql:// URL with a password."""
    url = mariadb_server.create_database()
    yield url
    if mariadb_server.process is None:  # a test that stopped the server must leave it running
        mariadb_server.start()
    mariadb_server.drop_database(url.rsplit("/", 1)[1])
