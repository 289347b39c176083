#!/usr/bin/env python3
"""Build the bundled demo catalog from the benchmark catalog.

Picks, for each of the 51 Grocery Store Dataset products (labels ``grocery/*``),
its catalogue ("iconic") photo and its in-store photo with the lowest id, so
every product appears twice and "more like this" has a real match to show.
Fashion photos are never used (their license is not verified).

Writes (relative to the repository root):
  backend/static/catalog/<id>.jpg  re-encoded photos (sRGB, max 400 px, JPEG q85,
                                   optimized, baseline, no metadata)
  backend/data/products.csv        id,name,category,price,image_url

Prices are illustrative (a fixed table per category), not real shop prices.
The photos are MIT licensed, Copyright (c) 2019 Marcus Klasson: see NOTICE.

Usage: python3 scripts/make_demo_catalog.py [--bench PATH] [--root PATH]
Needs Pillow (with ImageCms). Output bytes are reproducible for a given
Pillow/libjpeg build.
"""

import argparse
import csv
import io
import sys
from collections import defaultdict
from pathlib import Path

from PIL import Image, ImageCms

REPO_ROOT = Path(__file__).resolve().parent.parent
MAX_SIDE = 400
QUALITY = 85

# Illustrative EUR price per piece / pack, by coarse category.
PRICE_BY_CATEGORY = {
    "Apple": "0.49",
    "Asparagus": "3.99",
    "Aubergine": "1.49",
    "Avocado": "1.29",
    "Carrots": "1.29",
    "Cucumber": "0.89",
    "Garlic": "0.69",
    "Ginger": "0.99",
    "Juice": "2.49",
    "Kiwi": "0.45",
    "Leek": "1.19",
    "Melon": "3.49",
    "Milk": "1.35",
    "Mushroom": "2.49",
    "Oat Milk": "1.89",
    "Oatghurt": "2.19",
    "Onion": "0.35",
    "Orange": "0.59",
    "Papaya": "2.99",
    "Pepper": "1.19",
    "Pineapple": "2.79",
    "Plum": "0.39",
    "Pomegranate": "1.99",
    "Red Beet": "0.49",
    "Red Grapefruit": "0.99",
    "Sour Cream": "1.49",
    "Sour Milk": "1.29",
    "Soy Milk": "1.99",
    "Soyghurt": "2.29",
    "Tomato": "0.59",
    "Yoghurt": "1.79",
    "Zucchini": "1.09",
}
# A few products priced apart from the rest of their category.
PRICE_BY_LABEL = {
    "grocery/Watermelon": "5.99",
    "grocery/Beef-Tomato": "1.29",
}

_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return {row["id"]: row for row in csv.DictReader(f)}


def select(bench):
    """Return the chosen bench ids: one iconic + lowest-id in-store photo per product."""
    labels = read_csv(bench / "labels.csv")
    meta = read_csv(bench / "meta.csv")
    iconic, in_store = {}, defaultdict(list)
    for pid, row in labels.items():
        label = row["label"]
        if not label.startswith("grocery/"):
            continue
        if meta[pid]["notes"] == "iconic catalogue photo":
            if label in iconic:
                raise SystemExit(f"two catalogue photos for {label}")
            iconic[label] = pid
        else:
            in_store[label].append(pid)
    if set(iconic) != set(in_store):
        raise SystemExit("products without both a catalogue and an in-store photo")
    chosen = {}
    for label in sorted(iconic):
        chosen[iconic[label]] = label
        chosen[min(in_store[label], key=int)] = label
    return chosen


def reencode(src, dst):
    with Image.open(src) as im:
        im.load()
        icc = im.info.get("icc_profile")
        if im.mode != "RGB":
            im = im.convert("RGB")
        if icc:  # e.g. Adobe RGB catalogue photos: convert, since metadata is dropped
            src_profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            im = ImageCms.profileToProfile(im, src_profile, _SRGB, outputMode="RGB")
        if max(im.size) > MAX_SIDE:
            im.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
        # No exif / icc_profile passed: the output carries no metadata.
        im.save(dst, "JPEG", quality=QUALITY, optimize=True, progressive=False)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--bench",
        type=Path,
        default=REPO_ROOT.parent / "shared" / "bench",
        help="benchmark catalog folder (default: ../shared/bench from the repo root)",
    )
    ap.add_argument(
        "--root",
        type=Path,
        default=REPO_ROOT,
        help="where to write backend/... (default: the repository root)",
    )
    args = ap.parse_args(argv)

    products = read_csv(args.bench / "products.csv")
    chosen = select(args.bench)

    img_dir = args.root / "backend" / "static" / "catalog"
    csv_path = args.root / "backend" / "data" / "products.csv"
    img_dir.mkdir(parents=True, exist_ok=True)
    csv_path.parent.mkdir(parents=True, exist_ok=True)

    wanted = {f"{pid}.jpg" for pid in chosen}
    for old in img_dir.glob("*.jpg"):
        if old.name not in wanted:
            old.unlink()

    rows = []
    for pid in sorted(chosen, key=int):
        p = products[pid]
        label = chosen[pid]
        price = PRICE_BY_LABEL.get(label) or PRICE_BY_CATEGORY[p["category"]]
        reencode(args.bench / p["image_url"], img_dir / f"{pid}.jpg")
        rows.append([pid, p["name"], p["category"], price, f"catalog/{pid}.jpg"])

    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["id", "name", "category", "price", "image_url"])
        w.writerows(rows)

    size = sum((img_dir / n).stat().st_size for n in wanted)
    print(
        f"{len(rows)} items, {len({r[2] for r in rows})} categories, {size / 1e6:.2f} MB of images",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
