"""Decoding untrusted upload bytes: what is accepted, what is refused, and with which message."""

from __future__ import annotations

import functools
import io
import re
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest
from PIL import Image, ImageOps

from backend.errors import Busy, ImageError
from backend.images.budget import DecodeBudget
from backend.images.decode import (
    ALLOWED_FORMATS,
    DECODE_MEMORY_BYTES,
    MAX_ASPECT_RATIO,
    MAX_FRAMES,
    MAX_PIXELS,
    decode_image,
    image_format,
)
from backend.images.format_checks import MAX_JPEG_SCANS, count_jpeg_scans

# decode_image must stay silent on hostile input, whatever the project-wide setting is.
pytestmark = pytest.mark.filterwarnings("error")

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def encode(im: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    im.save(buffer, fmt, **options)
    return buffer.getvalue()


def photo(size: tuple[int, int] = (64, 48)) -> Image.Image:
    """A noisy RGB picture, so encoders produce realistic, non-trivial data."""
    return Image.merge("RGB", [Image.effect_noise(size, 40)] * 3)


def animation(fmt: str, frames: int) -> bytes:
    colours = [RED, GREEN, BLUE]
    images = [Image.new("RGB", (16, 16), colours[i % 3]) for i in range(frames)]
    return encode(images[0], fmt, save_all=True, append_images=images[1:], lossless=True)


def png_header(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims any size, with no pixel data behind it."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"") + chunk(b"IEND", b"")


def rotated_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    return encode(photo((64, 48)), "JPEG", exif=exif)


def transparent_png() -> bytes:
    im = Image.new("RGBA", (32, 32), (255, 0, 0, 0))
    im.paste((0, 0, 255, 255), (8, 8, 24, 24))
    return encode(im, "PNG")


def palette_png_with_transparency() -> bytes:
    im = Image.new("P", (32, 32), 0)
    im.putpalette([0, 0, 0, 0, 0, 255])  # index 0 black (made transparent), index 1 blue
    im.paste(1, (8, 8, 24, 24))
    return encode(im, "PNG", transparency=0)


def corrupt_middle(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes(200) + data[middle + 200 :]


PNG_PHOTO = encode(photo((200, 150)), "PNG")
JPEG_PHOTO = encode(photo((200, 150)), "JPEG")


@pytest.mark.parametrize(
    ("data", "options", "size", "corner"),
    [
        (encode(photo(), "JPEG"), {}, (64, 48), None),
        (encode(photo(), "PNG"), {}, (64, 48), None),
        (encode(photo(), "WEBP"), {}, (64, 48), None),
        (encode(photo().convert("P"), "GIF"), {}, (64, 48), None),
        (encode(photo(), "BMP"), {}, (64, 48), None),
        (encode(Image.new("1", (10, 20), 1), "BMP"), {}, (10, 20), WHITE),
        (transparent_png(), {}, (32, 32), WHITE),
        (palette_png_with_transparency(), {}, (32, 32), WHITE),
        (encode(Image.new("CMYK", (40, 30), (0, 255, 255, 0)), "JPEG"), {}, (40, 30), None),
        (encode(Image.new("I;16", (8, 8), 40000), "PNG"), {}, (8, 8), (156, 156, 156)),
        (rotated_jpeg(), {}, (48, 64), None),
        (animation("GIF", 3), {}, (16, 16), RED),
        (animation("PNG", 3), {}, (16, 16), RED),
        (animation("WEBP", 3), {}, (16, 16), RED),
        (animation("GIF", MAX_FRAMES), {}, (16, 16), RED),
        (encode(photo((2000, 1500)), "JPEG"), {"min_size": 256}, (500, 375), None),
        (encode(photo((100, 80)), "JPEG"), {"min_size": 256}, (100, 80), None),
        (encode(photo((2000, 1500)), "PNG"), {"min_size": 256}, (1000, 750), None),
        (encode(photo((2000, 1500)), "PNG"), {"min_size": 400}, (2000, 1500), None),
    ],
    ids=[
        "jpeg",
        "png",
        "webp",
        "gif",
        "bmp",
        "bilevel-bmp",
        "rgba-png-on-white",
        "palette-png-transparency-on-white",
        "cmyk-jpeg",
        "16-bit-grey-png-scaled-not-clipped",
        "exif-orientation-6-transposed",
        "gif-3-frames-first-only",
        "apng-3-frames-first-only",
        "webp-3-frames-first-only",
        "gif-at-frame-limit",
        "min-size-draft-scales-jpeg-by-4",
        "min-size-larger-than-image-keeps-size",
        "min-size-reduces-png-keeping-twice-min-size",
        "min-size-under-half-the-png-keeps-size",
    ],
)
def test_decode_accepts(
    data: bytes, options: dict, size: tuple[int, int], corner: tuple[int, int, int] | None
) -> None:
    im = decode_image(data, **options)
    assert (im.mode, im.size, im.info) == ("RGB", size, {})
    if corner is not None:
        assert im.getpixel((0, 0)) == corner


@pytest.mark.parametrize(
    ("data", "options", "message"),
    [
        (b"", {}, "file is empty"),
        (None, {}, "file is empty"),
        (b"<html><body>cat.jpg</body></html>", {}, "not a recognised image"),
        (bytes(range(256)) * 4, {}, "not a recognised image"),
        (b"BM but really some text", {}, "image data is truncated or corrupt"),
        (JPEG_PHOTO[: len(JPEG_PHOTO) // 2], {}, "image data is truncated or corrupt"),
        (PNG_PHOTO[: len(PNG_PHOTO) // 2], {}, "image data is truncated or corrupt"),
        (corrupt_middle(PNG_PHOTO), {}, "image data is truncated or corrupt"),
        (png_header(0, 10), {}, "image data is truncated or corrupt"),
        (png_header(7000, 7000), {}, "image is 7000x7000 pixels, over the 40 megapixel limit"),
        (png_header(10_000, 10_000), {}, "over the 40 megapixel limit"),
        (png_header(50_000, 50_000), {}, "over the 40 megapixel limit"),
        (png_header(1, 2_000_000_000), {}, "over the 40 megapixel limit"),
        (encode(photo((100, 100)), "PNG"), {"max_pixels": 5000}, "over the 0.005 megapixel limit"),
        (animation("GIF", 300), {}, "animated image has more than 100 frames"),
        (animation("PNG", 300), {}, "animated image has more than 100 frames"),
        (animation("GIF", 3), {"max_frames": 2}, "animated image has more than 2 frames"),
        (animation("WEBP", 3), {"max_frames": 2}, "animated image has more than 2 frames"),
        (
            b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg">'
            b"<script>alert(1)</script></svg>",
            {},
            "unsupported image format: SVG (allowed: JPEG, PNG, WebP, GIF, BMP)",
        ),
        (encode(photo(), "TIFF"), {}, "unsupported image format: TIFF"),
        (encode(photo(), "ICO"), {}, "unsupported image format: ICO"),
        (b"8BPS\x00\x01" + bytes(6) + b"\x00\x03" + struct.pack(">II", 8, 8), {}, "format: PSD"),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n", {}, "format: EPS"),
        (b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n", {}, "format: PDF"),
        (b"SIMPLE  =                    T" + b" " * 50, {}, "format: FITS"),
    ],
    ids=[
        "zero-bytes",
        "none",
        "html-renamed-to-jpg",
        "random-bytes",
        "bmp-signature-then-text",
        "jpeg-cut-in-half",
        "png-cut-in-half",
        "png-corrupted-middle",
        "png-zero-width",
        "png-7000x7000-header",
        "png-100-megapixel-header-warned-by-pillow",
        "png-50000x50000-bomb-header",
        "png-1x2000000000-header",
        "custom-pixel-limit",
        "gif-300-frames",
        "apng-300-frames",
        "gif-over-custom-frame-limit",
        "webp-over-custom-frame-limit",
        "svg-with-script",
        "tiff",
        "ico",
        "psd",
        "eps",
        "pdf",
        "fits",
    ],
)
def test_decode_refuses(data: bytes, options: dict, message: str) -> None:
    with pytest.raises(ImageError, match=re.escape(message)) as info:
        decode_image(data, **options)
    assert info.value.status == 400


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (encode(photo(), "JPEG"), "JPEG"),
        (encode(photo(), "PNG"), "PNG"),
        (encode(photo(), "WEBP"), "WEBP"),
        (encode(photo().convert("P"), "GIF"), "GIF"),
        (encode(photo(), "BMP"), "BMP"),
        (png_header(50_000, 50_000), "PNG"),
        (encode(photo(), "TIFF"), None),
        (b"<html></html>", None),
        (b"", None),
    ],
    ids=["jpeg", "png", "webp", "gif", "bmp", "bomb-png-is-still-png", "tiff", "html", "empty"],
)
def test_image_format_sniffs_content(data: bytes, expected: str | None) -> None:
    assert image_format(data) == expected


def test_public_limits() -> None:
    assert sorted(ALLOWED_FORMATS) == ["BMP", "GIF", "JPEG", "PNG", "WEBP"]
    assert (MAX_PIXELS, MAX_FRAMES) == (40_000_000, 100)


def test_image_format_works_before_pillow_loads_its_plugins() -> None:
    # WebP is not among the plugins Pillow registers up front; a fresh interpreter shows it.
    code = (
        "from backend.images.decode import image_format; print(image_format(b'RIFF0000WEBPVP8 '))"
    )
    root = Path(__file__).resolve().parents[2]
    run = [sys.executable, "-c", code]
    result = subprocess.run(run, cwd=root, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "WEBP"


# ---------------------------------------------------------------- derived-size and CPU bombs
def narrow(width: int, height: int, fmt: str = "PNG") -> bytes:
    """A tiny file of extreme aspect ratio: preprocessing would scale its shorter side up."""
    return encode(Image.new("RGB", (width, height), RED), fmt)


def jpeg_segments(data: bytes) -> list[tuple[int, int, int]]:
    """(marker, start, end) of each segment of a JPEG, a scan's coded data included."""
    segments, position = [], 2
    while data[position + 1] != 0xD9:
        marker, start = data[position + 1], position
        position += 2 + int.from_bytes(data[position + 2 : position + 4], "big")
        if marker == 0xDA:
            while data[position] != 0xFF or data[position + 1] in (0x00, *range(0xD0, 0xD8)):
                position += 1
        segments.append((marker, start, position))
    return segments


@functools.cache  # the bad-input corpus builds the same bombs: each is encoded once a run
def scan_bomb(size: tuple[int, int], scans: int) -> bytes:
    """A progressive JPEG whose last refinement scan is repeated: each copy is a whole pass."""
    data = encode(Image.new("RGB", size, (128, 128, 128)), "JPEG", progressive=True)
    _, start, end = [s for s in jpeg_segments(data) if s[0] == 0xDA][-1]
    normal = sum(1 for s in jpeg_segments(data) if s[0] == 0xDA)
    return data[:end] + data[start:end] * (scans - normal) + data[end:]


@pytest.mark.parametrize(
    ("size", "fmt"),
    [((20_000, 1), "PNG"), ((16_383, 2), "PNG"), ((1, 20_000), "GIF"), ((2_100, 100), "JPEG")],
    ids=["20000x1-png", "16383x2-png", "1x20000-gif", "21-to-1-jpeg"],
)
def test_extreme_aspect_ratios_are_refused_from_the_header(size, fmt):
    data = narrow(*size, fmt)
    assert len(data) < 20_000  # tiny files: the bomb is in what preprocessing would allocate
    with pytest.raises(
        ImageError,
        match=f"image is {size[0]}x{size[1]} pixels: one side is more "
        f"than {MAX_ASPECT_RATIO} times the other",
    ):
        decode_image(data, min_size=256)


def test_an_aspect_ratio_of_20_to_1_is_accepted():
    assert decode_image(narrow(2000, 100)).size == (2000, 100)
    assert decode_image(narrow(1, 20)).size == (1, 20)


def hide_scans(data: bytes, how: str) -> bytes:
    """Put what libjpeg skips before the first scan: a stray byte, a restart marker, a stuffed 0."""
    first_scan = next(start for marker, start, _ in jpeg_segments(data) if marker == 0xDA)
    extra = {
        "junk-byte": b"\x00",
        "restart-marker": b"\xff\xd0",
        "stuffed-zero": b"\xff\x00",
        "fill-bytes": b"\xff\xff",
    }[how]
    return data[:first_scan] + extra + data[first_scan:]


HIDING = ["junk-byte", "restart-marker", "stuffed-zero", "fill-bytes"]


def test_scans_are_counted_without_decoding():
    progressive = encode(photo((300, 200)), "JPEG", progressive=True)
    assert count_jpeg_scans(progressive, stop_after=1000) == 10  # libjpeg's standard script
    assert count_jpeg_scans(encode(photo(), "JPEG"), stop_after=1000) == 1
    assert count_jpeg_scans(scan_bomb((64, 64), 500), stop_after=1000) == 500
    assert count_jpeg_scans(scan_bomb((64, 64), 500), stop_after=30) == 31  # stops early


@pytest.mark.parametrize(
    ("size", "scans", "limit"),
    [((64, 64), MAX_JPEG_SCANS + 1, MAX_JPEG_SCANS), ((6000, 6000), 12, 11)],
    ids=["over-100-scans", "over-400-scan-megapixels"],
)
def test_progressive_scan_bombs_are_refused_before_decoding(size, scans, limit):
    data = scan_bomb(size, scans)
    started = time.process_time()
    with pytest.raises(ImageError, match=f"JPEG has more than {limit} scans for its size"):
        decode_image(data, min_size=256)
    assert time.process_time() - started < 0.5  # decoding the 40 scans alone takes seconds


@pytest.mark.parametrize("how", HIDING)
def test_scans_are_counted_behind_what_libjpeg_skips(how):
    bomb = hide_scans(scan_bomb((64, 64), 500), how)
    assert count_jpeg_scans(bomb, stop_after=1000) == 500
    # What is hidden still decodes: libjpeg skips it, so the count must too.
    assert decode_image(hide_scans(encode(photo(), "JPEG", progressive=True), how)).size == (64, 48)


@pytest.mark.parametrize("how", HIDING)
@pytest.mark.parametrize(
    ("size", "scans", "limit"),
    [((2000, 2000), 2000, 100), ((6000, 6000), 300, 11)],
    ids=["2000-scans", "36mp-300-scans"],
)
def test_hidden_scan_bombs_are_refused_before_decoding(how, size, scans, limit):
    data = hide_scans(scan_bomb(size, scans), how)
    assert len(data) < 250_000  # well within the upload limit
    started = time.process_time()
    with pytest.raises(ImageError, match=f"JPEG has more than {limit} scans for its size"):
        decode_image(data, min_size=256)
    assert time.process_time() - started < 0.5  # decoded, the 300 scans take about 9 CPU-s


def test_a_30_megapixel_progressive_jpeg_of_the_usual_10_scans_decodes():
    data = encode(Image.new("RGB", (6300, 4750), (90, 120, 30)), "JPEG", progressive=True)
    assert count_jpeg_scans(data, stop_after=100) == 10
    assert decode_image(data, min_size=256).size == (788, 594)


def test_a_40_megapixel_progressive_jpeg_is_refused_for_the_coefficients_it_keeps():
    # libjpeg keeps every coefficient of a progressive JPEG: 120 MB here, whatever the scale.
    data = encode(Image.new("RGB", (7300, 5479), (90, 120, 30)), "JPEG", progressive=True)
    with pytest.raises(
        ImageError,
        match=(
            "image is 7300x5479 pixels, more than this server decodes whole: a JPEG of this kind "
            "may have 31.5 megapixels$"
        ),
    ):
        decode_image(data, min_size=256)


def test_an_ordinary_progressive_jpeg_decodes():
    data = encode(photo((640, 480)), "JPEG", progressive=True, optimize=True)
    assert decode_image(data).size == (640, 480)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF"])
def test_decoding_stops_at_its_time_budget(fmt):
    data = encode(photo((1200, 900)), fmt)
    with pytest.raises(ImageError, match="image took longer than 0 s to decode"):
        decode_image(data, seconds=0)
    assert decode_image(data).size == (1200, 900)


# ---------------------------------------------------------------- memory of decoded pixels
def gradient(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    """A large picture that compresses to a small file, as a decompression bomb does."""
    if mode == "P":  # colours, or Pillow opens a grey palette as "L"
        # Quantized at a tenth of the size, then scaled up: quantizing 40 MP takes seconds.
        grey = Image.linear_gradient("L").resize((max(1, size[0] // 10), max(1, size[1] // 10)))
        colours = Image.merge("RGB", [grey, grey.transpose(Image.Transpose.ROTATE_180), grey])
        return colours.quantize(16).resize(size, Image.Resampling.NEAREST)
    return Image.linear_gradient("L").resize(size).convert(mode)


@functools.cache  # seconds to encode at 40 MP; the bad-input corpus sends the same files
def gradient_file(size: tuple[int, int], mode: str, fmt: str) -> bytes:
    # The encoders' fastest settings (a third of the time): the decoder refuses these files
    # from their headers, and they stay within the upload limits.
    fastest = {"WEBP": {"method": 0}, "PNG": {"compress_level": 1}}.get(fmt, {})
    return encode(gradient(size, mode), fmt, **fastest)


@pytest.mark.parametrize(
    ("fmt", "mode", "limit"),
    [("WEBP", "RGB", "6.2"), ("PNG", "RGB", "24.6"), ("PNG", "RGBA", "12.4"), ("GIF", "P", "11.1")],
)
def test_40_megapixels_decoded_whole_are_refused_from_the_header(fmt, mode, limit):
    data = gradient_file((7300, 5479), mode, fmt)
    assert len(data) < 2_000_000  # within every upload limit
    name = "WebP" if fmt == "WEBP" else fmt
    started = time.process_time()
    with pytest.raises(
        ImageError,
        match=(
            f"image is 7300x5479 pixels, more than this server decodes whole: a {name} of this "
            f"kind may have {limit} megapixels; a JPEG may have 40$"
        ),
    ):
        decode_image(data, min_size=256)
    assert time.process_time() - started < 0.2  # refused before any pixel is decoded


def test_a_40_megapixel_jpeg_decodes_at_the_scale_the_model_needs():
    data = encode(gradient((7300, 5479)), "JPEG")
    assert decode_image(data, min_size=256).size == (913, 685)
    with pytest.raises(ImageError, match="a JPEG of this kind may have 8.3 megapixels$"):
        decode_image(data)  # whole, it would take 480 MB


def test_a_large_png_is_reduced_right_after_decoding():
    data = encode(gradient((6000, 4000)), "PNG")  # 24 MP: 96 MB decoded, within the budget
    im = decode_image(data, min_size=256)
    assert im.size == (858, 572)  # by 7: the shorter side stays >= 2 x 256
    assert im.getpixel((0, 0))[0] < 5 and im.getpixel((0, im.height - 1))[0] > 250


def test_exif_orientation_survives_the_reduction():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    data = encode(gradient((1200, 900)), "PNG", exif=exif)
    assert decode_image(data, min_size=128).size == (900 // 3, 1200 // 3)


def test_decoding_holds_its_bytes_of_the_budget_and_gives_them_back():
    budget = DecodeBudget(DECODE_MEMORY_BYTES)
    seen = []
    original = Image.Image.reduce

    def watch(self, *args, **kwargs):
        seen.append(budget.used)
        return original(self, *args, **kwargs)

    data = encode(gradient((3000, 2000)), "PNG")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Image.Image, "reduce", watch)
        decode_image(data, min_size=256, budget=budget)
    assert seen and seen[0] >= 3000 * 2000 * 4  # the RGB image, 4 bytes a pixel in Pillow
    assert budget.used == 0


def test_a_progressive_jpeg_holds_its_coefficients_of_the_budget():
    budget = DecodeBudget(DECODE_MEMORY_BYTES)
    seen = []
    original = ImageOps.exif_transpose

    def watch(*args, **kwargs):
        seen.append(budget.used)
        return original(*args, **kwargs)

    data = encode(gradient((4000, 3000)), "JPEG", progressive=True)  # 4:2:0
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ImageOps, "exif_transpose", watch)
        assert decode_image(data, min_size=256, budget=budget).size == (500, 375)
    assert seen[0] >= 4000 * 3000 * 3  # 1.5 coefficients a pixel, 2 bytes each
    assert budget.used == 0


def test_a_decode_waits_for_room_then_is_turned_away():
    budget = DecodeBudget(DECODE_MEMORY_BYTES, wait=0.2)
    data = encode(gradient((3000, 2000)), "PNG")
    with budget.reserve(DECODE_MEMORY_BYTES - 1_000_000):
        started = time.monotonic()
        with pytest.raises(Busy, match="decoding other large images") as refused:
            decode_image(data, min_size=256, budget=budget)
        assert time.monotonic() - started >= 0.2 and refused.value.status == 429
        assert decode_image(encode(photo(), "PNG"), budget=budget).size == (64, 48)  # small fits
    assert decode_image(data, min_size=256, budget=budget).size == (1000, 667)
