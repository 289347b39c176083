"""Hostile input over real HTTP, each case with its exact outcome; then the server still serves.

The app runs in a real HTTP server on 127.0.0.1 (two instances: one with the production fetch
rules, one allowed to reach the local hostile image servers). Uploads and URLs go to both the
JSON API (`POST /api/search`: status, error code, message) and the form (`POST /search`: status,
message on the page). Catalog rows go through `flask index`. Nothing leaves the machine.
"""

from __future__ import annotations

import gzip
import hashlib
import html
import re
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests

from backend import create_app
from backend.extensions import get_service
from tests.images.test_decode import (
    animation,
    encode,
    gradient_file,
    hide_scans,
    narrow,
    photo,
    png_header,
    scan_bomb,
)
from tests.support.catalogs import draw_image, image_bytes, make_app_config, write_catalog
from tests.support.http_servers import ImageServer, serve
from tests.support.servers import serve_app

MAX_UPLOAD_MB = 1
FETCH_TIMEOUT = 1.5
LIMIT = MAX_UPLOAD_MB * 1024 * 1024
TENT = image_bytes(draw_image("yellow", "triangle"))  # the catalog's p5
ALLOWED = "(allowed: JPEG, PNG, WebP, GIF, BMP)"
JPEG = encode(photo((200, 150)), "JPEG")


@dataclass(frozen=True)
class Outcome:
    status: int
    code: str | None  # the JSON error code; None for a successful search
    message: str  # the JSON message contains it; the page shows it as a sentence
    page_message: str | None = None  # when the page words it differently

    def check(self, endpoint: str, response: requests.Response) -> None:
        assert response.status_code == self.status, response.text[:500]
        if endpoint == "api":
            body = response.json()
            if self.code is None:
                assert body["results"][0]["id"] == "p5"
            else:
                assert body["error"] == self.code
                assert self.message in body["message"]
        else:
            page = html.unescape(response.text)
            if self.code is None:
                assert 'class="card' in page and "Yellow tent" in page
            else:
                alert = re.search(r'role="alert"[^>]*>(.*?)</div>', page, re.S)
                expected = (self.page_message or self.message).lower()
                assert alert and expected in alert.group(1).lower(), page[:2000]


def refused_image(message: str) -> Outcome:
    return Outcome(400, "bad_image", message)


def refused_url(message: str) -> Outcome:
    return Outcome(400, "fetch_failed", message)


TOO_LARGE = Outcome(413, "too_large", f"the upload is larger than the {MAX_UPLOAD_MB} MB limit")
NOT_HTTP = Outcome(
    400,
    "invalid_input",
    "image_url must be an http:// or https:// address",
    "the image URL must be an http:// or https:// address",  # the page words it for people
)
FOUND = Outcome(200, None, "")
NO_IMAGE = Outcome(
    400, "invalid_input", "send an image: a multipart field `file`", "choose an image"
)

# ---------------------------------------------------------------- uploads: (filename, bytes)
# The corpora are tables, one case to a line; the formatter leaves them as they are.
# fmt: off
UPLOADS = {
    "zero-bytes": ("empty.jpg", b"", Outcome(400, "invalid_input", "the uploaded file is empty")),
    "over-the-upload-limit": ("big.jpg", b"\xff" * (LIMIT + 1), TOO_LARGE),
    "body-over-the-request-limit": ("huge.jpg", b"\xff" * (LIMIT + 600 * 1024), TOO_LARGE),
    "html-renamed-jpg": (
        "cat.jpg", b"<html><script>alert(1)</script></html>",
        refused_image(f"not a recognised image {ALLOWED}"),
    ),
    "random-bytes": ("noise.png", bytes(range(256)) * 8, refused_image("not a recognised image")),
    "truncated-jpeg": ("cut.jpg", JPEG[: len(JPEG) // 2], refused_image("image data is truncated or corrupt")),
    "png-bomb-50000x50000": (
        "bomb.png", png_header(50_000, 50_000),
        refused_image("image is over the 40 megapixel limit"),
    ),
    "png-1x2000000000": (
        "tall.png", png_header(1, 2_000_000_000),
        refused_image("image is over the 40 megapixel limit"),
    ),
    "png-zero-width": ("flat.png", png_header(0, 10), refused_image("image data is truncated or corrupt")),
    "svg-with-script": (
        "logo.svg.png",
        b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
        refused_image(f"unsupported image format: SVG {ALLOWED}"),
    ),
    "gif-300-frames": ("anim.gif", animation("GIF", 300), refused_image("animated image has more than 100 frames")),
    "psd-renamed-png": (
        "layers.png", b"8BPS\x00\x01" + bytes(6) + b"\x00\x03" + struct.pack(">II", 8, 8),
        refused_image("unsupported image format: PSD"),
    ),
    "tiff-renamed-png": ("scan.png", encode(photo(), "TIFF"), refused_image("unsupported image format: TIFF")),
    "eps-renamed-png": (
        "print.png", b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n",
        refused_image("unsupported image format: EPS"),
    ),
    "pdf-renamed-jpg": ("doc.jpg", b"%PDF-1.4\n1 0 obj << >> endobj\n", refused_image("unsupported image format: PDF")),
    # Derived-size bombs: tiny files that preprocessing would scale up to gigabytes.
    "aspect-20000x1": ("line.png", narrow(20_000, 1), refused_image("image is 20000x1 pixels: one side is more than 20 times the other")),
    "aspect-16383x2": ("line.png", narrow(16_383, 2), refused_image("image is 16383x2 pixels: one side is more than 20 times the other")),
    "aspect-1x30000-gif": ("pole.gif", narrow(1, 30_000, "GIF"), refused_image("image is 1x30000 pixels")),
    # CPU bombs: progressive JPEGs of repeated scans, each a pass over the whole image.
    "jpeg-500-scans": ("scans.jpg", scan_bomb((1000, 1000), 500), refused_image("JPEG has more than 100 scans for its size")),
    # The same bombs behind what libjpeg skips before the first scan (once, it hid the scans).
    "jpeg-2000-scans-after-a-junk-byte": ("scans.jpg", hide_scans(scan_bomb((2000, 2000), 2000), "junk-byte"), refused_image("JPEG has more than 100 scans for its size")),
    "jpeg-2000-scans-after-a-restart-marker": ("scans.jpg", hide_scans(scan_bomb((2000, 2000), 2000), "restart-marker"), refused_image("JPEG has more than 100 scans for its size")),
    "jpeg-36mp-300-scans-after-a-stuffed-zero": ("scans.jpg", hide_scans(scan_bomb((6000, 6000), 300), "stuffed-zero"), refused_image("JPEG has more than 11 scans for its size")),
    # Memory bombs: 40 MP that only a JPEG decodes at reduced scale; whole, 640 MB for a WebP.
    "webp-40mp": ("big.webp", gradient_file((7300, 5479), "RGB", "WEBP"), refused_image("image is 7300x5479 pixels, more than this server decodes whole: a WebP of this kind may have 6.2 megapixels; a JPEG may have 40")),
    "png-40mp": ("big.png", gradient_file((7300, 5479), "RGB", "PNG"), refused_image("image is 7300x5479 pixels, more than this server decodes whole: a PNG of this kind may have 24")),
    "jpeg-36mp-12-scans": ("scans.jpg", scan_bomb((6000, 6000), 12), refused_image("JPEG has more than 11 scans for its size")),
}
# fmt: on

# Raw multipart filenames, sent byte for byte (a client library would escape them). The name is
# never used; one that breaks the part's header leaves no file part at all.
HOSTILE_FILENAMES = {
    "filename-traversal": (b"../../../../etc/passwd", FOUND),
    "filename-script": (b"<script>alert(1)</script>.png", FOUND),
    "filename-nul": (b"x.png\x00.php", FOUND),
    "filename-10k-long": (b"a" * 10_000 + b".png", FOUND),
    "filename-rtl-override": ("\u202egnp.exe".encode(), FOUND),
    "filename-quote-injection": (b'x.png"; name="other', NO_IMAGE),
    "filename-crlf-header-injection": (b"x.png\r\nContent-Type: text/html", NO_IMAGE),
    "filename-not-utf8": (b"\xff\xfe\xfd.png", NO_IMAGE),
}

# ---------------------------------------------------------------- URLs, refused without a request
# fmt: off
ADDRESSES = {
    "loopback": ("http://127.0.0.1/x.png", "127.0.0.1 is a loopback address"),
    "loopback-decimal": ("http://2130706433/x.png", "127.0.0.1 is a loopback address"),
    "loopback-hex": ("http://0x7f000001/x.png", "127.0.0.1 is a loopback address"),
    "loopback-short": ("http://127.1/x.png", "127.0.0.1 is a loopback address"),
    "loopback-octal": ("http://0177.0.0.1/x.png", "127.0.0.1 is a loopback address"),
    "loopback-v6": ("http://[::1]/x.png", "::1 is a loopback address"),
    "private-10": ("http://10.0.0.5/x.png", "10.0.0.5 is a private address"),
    "private-172": ("http://172.16.3.4/x.png", "172.16.3.4 is a private address"),
    "private-192": ("http://192.168.1.1/x.png", "192.168.1.1 is a private address"),
    "cloud-metadata": (
        "http://169.254.169.254/latest/meta-data/",
        "169.254.169.254 is a link-local address",
    ),
    "cgnat": ("http://100.64.0.1/x.png", "100.64.0.1 is a shared (carrier-grade NAT) address"),
    "multicast": ("http://224.0.0.1/x.png", "224.0.0.1 is a multicast address"),
    "reserved": ("http://240.0.0.1/x.png", "240.0.0.1 is a reserved address"),
    "broadcast": ("http://255.255.255.255/x.png", "255.255.255.255 is a limited broadcast address"),
    "unspecified": ("http://0.0.0.0/x.png", "0.0.0.0 is an unspecified address"),
    "unspecified-v6": ("http://[::]/x.png", ":: is an unspecified address"),
    "ula-v6": ("http://[fd12:3456::1]/x.png", "fd12:3456::1 is a private address"),
    "link-local-v6": ("http://[fe80::1]/x.png", "fe80::1 is a link-local address"),
    "ipv4-mapped": ("http://[::ffff:127.0.0.1]/x.png", "embeds 127.0.0.1, a loopback address"),
    "ipv4-mapped-private": ("http://[::ffff:10.1.2.3]/x.png", "embeds 10.1.2.3, a private address"),
    "6to4": ("http://[2002:7f00:1::]/x.png", "embeds 127.0.0.1, a loopback address"),
    "nat64": ("http://[64:ff9b::a9fe:a9fe]/x.png", "embeds 169.254.169.254, a link-local address"),
    "backslash-at": (
        "http://127.0.0.1:5000\\@evil.com/",
        "spaces, control characters or backslashes",
    ),
    "userinfo": ("http://user:secret@images.example/x.png", "it contains a user name or password"),
    "user-only": (
        "http://images.example@evil.example/x.png",
        "it contains a user name or password",
    ),
    "port-8080": ("http://images.example:8080/x.png", "port 8080 is not allowed"),
    "port-22": ("https://images.example:22/x.png", "port 22 is not allowed"),
    "port-out-of-range": ("http://images.example:99999/x.png", "it is not a valid URL"),
    "single-label-host": ("http://redis/x.png", "'redis' is not a public host name"),
    "localhost": ("http://localhost/x.png", "'localhost' is not a public host name"),
    # IANA special-purpose blocks that some Python versions call global.
    "ipv4-dummy": ("http://192.0.0.8/x.png", "192.0.0.8 is an IPv4 dummy address"),
    "ietf-protocol-assignments": ("http://192.0.0.77/x.png", "192.0.0.77 is an IETF protocol assignments address"),
    "6to4-relay-anycast": ("http://192.88.99.1/x.png", "192.88.99.1 is a deprecated 6to4 relay anycast address"),
    "benchmarking": ("http://198.18.0.1/x.png", "198.18.0.1 is a benchmarking address"),
    "documentation-v4": ("http://203.0.113.9/x.png", "203.0.113.9 is a documentation (TEST-NET-3) address"),
    "srv6-sid": ("http://[5f00::1]/x.png", "5f00::1 is a segment routing (SRv6) SID address"),
    "documentation-3fff": ("http://[3fff::1]/x.png", "3fff::1 is a documentation address"),
    "dummy-v6": ("http://[100:0:0:1::1]/x.png", "100:0:0:1::1 is a dummy address"),
    "6to4-of-public": ("http://[2002:808:808::1]/x.png", "2002:808:808::1 is a 6to4 address"),
}
# fmt: on
SCHEMES = {
    "file": "file:///etc/passwd",
    "gopher": "gopher://images.example/_x",
    "ftp": "ftp://images.example/x.png",
    "data": "data:image/png;base64,iVBORw0KGgo=",
    "javascript": "javascript:alert(1)",
    "scheme-relative": "//images.example/x.png",
}

# ---------------------------------------------------------------- URLs served by a hostile server
# fmt: off
SERVED = {
    "redirect-to-private": ("/to-private", "image URL refused: 10.0.0.5 is a private address"),
    "redirect-to-metadata": ("/to-metadata", "169.254.169.254 is a link-local address"),
    "redirect-to-file": ("/to-file", "scheme 'file' is not allowed"),
    "redirect-loop": ("/loop-a", "image URL redirects in a loop"),
    "more-than-3-redirects": ("/hop/0", "image URL redirected more than 3 times"),
    "slow-drip-body": ("/drip", f"image URL took longer than {FETCH_TIMEOUT:g} s to download"),
    "slow-drip-headers": (
        "/drip-headers",
        f"image URL took longer than {FETCH_TIMEOUT:g} s to download",
    ),
    "endless-stream": ("/endless", f"image at URL is larger than the {MAX_UPLOAD_MB} MB limit"),
    "endless-chunked": (
        "/endless-chunked",
        f"image at URL is larger than the {MAX_UPLOAD_MB} MB limit",
    ),
    "huge-content-length": ("/huge", f"image at URL is larger than the {MAX_UPLOAD_MB} MB limit"),
    "gzip-bomb": ("/gzip-bomb", "compressed content (gzip)"),
    "text-html": ("/page", "image URL is not an image (text/html)"),
    "no-content-type": ("/untyped", "image URL is not an image (no content type)"),
    "404-with-image-body": ("/missing", "image URL answered HTTP 404"),
    "svg-as-image": ("/svg", "unsupported image format: SVG"),
    "png-bomb-as-image": ("/png-bomb", "over the 40 megapixel limit"),
    "redirect-to-ipv4-dummy": ("/to-dummy", "image URL refused: 192.0.0.8 is an IPv4 dummy address"),
    "redirect-to-srv6": ("/to-srv6", "image URL refused: 5f00::1 is a segment routing (SRv6) SID address"),
}
# fmt: on
HOSTILE_ROUTES = {
    "/gzip-bomb": lambda h: h.reply(200, "image/png", _gzip_bomb(), Content_Encoding="gzip"),
    "/svg": lambda h: h.reply(200, "image/svg+xml", UPLOADS["svg-with-script"][1]),
    "/png-bomb": lambda h: h.reply(200, "image/png", png_header(50_000, 50_000)),
    "/tent.png": lambda h: h.reply(200, "image/png", TENT),
    "/to-dummy": lambda h: h.redirect("http://192.0.0.8/x.png"),
    "/to-srv6": lambda h: h.redirect("http://[5f00::1]/x.png"),
}


def _gzip_bomb() -> bytes:
    """~10 KB of gzip that inflates to 10 MB of zeros."""
    return gzip.compress(bytes(10 * 1024 * 1024), compresslevel=9)


# ---------------------------------------------------------------- servers
@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("corpus")
    config = make_app_config(root, write_catalog(root / "shop"))
    return config | {
        "max_upload_mb": MAX_UPLOAD_MB,
        "fetch_timeout": FETCH_TIMEOUT,
        "query_fetch_timeout": FETCH_TIMEOUT,
    }


@pytest.fixture(scope="module")
def strict(shop) -> Iterator[str]:
    """The app with the production fetch rules."""
    app = create_app(shop)
    get_service(app).sync()
    with serve_app(app) as base:
        yield base


@pytest.fixture(scope="module")
def loopback(shop, strict) -> Iterator[str]:
    """The same app allowed to reach 127.0.0.1, for the hostile image servers."""
    app = create_app(shop | {"fetch_allow_loopback": True})
    get_service(app).load_index()
    with serve_app(app) as base:
        yield base


@pytest.fixture(scope="module")
def index_before(shop, strict, loopback) -> bytes:
    return shop["index_path"].read_bytes()


@pytest.fixture(scope="module")
def hostile() -> Iterator[ImageServer]:
    yield from serve(ImageServer(HOSTILE_ROUTES))


def post(base: str, endpoint: str, **kwargs) -> requests.Response:
    path = "/api/search" if endpoint == "api" else "/search"
    return requests.post(base + path, timeout=30, **kwargs)


def post_url(base: str, endpoint: str, url: str) -> requests.Response:
    if endpoint == "api":
        return post(base, endpoint, json={"image_url": url})
    return post(base, endpoint, data={"image_url": url})


def raw_multipart(filename: bytes, data: bytes) -> tuple[bytes, dict[str, str]]:
    boundary = b"corpus-boundary-7d3f"
    body = (
        b"--" + boundary + b"\r\n"
        b'Content-Disposition: form-data; name="file"; filename="' + filename + b'"\r\n'
        b"Content-Type: image/png\r\n\r\n" + data + b"\r\n--" + boundary + b"--\r\n"
    )
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary.decode()}"}


ENDPOINTS = pytest.mark.parametrize("endpoint", ["api", "form"])


@ENDPOINTS
@pytest.mark.parametrize(("filename", "data", "outcome"), UPLOADS.values(), ids=UPLOADS.keys())
def test_uploads(index_before, strict, endpoint, filename, data, outcome):
    response = post(strict, endpoint, files={"file": (filename, data, "image/jpeg")})
    outcome.check(endpoint, response)


@ENDPOINTS
@pytest.mark.parametrize(
    ("filename", "outcome"), HOSTILE_FILENAMES.values(), ids=HOSTILE_FILENAMES.keys()
)
def test_hostile_multipart_filenames(index_before, strict, endpoint, filename, outcome):
    body, headers = raw_multipart(filename, TENT)
    response = post(strict, endpoint, data=body, headers=headers)
    outcome.check(endpoint, response)
    assert b"<script>alert" not in response.content and b"passwd" not in response.content


@ENDPOINTS
@pytest.mark.parametrize(("url", "message"), ADDRESSES.values(), ids=ADDRESSES.keys())
def test_urls_refused_by_address_or_syntax(index_before, strict, endpoint, url, message):
    response = post_url(strict, endpoint, url)
    refused_url(message).check(endpoint, response)
    assert "image url refused: " in html.unescape(response.text).lower()


@ENDPOINTS
@pytest.mark.parametrize("url", SCHEMES.values(), ids=SCHEMES.keys())
def test_urls_with_other_schemes(index_before, strict, endpoint, url):
    NOT_HTTP.check(endpoint, post_url(strict, endpoint, url))


@ENDPOINTS
@pytest.mark.parametrize(
    ("url", "outcome"),
    [
        pytest.param(
            "http://x.example/" + "a" * 2100,
            Outcome(
                400,
                "invalid_input",
                "image_url is longer than 2048 characters",
                "the image URL is longer than 2048 characters",
            ),
            id="url-too-long",
        ),
        pytest.param(
            "http://x.example/a\nb.png",
            Outcome(
                400,
                "invalid_input",
                "image_url contains control characters",
                "the image URL contains control characters",
            ),
            id="url-newline",
        ),
        pytest.param(
            "http://x.example/a b.png",
            refused_url("spaces, control characters or backslashes"),
            id="url-space",
        ),
    ],
)
def test_malformed_urls(index_before, strict, endpoint, url, outcome):
    outcome.check(endpoint, post_url(strict, endpoint, url))


@ENDPOINTS
@pytest.mark.parametrize(
    ("path", "message"),
    [
        # The slow drips wait out the fetch timeout: the full suite's (test_fetch.py has them fast).
        pytest.param(*case, id=name, marks=[pytest.mark.slow] if "slow-drip" in name else [])
        for name, case in SERVED.items()
    ],
)
def test_urls_answered_by_hostile_servers(index_before, loopback, hostile, endpoint, path, message):
    outcome = (
        refused_image(message)
        if "format" in message or "megapixel" in message
        else refused_url(message)
    )
    outcome.check(endpoint, post_url(loopback, endpoint, hostile.url(path)))


@ENDPOINTS
def test_url_of_a_closed_port(index_before, loopback, endpoint):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}/x.png"
    refused_url("image URL failed: the connection to 127.0.0.1 failed or broke off").check(
        endpoint, post_url(loopback, endpoint, url)
    )


# ---------------------------------------------------------------- JSON the API must refuse
# fmt: off
HOSTILE_JSON = {
    "k-beyond-float": ('{"k": 1' + "0" * 400 + "}", "k=10000000000000000000 is not a number"),
    "threshold-infinite": ('{"threshold": 1e999}', "threshold must be a finite number"),
    "max-price-beyond-float": ('{"max_price": 1' + "0" * 400 + "}", "max_price=10000000000000000000 is not a number"),
    "nested-100000-deep": ("[" * 100_000 + "]" * 100_000, "the JSON body is nested too deeply"),
    "nested-field": ('{"image_url": ' + "{\"a\": " * 50_000 + "1" + "}" * 50_001, "the JSON body is nested too deeply"),
    "lone-surrogate": ('{"image_url": "http://a.example/\\ud800.png"}', "image_url contains an invalid character (a lone UTF-16 surrogate)"),
    "not-an-object": ("[1, 2]", "the JSON body must be an object"),
}
# fmt: on


@pytest.mark.parametrize(("text", "message"), HOSTILE_JSON.values(), ids=HOSTILE_JSON.keys())
def test_hostile_json(index_before, strict, text, message):
    response = requests.post(
        strict + "/api/search",
        data=text.encode("utf-8", "surrogatepass"),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    Outcome(400, "invalid_input", message).check("api", response)


# ---------------------------------------------------------------- catalog rows via `flask index`
HEADER = "id,name,category,price,image_url\n"
GOOD = "p1,Red ball,toys,1.50,images/p1.png\n"
# fmt: off
CATALOG_ROWS = {
    "bom": ("\ufeff" + HEADER + GOOD, 0, "1 added", None),
    "missing-column": ("id,name,category,price\np1,Red ball,toys,1.50\n", 2, "products.csv is missing column(s): image_url", None),
    "duplicate-id": (HEADER + GOOD + "p1,Again,toys,2,images/p1.png\n", 0, "1 added", "row 3: duplicate id 'p1'"),
    "unterminated-quote": (HEADER + GOOD + 'p2,"Red box,toys,1,images/p1.png\np3,Ok,toys,1,images/p1.png\n', 0, "1 added", "row 4: unreadable CSV (unexpected end of data); rest of the file ignored"),
    "short-row": (HEADER + GOOD + "p2,Red box,toys\n", 0, "1 added", "row 3: has 3 fields, expected 5"),
    "long-row": (HEADER + GOOD + "p2,Red box,toys,1,images/p1.png,extra\n", 0, "1 added", "row 3: has 6 fields, expected 5"),
    "field-over-4096-chars": (HEADER + GOOD + f"p2,{'x' * 5000},toys,1,images/p1.png\n", 0, "1 added", "row 3: a field is longer than 4096 characters"),
    "field-over-csv-limit": (HEADER + GOOD + f"p2,{'x' * 200_000},toys,1,images/p1.png\n", 0, "1 added", "unreadable CSV (field larger than field limit (131072)); rest of the file ignored"),
    "empty-id": (HEADER + GOOD + ",No id,toys,1,images/p1.png\n", 0, "1 added", "row 3: empty id"),
    "bad-price": (HEADER + GOOD + "p2,Nan,toys,nan,images/p1.png\n", 0, "1 added", "row 3: price 'nan' is not a number"),
    "not-utf8": (HEADER + GOOD + "p2,R\udc81\udc8d,toys,1,images/p1.png\n", 1, "1 added", "row 3: is not valid UTF-8 text"),
    "traversal": (HEADER + GOOD + "p2,Up,toys,1,../../etc/passwd\n", 0, "1 added", "row 3: image_url '../../etc/passwd' leaves the catalog folder"),
    "absolute-path": (HEADER + GOOD + "p2,Abs,toys,1,/etc/passwd\n", 0, "1 added", "row 3: image_url '/etc/passwd' leaves the catalog folder"),
    "backslash-traversal": (HEADER + GOOD + "p2,Up,toys,1,..\\..\\secret.png\n", 0, "1 added", "leaves the catalog folder"),
    "file-url": (HEADER + GOOD + "p2,File,toys,1,file:///etc/passwd\n", 0, "1 added", "row 3: image_url 'file:///etc/passwd': scheme 'file' is not allowed (http, https or s3)"),
    "metadata-url": (HEADER + GOOD + "p2,Meta,toys,1,http://169.254.169.254/latest/meta-data/\n", 0, "1 added", "failed p2: image URL refused: 169.254.169.254 is a link-local address"),
    "loopback-url": (HEADER + GOOD + "p2,Local,toys,1,http://127.0.0.1/admin.png\n", 0, "1 added", "failed p2: image URL refused: 127.0.0.1 is a loopback address"),
    "symlink-out-of-the-folder": (HEADER + GOOD + "p2,Link,toys,1,images/link.png\n", 0, "1 added", "failed p2: image_url 'images/link.png' leaves the catalog folder"),
    "nul-in-image-url": (HEADER + GOOD + "p2,Nul,toys,1,images/p1.png\x00.png\n", 0, "1 added", "row 3: a field contains control characters (such as NUL or a line break)"),
    "nul-in-name": (HEADER + GOOD + "p2,N\x00ul,toys,1,images/p1.png\n", 0, "1 added", "row 3: a field contains control characters"),
    "line-break-in-quoted-name": (HEADER + GOOD + 'p2,"Two\nlines",toys,1,images/p1.png\n', 0, "1 added", "row 4: a field contains control characters"),
    "escape-sequence-in-category": (HEADER + GOOD + "p2,Esc,\x1b[31mred,1,images/p1.png\n", 0, "1 added", "row 3: a field contains control characters"),
    "special-purpose-url": (HEADER + GOOD + "p2,Dummy,toys,1,http://192.0.0.8/x.png\n", 0, "1 added", "failed p2: image URL refused: 192.0.0.8 is an IPv4 dummy address"),
}
# fmt: on


@pytest.mark.parametrize(
    ("text", "exit_code", "summary", "reported"), CATALOG_ROWS.values(), ids=CATALOG_ROWS.keys()
)
def test_catalog_rows(tmp_path, text, exit_code, summary, reported):
    shop = tmp_path / "shop"
    (shop / "images").mkdir(parents=True)
    draw_image("red", "circle").save(shop / "images" / "p1.png")
    outside = tmp_path / "outside.png"
    draw_image("blue", "square").save(outside)
    (shop / "images" / "link.png").symlink_to(outside)
    catalog = shop / "products.csv"
    catalog.write_bytes(text.encode("utf-8", "surrogateescape"))
    app = create_app(make_app_config(tmp_path, catalog))
    result = app.test_cli_runner().invoke(args=["index"])
    assert result.exit_code == exit_code, result.output
    assert summary in result.output
    if reported:
        assert reported in result.output
    elif exit_code == 0:
        assert "skipped products.csv" not in result.output and "failed p" not in result.output


# ---------------------------------------------------------------- afterwards
def test_after_the_corpus_the_servers_answer_and_the_index_is_unchanged(
    shop, strict, loopback, hostile, index_before
):
    for base in (strict, loopback):
        assert requests.get(base + "/healthz", timeout=10).json() == {"status": "ok"}
        FOUND.check("api", post(base, "api", files={"file": ("tent.png", TENT, "image/png")}))
    FOUND.check("api", post_url(loopback, "api", hostile.url("/tent.png")))
    assert (
        hashlib.sha256(shop["index_path"].read_bytes()).digest()
        == hashlib.sha256(index_before).digest()
    )
    assert list(shop["index_path"].parent.glob(".*.tmp")) == []


# ---------------------------------------------------------------- slow clients, slow image hosts
@pytest.mark.slow
def test_slow_clients_and_dripping_image_urls_leave_the_real_server_answering(tmp_path):
    """The image's command behind its nginx front: 25 connections trickling headers, 25
    trickling bodies and 4 clients pasting URLs that drip a byte a second, all at once."""
    import shutil
    import time

    from bench.slow_clients import DripImages, Trickle
    from tests.support.servers import free_port, gunicorn, server_env, wait_ready

    if shutil.which("nginx") is None:
        pytest.skip("nginx is not installed (scripts/test.sh installs it)")
    port = free_port()
    # UNSAFE outside tests: lets the app fetch the dripping image host on 127.0.0.1.
    env = server_env(tmp_path, port, FRONT="nginx", THREADS="4", FETCH_ALLOW_LOOPBACK="true")
    log = tmp_path / "gunicorn.log"
    with gunicorn(env, log) as process:
        base = f"http://127.0.0.1:{port}"
        wait_ready(base, process, log)
        attacks = [Trickle.headers(port, 25), Trickle.bodies(port, 25), DripImages(port, 4)]
        try:
            time.sleep(3)
            assert requests.get(base + "/healthz", timeout=5).json() == {"status": "ok"}
            FOUND.check("api", post(base, "api", files={"file": ("tent.png", TENT, "image/png")}))
            FOUND.check("form", post(base, "form", files={"file": ("tent.png", TENT, "image/png")}))
            busy = post_url(base, "api", "http://127.0.0.1:9/x.png")  # both URL slots are held
            assert busy.status_code == 429 and busy.headers["Retry-After"] == "8"
        finally:
            for attack in attacks:
                attack.close()
