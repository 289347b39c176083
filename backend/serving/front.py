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
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..config import Settings
from ..config.server import server_value
from ..web.errors import TOO_LARGE_PATH
from ..web.security import FORM_OVERHEAD_BYTES, SECURITY_HEADERS

# Seconds a client may take to send its headers, or between two reads of its body: a client
# trickling a byte every 5 s is cut off.
CLIENT_TIMEOUT = 4
SEND_TIMEOUT = 10  # seconds between two writes an answer may wait for the client to read
# Connections nginx holds at once: 4,096 clients, each one also a socket to gunicorn at worst.
WORKER_CONNECTIONS = 8192
# Per client address: requests being processed at once (a browser opens about 6 connections),
# and requests a second, with a burst above it: a page of 100 products asks for its 100
# thumbnails at once.
CONNECTIONS_PER_CLIENT = 16
REQUESTS_PER_SECOND = 20
REQUEST_BURST = 150
_TOO_LARGE_JSON = TOO_LARGE_PATH + ".json"  # nginx's own name: the app's page, asked for JSON
_TOO_MANY_REQUESTS = json.dumps(
    {
        "error": "too_many_requests",
        "message": "too many requests from your address at once; try again in a few seconds",
    }
)
_PR_SET_PDEATHSIG = 1


class FrontError(RuntimeError):
    """The front cannot be used as configured (FRONT=nginx without nginx)."""


@dataclass
class Front:
    """nginx on the public address, proxying to gunicorn on a unix socket in a private folder."""

    host: str
    port: int
    run_dir: Path
    max_body_bytes: int
    upstream_timeout: int
    # Proxies whose X-Forwarded-For names the client (FORWARDED_ALLOW_IPS): the limits then hold
    # per client behind them instead of for all their clients together.
    trusted_proxies: tuple[str, ...] = ()
    process: subprocess.Popen | None = None

    @property
    def socket(self) -> Path:
        return self.run_dir / "gunicorn.sock"

    @property
    def config_path(self) -> Path:
        return self.run_dir / "nginx.conf"

    def render(self) -> str:
        """nginx.conf for this front."""
        run = self.run_dir
        user = "user root;" if os.geteuid() == 0 else ""  # workers must reach the socket
        listen = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
        proxy = _PROXY.format(timeout=self.upstream_timeout)
        bodyless = _PROXY_WITHOUT_BODY.format(timeout=self.upstream_timeout)
        bodyless_to_page = bodyless.replace("http://app;", f"http://app{TOO_LARGE_PATH};")
        return f"""# Rendered by backend/serving/front.py at start-up.
daemon off;
worker_processes 1;
worker_rlimit_nofile {2 * WORKER_CONNECTIONS + 64};
pid {run}/nginx.pid;
error_log stderr warn;
{user}
events {{ worker_connections {WORKER_CONNECTIONS}; }}
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
    send_timeout {SEND_TIMEOUT}s;
    keepalive_timeout 5s;
    reset_timedout_connection on;
    # A refused request's unread body is not waited for long.
    lingering_time {CLIENT_TIMEOUT}s;
    lingering_timeout 2s;
{self._client_limits()}
    upstream app {{ server unix:{self.socket}; }}
    server {{
        listen {listen};
        # The app's headers, on every answer: the app's own and nginx's errors (400, 408, 413).
{_security_headers()}
        location / {{
            error_page 413 {TOO_LARGE_PATH};
{proxy}
        }}
        location /api/ {{
            error_page 413 {_TOO_LARGE_JSON};
            error_page 429 @too_many_requests;
{proxy}
        }}
        # The per-client limits answer API clients in the API's own shape, without the app.
        location @too_many_requests {{
            default_type application/json;
            return 429 '{_TOO_MANY_REQUESTS}';
        }}
        # A body over the limit is answered by the app's own 413 (its page, or JSON for the
        # API), asked for without the body nginx refused to read.
        location = {TOO_LARGE_PATH} {{
            internal;
{bodyless}
        }}
        location = {_TOO_LARGE_JSON} {{
            internal;
            proxy_set_header Accept application/json;
{bodyless_to_page}
        }}
    }}
}}
"""

    def _client_limits(self) -> str:
        """Per-client connection and request limits, keyed on the client's address."""
        trusted = "".join(f"    set_real_ip_from {proxy};\n" for proxy in self.trusted_proxies)
        real_ip = (
            f"{trusted}    real_ip_header X-Forwarded-For;\n    real_ip_recursive on;\n"
            if trusted
            else ""
        )
        return f"""{real_ip}    # The local health check (127.0.0.1, ::1) is never turned away; everyone else is limited.
    geo $limited {{
        default 1;
        127.0.0.1 0;
        ::1 0;
    }}
    map $limited $limit_key {{
        0 "";
        default $binary_remote_addr;
    }}
    limit_conn_zone $limit_key zone=per_client:4m;
    limit_conn per_client {CONNECTIONS_PER_CLIENT};
    limit_req_zone $limit_key zone=requests:4m rate={REQUESTS_PER_SECOND}r/s;
    limit_req zone=requests burst={REQUEST_BURST} nodelay;
    limit_conn_status 429;
    limit_req_status 429;
    limit_conn_log_level warn;
    limit_req_log_level warn;"""

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
        process = self.process
        if process is None:
            raise FrontError("nginx is not started: nothing to watch")

        def wait() -> None:
            code = process.wait()
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
    """The front FRONT asks for (checked against its choices by the server settings): nginx,
    none, or (auto) nginx when it is installed."""
    if kind == "none" or (kind == "auto" and shutil.which("nginx") is None):
        return None
    if shutil.which("nginx") is None:
        raise FrontError("FRONT=nginx but nginx is not installed; install it, or set FRONT=none")
    run_dir = Path(tempfile.mkdtemp(prefix="search-front-"))
    # The app's own request limit (MAX_CONTENT_LENGTH): whatever nginx passes on, the app reads
    # whole, so it never refuses a body unread and closes on nginx mid-send (a 502). A larger
    # body is refused by nginx, with the app's 413 (error_page).
    max_body = settings.max_upload_bytes + FORM_OVERHEAD_BYTES
    return Front(host, port, run_dir, max_body, timeout, trusted_proxies(os.environ))


def trusted_proxies(environ: Mapping[str, str]) -> tuple[str, ...]:
    """The addresses of FORWARDED_ALLOW_IPS, when set; gunicorn's default (loopback) is not."""
    raw = server_value("FORWARDED_ALLOW_IPS", environ) or ""
    names = [name.strip() for name in raw.split(",") if name.strip()]
    return tuple("0.0.0.0/0" if name == "*" else name for name in names) + (
        ("::/0",) if "*" in names else ()
    )


def _security_headers() -> str:
    return "\n".join(
        f'        proxy_hide_header {name};\n        add_header {name} "{value}" always;'
        for name, value in SECURITY_HEADERS.items()
    )


_PROXY = """            proxy_pass http://app;
            proxy_http_version 1.1;  # gunicorn's log then shows the protocol clients use
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_read_timeout {timeout}s;"""
_PROXY_WITHOUT_BODY = (
    """            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header Content-Type "";
"""
    + _PROXY
)


def _die_with_parent() -> None:
    """In the child: ask Linux to stop it if the gunicorn master dies without cleaning up."""
    with contextlib.suppress(OSError, AttributeError):  # not Linux: stopped by on_exit only
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
