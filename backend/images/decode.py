"""Turn untrusted upload bytes into a decoded RGB image, refusing anything hostile."""

from __future__ import annotations

import io
import math
import struct
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, cast

from PIL import Image, ImageFile, ImageOps

from ..errors import ImageError
from .budget import DecodeBudget
from .format_checks import check_frames, check_jpeg_scans

ALLOWED_FORMATS: frozenset[str] = frozenset({"JPEG", "PNG", "WEBP", "GIF", "BMP"})
MAX_PIXELS = 40_000_000
MAX_FRAMES = 100
# Preprocessing scales the shorter side up to the model's input size: a 20000x1 image would become
# a resize target of a billion pixels. Past 20:1 an image is a banner, not a product photo.
MAX_ASPECT_RATIO = 20
# Wall time one decode may take; checked between the blocks fed to the decoder.
DECODE_SECONDS = 5.0
_DECODE_BLOCK = 16 * 1024
# Bytes of decoded pixels one process holds at once: with the model and index (about 120 MB) and
# the uploads in flight, a worker stays under 350 MB, room for one on a 512 MB instance. A JPEG is
# decoded at the reduced scale the model needs (a 40 MP one takes about 5 MB), but a progressive
# one keeps all its coefficients (3 bytes a pixel: 31 MP at most); other formats are decoded
# whole, so this memory bounds their pixel count (25 MP for an RGB PNG, 6 MP for a WebP), and
# with it their CPU time (about 0.35 s at those sizes). A decode waits for room.
DECODE_MEMORY_BYTES = 96 * 1024 * 1024
DECODE_BUDGET = DecodeBudget(DECODE_MEMORY_BYTES)
# Bytes per pixel of Pillow's storage by mode (RGB is stored as 4 bytes too).
_STORAGE_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2}
# libwebp decodes into two canvases of its own, and Pillow copies one out as bytes before the
# image has it: 16 bytes a pixel measured, where a PNG takes its image's 4.
_DECODER_BYTES = {"WEBP": 12}
# Image.reduce premultiplies alpha in a full-size copy first.
_REDUCE_COPY_BYTES = {"RGBA": 4, "LA": 4}
# Modes Image.reduce averages directly; others are converted (4-8 bytes per pixel) first.
_REDUCIBLE_MODES = frozenset({"L", "LA", "RGB", "RGBA", "RGBX", "CMYK", "I", "F"})
# Flattening to RGB: an RGBA copy and the RGB result at worst.
_CONVERT_BYTES = 8

# Image.open wants a sequence; JPEG first because it is by far the most common upload.
_OPEN_ORDER = ("JPEG", "PNG", "WEBP", "GIF", "BMP")
_ALLOWED_TEXT = "JPEG, PNG, WebP, GIF, BMP"
_FORMAT_NAMES = {"WEBP": "WebP"}
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
# What Pillow's decoders raise on malformed input; none of it may escape as a server error.
_DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    TypeError,
    IndexError,
    KeyError,
    EOFError,
    struct.error,
)
# Image-like documents Pillow cannot read, so no plugin signature names them for us.
_DOCUMENT_SIGNATURES = ((b"%pdf-", "PDF"), (b"<svg", "SVG"))


def decode_image(
    data: bytes,
    *,
    min_size: int | None = None,
    max_pixels: int = MAX_PIXELS,
    max_frames: int = MAX_FRAMES,
    seconds: float = DECODE_SECONDS,
    budget: DecodeBudget = DECODE_BUDGET,
) -> Image.Image:
    """Decode untrusted bytes into an RGB image: first frame, EXIF orientation applied, no metadata.

    `min_size` lets decoding scale down while both sides stay >= min_size: JPEG while decoding
    (by a power of two), other formats right after (by an integer factor, keeping twice min_size).
    Every bound is checked from the header before any pixel is decoded (size, shape, frames, JPEG
    scans, memory); the decoding holds its pixels' bytes of `budget` and stops after `seconds`.
    """
    if not data:
        raise ImageError("file is empty")
    with _pillow_guard(max_pixels):
        im = _open(data)
        _check_pixels(im, max_pixels)
        _check_shape(im)
        check_frames(im, max_frames)
        source, coefficients = im.size, 0
        if data[:2] == b"\xff\xd8" and check_jpeg_scans(data, im.size) > 1:  # JPEG, and MPO
            coefficients = _coefficient_bytes(im)
        min_size = min_size if min_size and min_size > 0 else None
        if min_size is not None:
            # Only the JPEG decoder honours a draft; every other format ignores it.
            im.draft("RGB", (min_size, min_size))
        factor = _reduce_factor(im, min_size)
        needed = _check_memory(im, source, factor, budget.capacity, coefficients)
        with budget.reserve(needed):
            _load_within(im, seconds)
            reduced = _reduce(im, factor)
            ImageOps.exif_transpose(reduced, in_place=True)
            return _to_rgb(reduced)


def image_format(data: bytes) -> str | None:
    """Name the allowed format the bytes start with, or None; a sniff, not a validation."""
    prefix = data[:16] if data else b""
    return next((fmt for fmt in _OPEN_ORDER if _plugin_accepts(fmt, prefix)), None)


@contextmanager
def _pillow_guard(max_pixels: int) -> Iterator[None]:
    """Treat Pillow's bomb warnings as refusals and its parse failures as corrupt data."""
    with warnings.catch_warnings():
        # Hostile metadata makes Pillow complain (corrupt EXIF, odd chunks); the checks here decide.
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            yield
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            # Pillow refuses these in Image.open, before the size is visible to us.
            raise ImageError(
                f"image is over the {_megapixels(max_pixels)} megapixel limit"
            ) from exc
        except _DECODE_ERRORS as exc:
            raise ImageError("image data is truncated or corrupt") from exc


def _open(data: bytes) -> ImageFile.ImageFile:
    """Identify the bytes among the allowed formats only, reading the header but no pixels."""
    try:
        return Image.open(io.BytesIO(data), formats=_OPEN_ORDER)
    except Image.UnidentifiedImageError:
        raise ImageError(_why_unidentified(data)) from None


def _why_unidentified(data: bytes) -> str:
    """Explain why no allowed format could open the bytes."""
    if image_format(data):
        return "image data is truncated or corrupt"
    refused = _refused_format(data)
    if refused:
        return f"unsupported image format: {refused} (allowed: {_ALLOWED_TEXT})"
    return f"not a recognised image (allowed: {_ALLOWED_TEXT})"


def _refused_format(data: bytes) -> str | None:
    """Name a format we do not accept, from its magic bytes only (nothing is parsed)."""
    prefix = data[:16]
    for fmt in Image.ID:
        if fmt not in ALLOWED_FORMATS and _plugin_accepts(fmt, prefix):
            return fmt
    head = data[:1024].lstrip().lower()
    if head.startswith(b"<?xml") and b"<svg" in head:
        return "SVG"
    return next((name for magic, name in _DOCUMENT_SIGNATURES if head.startswith(magic)), None)


def _plugin_accepts(fmt: str, prefix: bytes) -> bool:
    """Ask a Pillow plugin whether the first bytes carry its signature."""
    Image.init()  # register every plugin (once): WebP and the refused formats load lazily
    accept = Image.OPEN.get(fmt, (None, None))[1]
    if accept is None:  # plugins without a signature check would claim anything
        return False
    try:
        return bool(accept(prefix))
    except struct.error:  # some signature checks unpack more bytes than a tiny file has
        return False


def _check_pixels(im: Image.Image, max_pixels: int) -> None:
    """Refuse empty or oversized images from the header, before any pixel is decoded."""
    width, height = im.size
    if width * height == 0:
        raise ImageError(f"image is {width}x{height} pixels, which has no area")
    if width * height > max_pixels:
        raise ImageError(
            f"image is {width}x{height} pixels, over the {_megapixels(max_pixels)} megapixel limit"
        )


def _check_shape(im: Image.Image) -> None:
    """Refuse images so narrow that scaling their shorter side up would allocate gigabytes."""
    width, height = im.size
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise ImageError(
            f"image is {width}x{height} pixels: one side is more than {MAX_ASPECT_RATIO} times "
            "the other; crop it closer to the product"
        )


def _reduce_factor(im: Image.Image, min_size: int | None) -> int:
    """The integer factor to shrink by right after decoding, keeping the shorter side >= 2x min_size.

    Twice the size the model needs keeps its resize as sharp as from the full image (Pillow's own
    reducing_gap); the full-size copies that conversion to RGB makes are what this saves.
    """
    if min_size is None or im.mode not in _REDUCIBLE_MODES:
        return 1
    return max(min(im.size) // (2 * min_size), 1)


def _check_memory(
    im: Image.Image, source: tuple[int, int], factor: int, capacity: int, coefficients: int
) -> int:
    """The bytes decoding will hold at once; refuse an image that could never fit `capacity`.

    `im.size` is the decoded size (a JPEG's draft is smaller than its `source` size);
    `coefficients` what the JPEG decoder keeps besides.
    """
    width, height = im.size
    pixels = width * height
    full = _STORAGE_BYTES.get(im.mode, 4) + _DECODER_BYTES.get(im.format or "", 0)
    if factor > 1:
        full += _REDUCE_COPY_BYTES.get(im.mode, 0)
    needed = pixels * full + pixels // (factor * factor) * _CONVERT_BYTES + coefficients
    if needed > capacity:
        accepted = capacity * source[0] * source[1] / needed
        name = _FORMAT_NAMES.get(im.format or "", im.format)
        jpeg = "" if im.format == "JPEG" else f"; a JPEG may have {_megapixels(MAX_PIXELS)}"
        raise ImageError(
            f"image is {source[0]}x{source[1]} pixels, more than this server decodes whole: "
            f"a {name} of this kind may have {_megapixels(accepted, 1)} megapixels{jpeg}"
        )
    return needed


def _coefficient_bytes(im: Image.Image) -> int:
    """What libjpeg keeps of a JPEG of several scans (progressive): every DCT coefficient.

    Two bytes each, 64 per 8x8 block of each component at its sampling: 3 bytes a pixel for
    the usual 4:2:0, 6 for 4:4:4, at full size whatever the draft scale.
    """
    layers = getattr(im, "layer", None) or [(0, 1, 1, 0)] * len(im.getbands())
    h_max = max(layer[1] for layer in layers)
    v_max = max(layer[2] for layer in layers)
    width, height = im.size
    blocks = sum(
        math.ceil(math.ceil(width * h / h_max) / 8) * math.ceil(math.ceil(height * v / v_max) / 8)
        for _, h, v, _ in layers
    )
    return blocks * 64 * 2


def _reduce(im: Image.Image, factor: int) -> Image.Image:
    """Shrink a decoded image by averaging factor x factor blocks; the metadata goes along."""
    if factor == 1 or im.mode not in _REDUCIBLE_MODES:
        return im
    reduced = im.reduce(factor)
    reduced.info = dict(im.info)
    return reduced


def _load_within(im: ImageFile.ImageFile, seconds: float) -> None:
    """Decode the pixels, feeding the decoder small blocks and stopping once `seconds` are up."""
    raw = getattr(im, "fp", None)
    if raw is None:
        im.load()
        return
    im.decodermaxblock = _DECODE_BLOCK
    # Pillow only reads (and seeks) the file; the reader stands in for it.
    im.fp = cast(IO[bytes], _DeadlineReader(raw, time.monotonic() + seconds, seconds))
    im.load()


class _DeadlineReader:
    """A file whose reads fail once a deadline has passed, so that decoding stops there."""

    def __init__(self, raw: IO[bytes], deadline: float, seconds: float) -> None:
        self._raw = raw
        self._deadline = deadline
        self._seconds = seconds

    def read(self, size: int = -1) -> bytes:
        if time.monotonic() > self._deadline:
            raise ImageError(f"image took longer than {self._seconds:g} s to decode")
        return self._raw.read(size)

    def __getattr__(self, name: str):
        return getattr(self._raw, name)


def _to_rgb(im: Image.Image) -> Image.Image:
    """Flatten any mode to RGB, transparency onto white, as a fresh image without metadata."""
    if im.mode.startswith("I"):
        # 16-bit grey would clip to white in a plain conversion; scale it to 8 bits instead.
        im = im.point(lambda value: value / 256, "L")
    if im.mode in _ALPHA_MODES or "transparency" in im.info:
        # Transparent product shots have black (or garbage) under the alpha; show them on white.
        rgba = im.convert("RGBA")
        flat = Image.new("RGB", rgba.size, "white")
        flat.paste(rgba, mask=rgba)
        return flat
    rgb = im.convert("RGB")
    rgb.info = {}
    return rgb


def _megapixels(pixels: float, digits: int | None = None) -> str:
    """Format a pixel count in megapixels for messages (rounded down to `digits` decimals)."""
    if digits is None:
        return f"{pixels / 1_000_000:g}"
    scale = 10**digits
    return f"{int(pixels / 1_000_000 * scale) / scale:g}"
