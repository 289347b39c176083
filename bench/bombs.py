"""Cost of one hostile upload through the query path: seconds and peak memory of a fresh process.

    .venv/bin/python -m bench.bombs [--root PATH]

Each case runs in its own child process (MODEL_WEIGHTS=random ResNet18): the model is loaded,
then one upload goes through `SearchService.search_bytes` (decode, preprocess, embed). Prints
the outcome, the seconds of that one call (wall and CPU) and the peak RSS before and after it.
The uploads: extreme aspect ratios (tiny PNGs that preprocessing scales up), progressive JPEGs
of repeated scans (each scan is a pass over every block; also behind a junk byte or a restart
marker, which once hid them from the scan count), 40-megapixel images that compress to a few
hundred kB (WebP and PNG are decoded whole), the largest of them still accepted, and an
ordinary photo for reference. `python -m bench.upload_load` puts them on a running server.
`--root` runs another checkout's code (to measure a version before a change).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CASES = {
    "photo 640x480 JPEG": "photo",
    "PNG 20000x1": "narrow 20000 1",
    "PNG 16383x2": "narrow 16383 2",
    "JPEG 36 MP, 2,010 scans": "scans 6000 6000 2010",
    "JPEG 36 MP, 27 scans": "scans 6000 6000 27",
    "JPEG 36 MP, 11 scans": "scans 6000 6000 11",
    "JPEG 4 MP, 2,000 scans, junk": "scans 2000 2000 2000 junk",
    "JPEG 4 MP, 2,000 scans, RST": "scans 2000 2000 2000 restart",
    "JPEG 36 MP, 300 scans, junk": "scans 6000 6000 300 junk",
    "WebP 40 MP": "gradient 7300 5479 RGB WEBP",
    "PNG 40 MP": "gradient 7300 5479 RGB PNG",
    "JPEG 40 MP": "gradient 7300 5479 RGB JPEG",
    "JPEG 40 MP progressive": "gradient 7300 5479 RGB JPEG progressive",
    "WebP 5.8 MP": "gradient 2900 2000 RGB WEBP",
    "JPEG 30 MP progressive": "gradient 6300 4750 RGB JPEG progressive",
    "PNG 24 MP": "gradient 6000 4000 RGB PNG",
    "PNG 11.6 MP RGBA": "gradient 4000 2900 RGBA PNG",
    "JPEG 30 MP, 13 scans": "scans 6300 4750 13",
}

CHILD = r"""
import io, json, resource, sys, time
from PIL import Image
from backend.config import load_settings
from backend.search import SearchService
def scan_bomb(size, scans):
    # A progressive JPEG whose last scan is repeated (the builder of tests/images/test_decode.py).
    out = io.BytesIO()
    Image.new("RGB", size, (128, 128, 128)).save(out, "JPEG", progressive=True)
    data, position, found = out.getvalue(), 2, []
    while data[position + 1] != 0xD9:
        marker, start = data[position + 1], position
        position += 2 + int.from_bytes(data[position + 2 : position + 4], "big")
        if marker == 0xDA:
            while data[position] != 0xFF or data[position + 1] in (0, *range(0xD0, 0xD8)):
                position += 1
            found.append((start, position))
    start, end = found[-1]
    return data[:end] + data[start:end] * (scans - len(found)) + data[end:]
def hide(data, how):
    # What libjpeg skips before the first scan: a stray byte, or a restart marker.
    first = data.index(b"\xff\xda")
    return data[:first] + {"junk": b"\x00", "restart": b"\xff\xd0"}[how] + data[first:]
kind, *words = sys.argv[1].split()
numbers = [int(n) for n in words if n.isdigit()]
buffer = io.BytesIO()
if kind == "gradient":
    mode, fmt, *options = words[2:]
    grey = Image.linear_gradient("L").resize(tuple(numbers[:2]))
    grey.convert(mode).save(buffer, fmt, progressive=bool(options))
    data = buffer.getvalue()
elif kind == "photo":
    Image.effect_noise((640, 480), 40).convert("RGB").save(buffer, "JPEG")
    data = buffer.getvalue()
elif kind == "narrow":
    Image.new("RGB", tuple(numbers), (200, 10, 10)).save(buffer, "PNG")
    data = buffer.getvalue()
else:
    data = scan_bomb(tuple(numbers[:2]), numbers[2])
    if len(words) > 3:
        data = hide(data, words[3])
service = SearchService(load_settings(overrides={"model": "resnet18", "model_weights": "random"}))
service.embedder.embed([Image.new("RGB", (224, 224))])
peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
before, wall, cpu = peak(), time.perf_counter(), time.process_time()
try:
    decode = __import__("backend.images.decode", fromlist=["decode_image"]).decode_image
    image = decode(data, min_size=service.embedder.min_decode_size)
    service.embedder.embed([image])
    outcome = "embedded"
except Exception as error:
    outcome = "refused: " + getattr(error, "message", str(error))[:60]
print(json.dumps({"bytes": len(data), "outcome": outcome, "wall": time.perf_counter() - wall,
                  "cpu": time.process_time() - cpu, "before_mb": before, "after_mb": peak()}))
"""


def run_case(root: Path, spec: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, spec], cwd=root, capture_output=True, text=True, timeout=600
    )
    if done.returncode != 0:
        return {
            "bytes": 0,
            "outcome": "crashed: " + done.stderr.strip()[-80:],
            "wall": 0,
            "cpu": 0,
            "before_mb": 0,
            "after_mb": 0,
        }
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout to measure")
    args = parser.parse_args(argv)
    print(f"code: {args.root}; {os.cpu_count()} CPUs")
    print(f"{'upload':<26} {'bytes':>8} {'wall s':>7} {'CPU s':>7} {'RSS MB':>13}  outcome")
    for name, spec in CASES.items():
        row = run_case(args.root.resolve(), spec)
        rss = f"{row['before_mb']:.0f}->{row['after_mb']:.0f}"
        print(
            f"{name:<26} {row['bytes']:>8} {row['wall']:>7.2f} {row['cpu']:>7.2f} {rss:>13}  "
            f"{row['outcome']}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
