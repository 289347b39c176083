"""Fetch images from outside URLs safely: the one module that talks HTTP to the internet.

Anyone can paste a URL, so every hop is checked: http(s) only, no credentials, allowed ports,
every resolved address public. The connection then goes to a checked address (pinned), so a
second DNS answer cannot redirect it (DNS rebinding); Host, TLS SNI and the certificate check
still use the name. Every failure raises `FetchError` (HTTP 400) with a sentence for the user.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import partial
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util.connection import create_connection

from ..errors import FetchError
from .addresses import IPAddress, refused_kind

MAX_URL_LENGTH = 2048
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CHUNK = 64 * 1024
_MB = 1024 * 1024
_LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NETWORK_ERRORS = (
    requests.RequestException,
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
    OSError,
)


@dataclass(frozen=True)
class FetchPolicy:
    """Limits for one fetch; the defaults suit URLs pasted by shoppers and catalog images."""

    max_bytes: int = 10 * _MB
    connect_timeout: float = 3.05
    read_timeout: float = 10.0
    total_timeout: float = 20.0  # whole fetch incl. redirects; defeats slow-drip servers
    max_redirects: int = 3
    allowed_ports: frozenset[int] = frozenset({80, 443})
    allow_loopback: bool = False  # TEST ONLY, unsafe: allows 127.0.0.0/8 and ::1, on any port
    user_agent: str = "image-similarity-search/1.0"


@dataclass(frozen=True)
class Fetched:
    """One downloaded image, not yet decoded."""

    content: bytes
    content_type: str  # media type without parameters, e.g. "image/png"
    url: str  # final URL after redirects


def validate_url(url: str, policy: FetchPolicy = FetchPolicy()) -> None:
    """Refuse a URL on its syntax alone (scheme, credentials, port, host form); no network."""
    _parse(url, policy)


def fetch(url: str, policy: FetchPolicy = FetchPolicy()) -> Fetched:
    """Download one image, following at most `max_redirects` redirects, each checked anew."""
    deadline = _Deadline(policy.total_timeout)
    seen: set[str] = set()
    try:
        for _ in range(policy.max_redirects + 1):
            seen.add(url)
            with _open(url, policy, deadline) as response:
                location = response.headers.get("Location")
                if response.status_code not in _REDIRECTS or not location:
                    return _accept(response, url, policy, deadline)
            url = urljoin(url, location)
            if url in seen:
                raise FetchError("image URL redirects in a loop")
        raise FetchError(f"image URL redirected more than {policy.max_redirects} times")
    except _NETWORK_ERRORS as exc:
        raise FetchError(_describe(exc, url, policy, deadline)) from exc
    finally:
        deadline.close()


def _parse(url: str, policy: FetchPolicy) -> tuple[str, int]:
    """Return (host, port) of a URL we may fetch, or raise FetchError saying why not."""
    if len(url) > MAX_URL_LENGTH:
        raise FetchError(f"image URL refused: it is longer than {MAX_URL_LENGTH} characters")
    # Parsers disagree on these (urlsplit strips tabs, browsers read "\" as "/"); refuse them.
    if any(char == "\\" or char.isspace() or ord(char) < 32 or ord(char) == 127 for char in url):
        raise FetchError("image URL refused: it contains spaces, control characters or backslashes")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise FetchError("image URL refused: it is not a valid URL") from exc
    scheme = parts.scheme.lower()
    if not scheme:
        raise FetchError("image URL refused: it must start with http:// or https://")
    if scheme not in ("http", "https"):
        raise FetchError(f"image URL refused: scheme '{scheme}' is not allowed, use http or https")
    if "@" in parts.netloc:
        raise FetchError("image URL refused: it contains a user name or password")
    host = parts.hostname
    if not host:
        raise FetchError("image URL refused: it has no host name")
    port = port if port is not None else (443 if scheme == "https" else 80)
    # With allow_loopback, other ports are judged once the host is resolved (loopback only).
    if port not in policy.allowed_ports and not policy.allow_loopback:
        raise _port_refused(port, policy)
    # Single-label names ("redis", "db") reach internal services on PaaS and office networks.
    if "." not in host.rstrip(".") and not _is_ip_literal(host):
        raise FetchError(f"image URL refused: '{host}' is not a public host name")
    return host, port


def _is_ip_literal(host: str) -> bool:
    """Tell whether host is a numeric address, including forms like 2130706433 or 127.1."""
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    try:
        socket.inet_aton(host)  # the C resolver accepts these short and hex forms too
        return True
    except OSError:
        return False


def _resolve(host: str, port: int, policy: FetchPolicy) -> list[str]:
    """Resolve host and return its addresses, refusing all if any one is not public."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise FetchError(f"image URL refused: host '{host}' could not be resolved") from exc
    # An IP host's sockaddr starts with the address as text (the int form is for AF_UNIX only).
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise FetchError(f"image URL refused: host '{host}' has no address")
    parsed = [ipaddress.ip_address(address) for address in addresses]
    for address in parsed:
        reason = _refusal(address, policy)
        if reason:
            raise FetchError(f"image URL refused: {reason}")
    if port not in policy.allowed_ports and not all(map(_is_loopback, parsed)):
        raise _port_refused(port, policy)
    return addresses


def _port_refused(port: int, policy: FetchPolicy) -> FetchError:
    allowed = " and ".join(map(str, sorted(policy.allowed_ports)))
    return FetchError(f"image URL refused: port {port} is not allowed (only {allowed})")


def _is_loopback(address: IPAddress) -> bool:
    return any(address in network for network in _LOOPBACK)


def _refusal(address: IPAddress, policy: FetchPolicy) -> str | None:
    """Say why connecting to address is refused, or return None for a public address."""
    if policy.allow_loopback and _is_loopback(address):
        return None
    for inner in _embedded_ipv4(address):
        kind = refused_kind(inner)
        if kind:
            return f"{address} embeds {inner}, {kind} address"
    # A mapped or NAT64 address is only a way to reach its IPv4, judged above.
    if _translated(address):
        return None
    kind = refused_kind(address)
    return f"{address} is {kind} address" if kind else None


def _embedded_ipv4(address: IPAddress) -> list[ipaddress.IPv4Address]:
    """Return the IPv4 addresses an IPv6 address carries (mapped, NAT64, 6to4, Teredo)."""
    if address.version == 4:
        return []
    if address.ipv4_mapped:
        return [address.ipv4_mapped]
    if address in _NAT64:
        return [ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)]
    if address.sixtofour:
        return [address.sixtofour]
    return list(address.teredo or ())


def _translated(address: IPAddress) -> bool:
    """Tell whether packets to address really go to its embedded IPv4 (mapped or NAT64)."""
    return address.version == 6 and (address.ipv4_mapped is not None or address in _NAT64)


class _Deadline:
    """Cut every connection of one fetch when its total time is up, even mid-read."""

    def __init__(self, seconds: float) -> None:
        self._end = time.monotonic() + seconds
        self._sockets: list[socket.socket] = []
        self._fired = False
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def left(self) -> float:
        """Return the seconds left, zero or less once expired."""
        return self._end - time.monotonic()

    def watch(self, sock: socket.socket) -> None:
        """Keep a duplicate of sock: shutting it down ends reads on the original, TLS or not."""
        with self._lock:
            self._sockets.append(sock.dup())
            if self._fired:
                _shutdown(self._sockets[-1])

    def close(self) -> None:
        """Stop the timer and release the duplicates."""
        self._timer.cancel()
        with self._lock:
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()

    def _fire(self) -> None:
        with self._lock:
            self._fired = True
            for sock in self._sockets:
                _shutdown(sock)


def _shutdown(sock: socket.socket) -> None:
    """Shut a socket down both ways, ignoring one the peer already closed."""
    with suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class _PinnedHTTPConnection(HTTPConnection):
    """Connect to checked addresses only; Host, SNI and the certificate check use the name."""

    def __init__(self, *args, addresses: list[str], deadline: _Deadline, **kwargs) -> None:
        self._addresses = addresses
        self._deadline = deadline
        super().__init__(*args, **kwargs)

    def _new_conn(self) -> socket.socket:
        error: OSError | None = None
        for address in self._addresses:
            try:
                sock = create_connection(
                    (address, self.port), self.timeout, socket_options=self.socket_options
                )
            except TimeoutError as exc:
                raise ConnectTimeoutError(self, f"Connection to {self.host} timed out") from exc
            except OSError as exc:
                error = exc
                continue
            self._deadline.watch(sock)
            return sock
        raise NewConnectionError(self, f"Failed to establish a new connection: {error}")


class _PinnedHTTPSConnection(_PinnedHTTPConnection, HTTPSConnection):
    pass


class _PinnedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _PinnedHTTPConnection


class _PinnedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _PinnedHTTPSConnection


class _PinnedAdapter(HTTPAdapter):
    """A one-hop adapter whose connections go to the checked addresses of its host."""

    def __init__(self, addresses: list[str], deadline: _Deadline) -> None:
        self._addresses = addresses
        self._deadline = deadline
        super().__init__(pool_connections=1, pool_maxsize=1, max_retries=0)

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        addresses, deadline = self._addresses, self._deadline
        pinned = {
            "http": partial(_PinnedHTTPPool, addresses=addresses, deadline=deadline),
            "https": partial(_PinnedHTTPSPool, addresses=addresses, deadline=deadline),
        }
        # urllib3 only calls these (pool_cls(host, port, **kw)); its annotation, a dict of
        # pool classes, is narrower than that use.
        self.poolmanager.pool_classes_by_scheme = pinned  # type: ignore[assignment]


@contextmanager
def _open(url: str, policy: FetchPolicy, deadline: _Deadline) -> Iterator[requests.Response]:
    """Check url, then send one GET to its checked addresses and yield the streamed response."""
    if deadline.left() <= 0:
        raise TimeoutError("total timeout")
    host, port = _parse(url, policy)
    adapter = _PinnedAdapter(_resolve(host, port, policy), deadline)
    headers = {"User-Agent": policy.user_agent, "Accept": "image/*", "Accept-Encoding": "identity"}
    # A bare adapter, not a Session: no proxy settings, .netrc or cookies from the environment.
    request = requests.Request("GET", url, headers=headers).prepare()
    timeout = (
        min(policy.connect_timeout, deadline.left()),
        min(policy.read_timeout, deadline.left()),
    )
    try:
        with adapter.send(request, stream=True, timeout=timeout) as response:
            # Headers cut short by the deadline can parse as a complete response.
            if deadline.left() <= 0:
                raise TimeoutError("total timeout")
            yield response
    finally:
        adapter.close()


def _accept(
    response: requests.Response, url: str, policy: FetchPolicy, deadline: _Deadline
) -> Fetched:
    """Check the final response's status and headers, then read its body within the limits."""
    if response.status_code != 200:
        raise FetchError(f"image URL answered HTTP {response.status_code}")
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        # Decompressing would let a small download expand past any limit (a gzip bomb).
        raise FetchError(
            f"image URL sent compressed content ({encoding}); only plain images are accepted"
        )
    media_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if not media_type.startswith("image/"):
        raise FetchError(f"image URL is not an image ({media_type or 'no content type'})")
    length = response.headers.get("Content-Length", "")
    if length.isdigit() and int(length) > policy.max_bytes:
        raise _too_large(policy)
    return Fetched(_read_body(response, policy, deadline), media_type, url)


def _read_body(response: requests.Response, policy: FetchPolicy, deadline: _Deadline) -> bytes:
    """Read the body, stopping at max_bytes + 1 bytes or at the deadline."""
    body = bytearray()
    while deadline.left() > 0:
        # read1 returns what has arrived instead of waiting for a full chunk from a slow server.
        chunk = response.raw.read1(
            min(_CHUNK, policy.max_bytes + 1 - len(body)), decode_content=False
        )
        if not chunk:
            break
        body += chunk
        if len(body) > policy.max_bytes:
            raise _too_large(policy)
    # The deadline's cut looks like a normal end of a body without Content-Length.
    if deadline.left() <= 0:
        raise TimeoutError("total timeout")
    return bytes(body)


def _too_large(policy: FetchPolicy) -> FetchError:
    limit = (
        f"{policy.max_bytes / _MB:g} MB" if policy.max_bytes >= _MB else f"{policy.max_bytes} bytes"
    )
    return FetchError(f"image at URL is larger than the {limit} limit")


def _describe(exc: Exception, url: str, policy: FetchPolicy, deadline: _Deadline) -> str:
    """Turn a network exception into a sentence for the user, without library internals."""
    host = urlsplit(url).hostname or url
    if deadline.left() <= 0:
        return f"image URL took longer than {policy.total_timeout:g} s to download"
    if isinstance(exc, requests.exceptions.SSLError | urllib3.exceptions.SSLError | ssl.SSLError):
        return f"image URL failed: the secure (TLS) connection to {host} could not be verified"
    if isinstance(exc, requests.Timeout | urllib3.exceptions.TimeoutError | TimeoutError):
        return f"image URL timed out: {host} did not answer in time"
    return f"image URL failed: the connection to {host} failed or broke off"
