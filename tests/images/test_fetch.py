"""The safe fetcher against real local HTTP(S) servers and a fake resolver; no internet."""

from __future__ import annotations

import re
import socket
import ssl
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import trustme
from urllib3.response import HTTPResponse

from backend.errors import FetchError
from backend.images.fetch import FetchPolicy, fetch, validate_url
from tests.support.http_servers import PNG, ImageServer, serve

MB = 1024 * 1024
# allow_loopback lets the fetcher reach the servers below; small limits keep the tests fast.
LOCAL = FetchPolicy(
    allow_loopback=True, max_bytes=MB, connect_timeout=1, read_timeout=1, total_timeout=1.5
)
TEST_CA = trustme.CA()


@pytest.fixture(scope="module")
def server() -> Iterator[ImageServer]:
    yield from serve(ImageServer())


@pytest.fixture(scope="module")
def tls_server() -> Iterator[ImageServer]:
    """An HTTPS server with a certificate for images.example only; records the SNI it gets."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    TEST_CA.issue_cert("images.example").configure_cert(context)
    httpd = ImageServer()
    context.sni_callback = lambda sock, name, ctx: httpd.sni.append(name)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    yield from serve(httpd)


@pytest.fixture
def trust_test_ca(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """Make requests verify certificates against the test CA instead of the public ones."""
    path = tmp_path / "ca.pem"
    TEST_CA.cert_pem.write_to_path(str(path))
    monkeypatch.setattr(requests.adapters, "DEFAULT_CA_BUNDLE_PATH", str(path))


class FakeDNS:
    """Stands in for socket.getaddrinfo: chosen answers per name, the real one for the rest."""

    def __init__(self) -> None:
        self.real = socket.getaddrinfo
        self.answers: dict[str, list[list[str]]] = {}
        self.unreachable: set[str] = set()
        self.asked: list[str] = []

    def set(self, host: str, *answers: list[str]) -> None:
        """Answer host with each list in turn; the last one repeats."""
        self.answers[host] = list(answers)

    def __call__(self, host, port, family=0, type=0, proto=0, flags=0):
        self.asked.append(host)
        if host in self.unreachable:
            raise socket.gaierror(socket.EAI_NONAME, "unreachable in tests")
        answers = self.answers.get(host)
        if answers is None:
            return self.real(host, port, family, type, proto, flags)
        addresses = answers.pop(0) if len(answers) > 1 else answers[0]
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (a, port, 0, 0))
            if ":" in a
            else (socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in addresses
        ]


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> FakeDNS:
    fake = FakeDNS()
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return fake


def refused(url: str, policy: FetchPolicy | None = None) -> FetchError:
    with pytest.raises(FetchError) as info:
        fetch(url, policy or FetchPolicy())
    assert info.value.status == 400
    return info.value


@pytest.mark.parametrize(
    ("url", "message"),
    [
        pytest.param("file:///etc/passwd", "scheme 'file' is not allowed", id="file"),
        pytest.param("gopher://images.example/_x", "scheme 'gopher' is not allowed", id="gopher"),
        pytest.param("ftp://images.example/cat.png", "scheme 'ftp' is not allowed", id="ftp"),
        pytest.param(
            "data:image/png;base64,iVBORw0KGgo=", "scheme 'data' is not allowed", id="data"
        ),
        pytest.param("javascript:alert(1)", "scheme 'javascript' is not allowed", id="javascript"),
        pytest.param(
            "//images.example/cat.png", "must start with http:// or https://", id="no-scheme"
        ),
        pytest.param("http://user:secret@images.example/", "user name or password", id="userinfo"),
        pytest.param(
            "http://images.example@evil.example/", "user name or password", id="user-only"
        ),
        pytest.param("http://127.0.0.1:5000\\@evil.com/", "backslashes", id="backslash-at"),
        pytest.param("http://images.example/cat\n.png", "control characters", id="newline"),
        pytest.param("http://images.example/cat .png", "spaces", id="space"),
        pytest.param(
            "http://images.example:8080/",
            "port 8080 is not allowed (only 80 and 443)",
            id="port-8080",
        ),
        pytest.param("https://images.example:22/", "port 22 is not allowed", id="port-22"),
        pytest.param("http://images.example:0/", "port 0 is not allowed", id="port-0"),
        pytest.param("http://images.example:99999/", "not a valid URL", id="port-out-of-range"),
        pytest.param("http://[::1/", "not a valid URL", id="broken-ipv6"),
        pytest.param("http://redis/", "'redis' is not a public host name", id="single-label"),
        pytest.param("http://localhost/", "'localhost' is not a public host name", id="localhost"),
        pytest.param("http://redis./", "'redis.' is not a public host name", id="single-label-dot"),
        pytest.param("http:///cat.png", "has no host name", id="no-host"),
        pytest.param(
            "http://images.example/" + "a" * 2100, "longer than 2048 characters", id="too-long"
        ),
    ],
)
def test_refuses_bad_url_syntax(dns: FakeDNS, url: str, message: str) -> None:
    with pytest.raises(FetchError, match=re.escape(message)):
        validate_url(url)
    assert message in refused(url).message
    assert dns.asked == []  # refused before any lookup


@pytest.mark.parametrize(
    "url",
    [
        "https://images.example/cat.png",
        "http://8.8.8.8/x.png",
        "http://[2606:4700::1]/x",
        "http://2130706433/",
    ],
)
def test_validate_url_accepts_good_syntax_without_network(dns: FakeDNS, url: str) -> None:
    validate_url(url)
    assert dns.asked == []


def test_allow_loopback_allows_any_port() -> None:
    validate_url("http://127.0.0.1:5000/cat.png", LOCAL)


def test_allow_loopback_keeps_the_port_rule_for_other_hosts(dns: FakeDNS) -> None:
    dns.set("images.example", ["8.8.8.8"])
    dns.unreachable.add("8.8.8.8")  # were the rule lifted, the connection would fail instead
    error = refused("http://images.example:8080/cat.png", LOCAL)
    assert error.message == "image URL refused: port 8080 is not allowed (only 80 and 443)"
    assert dns.asked == ["images.example"]  # refused once resolved, before any connection


@pytest.mark.parametrize(
    ("address", "message"),
    [
        pytest.param("127.0.0.1", "127.0.0.1 is a loopback address", id="loopback"),
        pytest.param("127.8.9.10", "127.8.9.10 is a loopback address", id="loopback-range"),
        pytest.param("10.0.0.5", "10.0.0.5 is a private address", id="private-10"),
        pytest.param("172.16.3.4", "172.16.3.4 is a private address", id="private-172"),
        pytest.param("192.168.1.1", "192.168.1.1 is a private address", id="private-192"),
        pytest.param(
            "169.254.169.254", "169.254.169.254 is a link-local address", id="cloud-metadata"
        ),
        pytest.param(
            "100.64.0.1", "100.64.0.1 is a shared (carrier-grade NAT) address", id="cgnat"
        ),
        pytest.param("224.0.0.1", "224.0.0.1 is a multicast address", id="multicast"),
        pytest.param("240.0.0.1", "240.0.0.1 is a reserved address", id="reserved"),
        pytest.param(
            "255.255.255.255", "255.255.255.255 is a limited broadcast address", id="broadcast"
        ),
        pytest.param("0.0.0.0", "0.0.0.0 is an unspecified address", id="unspecified"),
        pytest.param("::", ":: is an unspecified address", id="unspecified-v6"),
        pytest.param("::1", "::1 is a loopback address", id="loopback-v6"),
        pytest.param("fd12:3456::1", "fd12:3456::1 is a private address", id="ula"),
        pytest.param("fe80::1", "fe80::1 is a link-local address", id="link-local-v6"),
        pytest.param("fec0::1", "fec0::1 is a site-local address", id="site-local"),
        pytest.param("ff02::1", "ff02::1 is a multicast address", id="multicast-v6"),
        pytest.param(
            "::ffff:127.0.0.1", "embeds 127.0.0.1, a loopback address", id="mapped-loopback"
        ),
        pytest.param("::ffff:10.1.2.3", "embeds 10.1.2.3, a private address", id="mapped-private"),
        pytest.param(
            "2002:7f00:1::", "2002:7f00:1:: embeds 127.0.0.1, a loopback address", id="6to4"
        ),
        pytest.param(
            "2002:a9fe:a9fe::1", "embeds 169.254.169.254, a link-local address", id="6to4-metadata"
        ),
        pytest.param(
            "64:ff9b::7f00:1", "64:ff9b::7f00:1 embeds 127.0.0.1, a loopback address", id="nat64"
        ),
        pytest.param(
            "64:ff9b::a00:5",
            "64:ff9b::a00:5 embeds 10.0.0.5, a private address",
            id="nat64-private",
        ),
        pytest.param(
            "64:ff9b:1::808:808",
            "64:ff9b:1::808:808 is a local-use NAT64 address",
            id="nat64-local",
        ),
        pytest.param(
            "2001:0:4136:e378:8000:63bf:80ff:fffe",
            "embeds 127.0.0.1, a loopback address",
            id="teredo",
        ),
        pytest.param(
            "2001:db8::1", "2001:db8::1 is a documentation address", id="documentation-v6"
        ),
        pytest.param("::7f00:1", "::7f00:1 is a reserved address", id="ipv4-compatible"),
        pytest.param("192.0.0.8", "192.0.0.8 is an IPv4 dummy address", id="ipv4-dummy"),
        pytest.param(
            "192.88.99.7", "is a deprecated 6to4 relay anycast address", id="6to4-relay-anycast"
        ),
        pytest.param("5f00::1", "5f00::1 is a segment routing (SRv6) SID address", id="srv6"),
        pytest.param("3fff::1", "3fff::1 is a documentation address", id="documentation-3fff"),
    ],
)
def test_refuses_names_resolving_to_non_public_addresses(
    dns: FakeDNS, address: str, message: str
) -> None:
    dns.set("evil.example", [address])
    dns.unreachable.add(address)  # were it not refused, no packet may leave the machine
    error = refused("http://evil.example/cat.png")
    assert error.message.startswith("image URL refused: ")
    assert message in error.message


def test_refuses_when_any_resolved_address_is_not_public(dns: FakeDNS) -> None:
    dns.set("mixed.example", ["8.8.8.8", "10.0.0.5"])
    assert "10.0.0.5 is a private address" in refused("http://mixed.example/cat.png").message


def test_allow_loopback_still_refuses_private(dns: FakeDNS) -> None:
    dns.set("evil.example", ["10.0.0.5"])
    assert "10.0.0.5 is a private address" in refused("http://evil.example/cat.png", LOCAL).message


@pytest.mark.parametrize(
    ("url", "message"),
    [
        pytest.param("http://2130706433/", "127.0.0.1 is a loopback address", id="decimal"),
        pytest.param("http://0x7f000001/", "127.0.0.1 is a loopback address", id="hex"),
        pytest.param("http://127.1/", "127.0.0.1 is a loopback address", id="short"),
        pytest.param("http://0177.0.0.1/", "127.0.0.1 is a loopback address", id="octal"),
        pytest.param("http://[::1]/", "::1 is a loopback address", id="ipv6-loopback"),
        pytest.param(
            "http://[::ffff:127.0.0.1]/", "embeds 127.0.0.1, a loopback address", id="ipv6-mapped"
        ),
        pytest.param("http://0.0.0.0/", "0.0.0.0 is an unspecified address", id="zero"),
        pytest.param(
            "http://169.254.169.254/latest/meta-data/", "is a link-local address", id="metadata"
        ),
    ],
)
def test_refuses_literal_addresses_by_what_they_resolve_to(url: str, message: str) -> None:
    assert message in refused(url).message


def test_unresolvable_host(dns: FakeDNS) -> None:
    dns.unreachable.add("nowhere.example")
    assert refused("http://nowhere.example/cat.png").message == (
        "image URL refused: host 'nowhere.example' could not be resolved"
    )


def test_fetches_png(server: ImageServer) -> None:
    url = f"http://127.0.0.1:{server.port}/cat.png"
    fetched = fetch(url, LOCAL)
    assert (fetched.content, fetched.content_type, fetched.url) == (PNG, "image/png", url)


def test_content_type_is_the_bare_media_type(server: ImageServer) -> None:
    fetched = fetch(f"http://127.0.0.1:{server.port}/cat-with-params.png", LOCAL)
    assert fetched.content_type == "image/png"


def test_follows_a_redirect(server: ImageServer) -> None:
    fetched = fetch(f"http://127.0.0.1:{server.port}/redirect", LOCAL)
    assert fetched.content == PNG
    assert fetched.url == f"http://127.0.0.1:{server.port}/cat.png"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        pytest.param("/missing", "image URL answered HTTP 404", id="404-with-image-body"),
        pytest.param("/page", "image URL is not an image (text/html)", id="html"),
        pytest.param(
            "/untyped", "image URL is not an image (no content type)", id="no-content-type"
        ),
        pytest.param("/gzip", "compressed content (gzip)", id="gzip"),
        pytest.param(
            "/huge", "image at URL is larger than the 1 MB limit", id="huge-content-length"
        ),
        pytest.param("/endless", "image at URL is larger than the 1 MB limit", id="endless"),
        pytest.param(
            "/endless-chunked", "image at URL is larger than the 1 MB limit", id="endless-chunked"
        ),
        pytest.param("/hop/0", "image URL redirected more than 3 times", id="too-many-redirects"),
        pytest.param("/loop-a", "image URL redirects in a loop", id="redirect-loop"),
        pytest.param(
            "/to-private", "image URL refused: 10.0.0.5 is a private address", id="redirect-private"
        ),
        pytest.param(
            "/to-metadata", "169.254.169.254 is a link-local address", id="redirect-metadata"
        ),
        pytest.param("/to-file", "scheme 'file' is not allowed", id="redirect-file"),
        pytest.param("/drip", "image URL took longer than 1.5 s to download", id="slow-drip-body"),
        pytest.param(
            "/drip-headers", "image URL took longer than 1.5 s to download", id="slow-drip-headers"
        ),
    ],
)
def test_refuses_bad_answers(server: ImageServer, path: str, message: str) -> None:
    started = time.monotonic()
    assert message in refused(f"http://127.0.0.1:{server.port}{path}", LOCAL).message
    assert time.monotonic() - started < LOCAL.total_timeout + 1


def test_redirects_are_counted(server: ImageServer) -> None:
    server.seen.clear()
    refused(f"http://127.0.0.1:{server.port}/hop/0", LOCAL)
    assert [path for path, _ in server.seen] == ["/hop/0", "/hop/1", "/hop/2", "/hop/3"]


def test_endless_stream_is_cut_at_the_cap(
    server: ImageServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    read: list[int] = []
    real_read1 = HTTPResponse.read1

    def counting_read1(self, amt=None, decode_content=None):
        data = real_read1(self, amt, decode_content)
        read.append(len(data))
        return data

    monkeypatch.setattr(HTTPResponse, "read1", counting_read1)
    refused(f"http://127.0.0.1:{server.port}/endless", LOCAL)
    assert sum(read) == LOCAL.max_bytes + 1


def test_connection_refused() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert refused(f"http://127.0.0.1:{port}/cat.png", LOCAL).message == (
        "image URL failed: the connection to 127.0.0.1 failed or broke off"
    )


def test_rebinding_connects_only_to_the_checked_address(dns: FakeDNS) -> None:
    # The name answers a public address when checked, then loopback to anyone asking again.
    dns.set("rebind.example", ["8.8.8.8"], ["127.0.0.1"])
    dns.unreachable.add("8.8.8.8")  # no internet here: make the connect step fail fast
    assert "connection to rebind.example failed" in refused("http://rebind.example/cat.png").message
    assert dns.asked == ["rebind.example", "8.8.8.8"]


def test_rebinding_keeps_the_pinned_address_and_the_host_name(
    server: ImageServer, dns: FakeDNS
) -> None:
    dns.set("rebind.example", ["127.0.0.1"], ["10.0.0.5"])
    server.seen.clear()
    fetched = fetch(f"http://rebind.example:{server.port}/cat.png", LOCAL)
    assert fetched.content == PNG
    assert dns.asked.count("rebind.example") == 1
    assert server.seen == [("/cat.png", f"rebind.example:{server.port}")]


def test_https_connects_to_pinned_address_with_name_for_sni_and_certificate(
    tls_server: ImageServer, dns: FakeDNS, trust_test_ca: None
) -> None:
    dns.set("images.example", ["127.0.0.1"])
    tls_server.sni.clear()
    fetched = fetch(f"https://images.example:{tls_server.port}/cat.png", LOCAL)
    assert fetched.content == PNG
    assert tls_server.sni == ["images.example"]


def test_https_certificate_must_match_the_name(
    tls_server: ImageServer, dns: FakeDNS, trust_test_ca: None
) -> None:
    dns.set("other.example", ["127.0.0.1"])
    assert refused(f"https://other.example:{tls_server.port}/cat.png", LOCAL).message == (
        "image URL failed: the secure (TLS) connection to other.example could not be verified"
    )


def test_https_certificate_must_chain_to_a_trusted_ca(
    tls_server: ImageServer, dns: FakeDNS
) -> None:
    dns.set("images.example", ["127.0.0.1"])
    assert (
        "secure (TLS) connection to images.example"
        in refused(f"https://images.example:{tls_server.port}/cat.png", LOCAL).message
    )


def test_concurrent_fetches(server: ImageServer) -> None:
    url = f"http://127.0.0.1:{server.port}/redirect"
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: fetch(url, LOCAL), range(16)))
    assert all(result.content == PNG for result in results)
