"""A real Milvus server for the tests, from PyPI's `milvus` wheel (Milvus 2.3 with embedded etcd).

`milvus_server` starts one private Milvus Standalone per test session in a temp folder of its
own (data, logs, the unpacked binary) on free loopback ports, and stops it and deletes the folder
at the end; `milvus_uri` gives each test its own empty database on it, as an http:// URI. Where
the wheel is missing the tests that ask for them skip, naming it (CI installs it: it is in
requirements-dev.txt).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from tests.support.mariadb import free_port

PACKAGE_HINT = "Milvus tests need the milvus wheel (requirements-dev.txt)"
# Every port the embedded server listens on (its template's keys); each gets a free one.
PORT_KEYS = (
    "etcd_port",
    "proxy_port",
    "proxy_internal_port",
    "root_coord_port",
    "query_coord_port",
    "query_node_port",
    "index_coord_port",
    "index_node_port",
    "data_coord_port",
    "data_node_port",
)


def _state(task: Path) -> str:
    """A thread's state letter in /proc (T: stopped)."""
    try:
        return (task / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:  # the thread has ended
        return "T"


def embedded_etcd_config(folder: Path, client_port: int) -> Path:
    """The embedded etcd's own listeners, on free ports (left to it, they are 2379 and 2380)."""
    client, peer = f"http://127.0.0.1:{client_port}", f"http://127.0.0.1:{free_port()}"
    path = folder / "embed-etcd.yaml"
    path.write_text(
        f"listen-client-urls: {client}\nadvertise-client-urls: {client}\n"
        f"listen-peer-urls: {peer}\ninitial-advertise-peer-urls: {peer}\n"
        f"initial-cluster: default={peer}\n"
    )
    return path


class Milvus:
    """One private server: its folder and ports; stopped, paused and started again at will."""

    def __init__(self, folder: Path) -> None:
        from milvus import MilvusServer, MilvusServerConfig

        self.folder = folder
        self.ports = {key: free_port() for key in PORT_KEYS}
        etcd = embedded_etcd_config(folder, self.ports["etcd_port"])

        class Config(MilvusServerConfig):
            def update_extra_configs(self, content: str) -> str:
                # The template has no key for it: point the embedded etcd at its file.
                content = content.replace("\netcd:\n", f"\netcd:\n  config:\n    path: {etcd}\n", 1)
                return super().update_extra_configs(content)

            def try_bind_port(self, port: int) -> socket.socket | None:
                # Its check that a port is free, as the server binds it (SO_REUSEADDR): after a
                # restart the old connections' TIME_WAIT must not make the same port look taken.
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind(("127.0.0.1", port))
                    sock.listen()
                except OSError:
                    sock.close()
                    return None
                return sock

        self.server = MilvusServer(Config(data_dir=str(folder), **self.ports))
        # Its health port: found free here, so the server's own search from 9091 upwards (which
        # leaves a socket open for every port it finds taken) succeeds at once.
        self.server.webservice_port = free_port()

    @property
    def port(self) -> int:
        return self.ports["proxy_port"]

    def uri(self, database: str = "") -> str:
        return f"http://127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        self.server.start()  # waits for its health check (up to 3 minutes)

    def stop(self) -> None:
        """Stop as an operator would (SIGTERM, then wait): what was written is kept."""
        process = self.server.server_proc
        if process is None:
            return
        process.terminate()
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        self.server.stop()  # closes its log files; the process is gone already
        # The one file the binary writes outside its folder, named by its process id.
        Path(f"/tmp/milvus/server_id_{process.pid}").unlink(missing_ok=True)

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): it keeps its connections but answers nothing."""
        pid = self.server.server_proc.pid
        os.kill(pid, signal.SIGSTOP)
        deadline = time.monotonic() + 10
        while not all(_state(task) == "T" for task in Path(f"/proc/{pid}/task").iterdir()):
            if time.monotonic() > deadline:
                raise RuntimeError("Milvus did not stop on SIGSTOP")
            time.sleep(0.01)

    def resume(self) -> None:
        os.kill(self.server.server_proc.pid, signal.SIGCONT)

    def client(self, database: str = ""):
        from pymilvus import MilvusClient

        return MilvusClient(uri=self.uri(database), timeout=30)

    def create_database(self) -> str:
        name = f"test_{uuid.uuid4().hex[:12]}"
        client = self.client()
        try:
            client.create_database(name)
        finally:
            client.close()
        return name

    def drop_database(self, name: str) -> None:
        client = self.client(name)
        try:
            for collection in client.list_collections():
                client.drop_collection(collection)
            client.drop_database(name)
        finally:
            client.close()


def start_milvus(folder: Path | None = None) -> tuple[Milvus, Path]:
    folder = folder or Path(tempfile.mkdtemp(prefix="search-tests-milvus-"))
    server = Milvus(folder)
    try:
        server.start()
    except BaseException:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return server, folder


@pytest.fixture(scope="session")
def milvus_server():
    try:
        import milvus  # noqa: F401
        import pymilvus  # noqa: F401
    except ImportError as error:
        if os.environ.get("CI") == "true":  # CI installs requirements-dev.txt: never skip there
            pytest.fail(f"{PACKAGE_HINT}: {error}")
        pytest.skip(f"{PACKAGE_HINT}: {error}")
    server, folder = start_milvus()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def milvus_uri(milvus_server) -> str:
    """A fresh, empty database on the private server, as an http:// URI naming it."""
    name = milvus_server.create_database()
    yield milvus_server.uri(name)
    if milvus_server.server.server_proc is None:  # a test that stopped it must leave it running
        milvus_server.start()
    milvus_server.drop_database(name)
