"""Checks of one format's structure, from its bytes and headers before any pixel is decoded:
a JPEG's scans, counted as libjpeg reads its markers, and a GIF's frames, walked without decoding.
`decode_image` runs them on every image."""

from __future__ import annotations

from PIL import GifImagePlugin, ImageFile

from ..errors import ImageError

# A progressive JPEG is decoded in one pass over every block per scan, so repeated tiny scans cost
# seconds each on a large image (libjpeg-turbo advises a scan limit for untrusted input). Ordinary
# encoders write 1 to 10 scans; the second bound keeps scans x megapixels, the actual work, small.
MAX_JPEG_SCANS = 100
MAX_SCAN_MEGAPIXELS = 400  # 0.75 ms of CPU per scan-megapixel at worst: 0.3 s of decoding


def check_jpeg_scans(data: bytes, size: tuple[int, int]) -> int:
    """Refuse JPEGs with more scans than an encoder writes, before decoding any; their count."""
    megapixels = size[0] * size[1] / 1_000_000
    limit = min(MAX_JPEG_SCANS, max(int(MAX_SCAN_MEGAPIXELS / megapixels), 1))
    scans = count_jpeg_scans(data, stop_after=limit)
    if scans > limit:
        raise ImageError(
            f"JPEG has more than {limit} scans for its size; save it again as a normal JPEG"
        )
    return scans


def count_jpeg_scans(data: bytes, stop_after: int) -> int:
    """Count the start-of-scan markers of a JPEG as libjpeg finds them, stopping past a limit.

    libjpeg skips any bytes between segments ("extraneous bytes before marker") and ignores
    restart markers outside a scan, so the count must too: a junk byte or a stray RSTn before the
    first scan once hid every scan behind it from a stricter walk.
    """
    scans, position = 0, 2
    while scans <= stop_after:
        found = _next_marker(data, position)
        if found is None:
            break
        marker, position = found
        if marker == 0xD9:  # end of image: libjpeg reads no further
            break
        if marker in _STANDALONE_MARKERS:
            continue
        if position + 2 > len(data):
            break
        position += int.from_bytes(data[position : position + 2], "big")
        if marker == 0xDA:
            scans += 1
            position = _end_of_entropy_data(data, position)
    return scans


# Markers without a length: TEM, the restart markers RST0-RST7, and start of image.
_STANDALONE_MARKERS = frozenset({0x01, *range(0xD0, 0xD8), 0xD8})


def _next_marker(data: bytes, position: int) -> tuple[int, int] | None:
    """The next marker at or after `position` and the offset just past it, as libjpeg reads it.

    Anything before an 0xFF is skipped, as are fill bytes (0xFF 0xFF) and stuffed zeros (0xFF 0x00).
    """
    while True:
        position = data.find(b"\xff", position)
        if position < 0:
            return None
        while position < len(data) and data[position] == 0xFF:
            position += 1
        if position >= len(data):
            return None
        marker = data[position]
        position += 1
        if marker != 0x00:
            return marker, position


def _end_of_entropy_data(data: bytes, position: int) -> int:
    """Skip a scan's coded data: it ends at the first 0xFF that is not stuffing or a restart."""
    while True:
        position = data.find(b"\xff", position)
        if position < 0 or position + 1 >= len(data):
            return len(data)
        following = data[position + 1]
        if following == 0x00 or 0xD0 <= following <= 0xD7:
            position += 2
        elif following == 0xFF:
            position += 1
        else:
            return position


def check_frames(im: ImageFile.ImageFile, max_frames: int) -> None:
    """Refuse animations with more frames than we are willing to walk through."""
    if isinstance(im, GifImagePlugin.GifImageFile):
        too_many = _gif_has_more_frames(im, max_frames)
    else:
        too_many = getattr(im, "n_frames", 1) > max_frames  # read from the header (APNG, WebP, MPO)
    if too_many:
        raise ImageError(f"animated image has more than {max_frames} frames")


def _gif_has_more_frames(im: GifImagePlugin.GifImageFile, limit: int) -> bool:
    """Walk GIF frame headers without decoding, stopping one past the limit."""
    # GIF has no frame count in its header: `n_frames` walks the whole file, which is slow on a
    # crafted file of tiny frames. The same private step, bounded, touches at most limit+1 frames.
    try:
        for frame in range(1, limit + 1):
            im._seek(frame, False)
    except EOFError:
        return False
    finally:
        im.seek(0)
    return True
