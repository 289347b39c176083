"""Generated test catalogs: PIL-drawn product pictures and the products.csv that lists them."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from PIL import Image, ImageDraw

COLOURS = {
    "red": (220, 30, 40),
    "green": (30, 180, 60),
    "blue": (40, 60, 220),
    "yellow": (240, 220, 40),
    "purple": (130, 40, 160),
    "cyan": (40, 200, 210),
}


def draw_image(
    colour: str, shape: str = "circle", size: tuple[int, int] = (160, 120)
) -> Image.Image:
    """A product-like picture: a coloured shape on a light background."""
    image = Image.new("RGB", size, (245, 245, 240))
    draw = ImageDraw.Draw(image)
    w, h = size
    box = (w * 0.2, h * 0.15, w * 0.8, h * 0.85)
    fill = COLOURS[colour]
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    elif shape == "stripes":
        for x in range(0, w, 16):
            draw.rectangle((x, 0, x + 7, h), fill=fill)
    else:
        draw.polygon([(w / 2, h * 0.1), (w * 0.9, h * 0.9), (w * 0.1, h * 0.9)], fill=fill)
    return image


def image_bytes(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


# The test app's backbone, with random weights: a shipped torchvision network that embeds in a
# sixth of ResNet18's time (about 10 ms an image against 60 ms on two cores), which most tests
# pay at every sync; its random features still tell the test catalog's colours and shapes apart.
TEST_MODEL, TEST_MODEL_DIM = "mobilenet_v3_large", 960
# The identities of the test models: name / weights / preprocessing / runtime. The test app
# serves through ONNX Runtime, the default runtime.
RANDOM_TEST_MODEL = "mobilenet_v3_large/random-seed0/p2-r232c224-bilinear-imagenet/ort-fp32"
RANDOM_RESNET18 = "resnet18/random-seed0/p2-r256c224-bilinear-imagenet/ort-fp32"
HISTOGRAM = "color_histogram/none/h1/numpy-fp32"

# id, name, category, colour, shape
DEFAULT_ITEMS = [
    ("p1", "Red ball", "toys", "red", "circle"),
    ("p2", "Red box", "toys", "red", "square"),
    ("p3", "Green ball", "toys", "green", "circle"),
    ("p4", "Blue scarf", "clothes", "blue", "stripes"),
    ("p5", "Yellow tent", "outdoor", "yellow", "triangle"),
    ("p6", "Purple scarf", "clothes", "purple", "stripes"),
    ("p7", "Cyan box", "outdoor", "cyan", "square"),
]


def write_catalog(folder: Path, items=DEFAULT_ITEMS, extra_rows: list[list[str]] = ()) -> Path:
    """Write images under folder/images and a products.csv listing them; return the CSV path."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    path = folder / "products.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "name", "category", "price", "image_url"])
        for index, (pid, name, category, colour, shape) in enumerate(items):
            draw_image(colour, shape).save(folder / "images" / f"{pid}.png")
            writer.writerow([pid, name, category, f"{9.5 + index:.2f}", f"images/{pid}.png"])
        writer.writerows(extra_rows)
    return path


def make_app_config(root: Path, catalog_path: Path) -> dict:
    """The test app's settings: TEST_MODEL with random weights, everything it writes under root."""
    return {
        "TESTING": True,
        "catalog_path": catalog_path,
        "index_path": root / "index" / "index.csv",
        "cache_dir": root / "cache",
        "model": TEST_MODEL,
        "model_weights": "random",
        "_similarity_threshold": 0.5,
    }


def demo_config(root: Path) -> dict:
    """The bundled demo catalog served as ./scripts/demo.sh serves it (the default model,
    efficientnet_lite0), with its index and cache under root."""
    from backend.config import PACKAGE_DIR

    return {
        "catalog_path": PACKAGE_DIR / "data" / "products.csv",
        "index_path": root / "index.csv",
        "cache_dir": root / "cache",
        "model": "efficientnet_lite0",
    }


def count_embeds(service, monkeypatch) -> list[int]:
    """The sizes of the batches that go through the service's model, as they are embedded."""
    counted: list[int] = []
    original = service.embedder.embed_arrays

    def counting(arrays):
        counted.append(len(arrays))
        return original(arrays)

    monkeypatch.setattr(service.embedder, "embed_arrays", counting)
    return counted
