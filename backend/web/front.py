"""The buffering front: nginx reads each whole request before gunicorn's threads see it.

A gunicorn thread reads a request itself, so a client trickling its headers or body one byte a
second holds that thread; four such clients held all four. nginx reads requests with an event
loop (thousands of connections, header and body timeouts, size limit) and hands gunicorn only
complete ones over a private unix socket. The gunicorn master starts nginx (`gunicorn.conf.py`)
and stops it; the configuration is rendered here from the settings, and it adds the security
headers to every response, nginx's own error pages included.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from ..config import Settings
from .security import FORM_OVERHEAD_BYTES, SECURITY_HEADERS

FRONTS = ("auto", "nginx", "none")
# Seconds a client may take to send its headers, or between two reads of its body.
CLIENT_TIMEOUT = 10
_PR_SET_PDEATHSIG = 1


class FrontError(RuntimeError):
    """The front cannot be used as configured (FRONT=nginx without nginx, a bad value)."""


@dataclass
class Front:
    """nginx on the public address, proxying to gunicorn on a unix socket in a private folder."""

    host: str
    port: int
    run_dir: Path
    max_body_bytes: int
    upstream_timeout: int
    process: subprocess.Popen | None = None

    @property
    def socket(self) -> Path:
        return self.run_dir / "gunicorn.sock"

    @property
    def config_path(self) -> Path:
        return self.run_dir / "nginx.conf"

    def render(self) -> str:
        """nginx.conf for this front."""
        headers = "\n".join(
            f'        proxy_hide_header {name};\n        add_header {name} "{value}" always;'
            for name, value in SECURITY_HEADERS.items()
        )
        run = self.run_dir
        user = "user root;" if os.geteuid() == 0 else ""  # workers must reach the socket
        listen = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
        return f"""# Rendered by backend/web/front.py at start-up.
daemon off;
worker_processes 1;
pid {run}/nginx.pid;
error_log stderr warn;
{user}
events {{ worker_connections 1024; }}
http {{
    # gunicorn logs each request (X-Real-IP): a non-root nginx cannot open the container's stdout.
    access_log off;
    server_tokens off;
    client_body_temp_path {run}/body;
    proxy_temp_path {run}/proxy;
    fastcgi_temp_path {run}/fastcgi;
    uwsgi_temp_path {run}/uwsgi;
    scgi_temp_path {run}/scgi;
    # Whole requests, within a time and a size, before gunicorn sees them.
    client_header_timeout {CLIENT_TIMEOUT}s;
    client_body_timeout {CLIENT_TIMEOUT}s;
    large_client_header_buffers 4 8k;
    client_max_body_size {self.max_body_bytes};
    client_body_buffer_size 256k;
    send_timeout 30s;
    keepalive_timeout 5s;
    reset_timedout_connection on;
    upstream app {{ server unix:{self.socket}; }}
    server {{
        listen {listen};
        # The app's headers, on every answer: the app's own and nginx's errors (400, 408, 413).
{headers}
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;  # gunicorn's log then shows the protocol clients use
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_read_timeout {self.upstream_timeout}s;
        }}
    }}
}}
"""

    def start(self) -> None:
        """Write the configuration and start nginx; it dies with the calling process."""
        for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.run_dir / name).mkdir(exist_ok=True)
        self.config_path.write_text(self.render())
        self.process = subprocess.Popen(
            ["nginx", "-p", str(self.run_dir), "-e", "stderr", "-c", str(self.config_path)],
            preexec_fn=_die_with_parent,  # the master has no other thread yet
        )

    def watch(self, on_exit) -> None:
        """Call on_exit(returncode) from a daemon thread if nginx stops on its own."""

        def wait() -> None:
            code = self.process.wait()
            if not self._stopping:
                on_exit(code)

        self._stopping = False
        threading.Thread(target=wait, name="front-watch", daemon=True).start()

    def stop(self) -> None:
        """Stop nginx gracefully (a few seconds at most) and remove the private folder."""
        self._stopping = True
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.run_dir, ignore_errors=True)


def choose_front(kind: str, host: str, port: int, settings: Settings, timeout: int) -> Front | None:
    """The front FRONT asks for: nginx, none, or (auto) nginx when it is installed."""
    if kind not in FRONTS:
        raise FrontError(f"FRONT={kind!r} must be one of {', '.join(FRONTS)}")
    if kind == "none" or (kind == "auto" and shutil.which("nginx") is None):
        return None
    if shutil.which("nginx") is None:
        raise FrontError("FRONT=nginx but nginx is not installed; install it, or set FRONT=none")
    run_dir = Path(tempfile.mkdtemp(prefix="search-front-"))
    # A little over the app's own limit, so that a slightly oversized upload gets the app's
    # answer (its page, or JSON); nginx refuses anything larger before reading it.
    max_body = settings.max_upload_bytes + FORM_OVERHEAD_BYTES + 1024 * 1024
    return Front(host, port, run_dir, max_body, timeout)


def _die_with_parent() -> None:
    """In the child: ask Linux to stop it if the gunicorn master dies without cleaning up."""
    with contextlib.suppress(OSError, AttributeError):  # not Linux: stopped by on_exit only
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
