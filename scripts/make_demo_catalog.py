#!/usr/bin/env python3
"""Build the bundled demo catalog, its shopper photos and the in-store test photos.

From the 51 Grocery Store Dataset products of the benchmark catalog (labels ``grocery/*``):

- the catalog: each product's catalogue ("iconic") photo, one product per row, as a shop
  would list it;
- shopper photos to try on the home page: for a fixed list of products (chosen for
  variety, not by how well they are found), the in-store phone photo with the lowest id;
- in-store test photos: the next ``TEST_PHOTOS_PER_PRODUCT`` in-store photos of every
  product (by id), which the similarity tests search with.

None of the shopper or test photos is in the catalog. Fashion photos are never used (their
license is not verified).

Writes (relative to the repository root):
  backend/static/catalog/<id>.jpg   catalogue photos      (re-encoded: sRGB, max 400 px,
  backend/static/shoppers/<id>.jpg  shopper photos         JPEG q85, optimized, baseline,
  tests/data/instore/<id>.jpg       in-store test photos   no metadata)
  backend/data/products.csv         id,name,category,price,image_url
  backend/data/examples.csv         id,product_id,image_url (the shopper photos)
  tests/data/instore.csv            id,product_id,image_url (the test photos)

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

# Shopper photos shown on the home page: one product of each kind (fruit, vegetable, packs).
FEATURED = (
    "grocery/Golden-Delicious",
    "grocery/Red-Bell-Pepper",
    "grocery/Avocado",
    "grocery/Pineapple",
    "grocery/Oatly-Oat-Milk",
    "grocery/Tropicana-Apple-Juice",
    "grocery/Arla-Natural-Yoghurt",
    "grocery/Brown-Cap-Mushroom",
)
TEST_PHOTOS_PER_PRODUCT = 2

_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return {row["id"]: row for row in csv.DictReader(f)}


def select(bench):
    """Return ({catalogue photo id: label}, {label: [in-store photo ids, lowest first]})."""
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
    missing = set(FEATURED) - set(iconic)
    if missing:
        raise SystemExit(f"featured products not in the benchmark catalog: {sorted(missing)}")
    catalog = {iconic[label]: label for label in sorted(iconic)}
    return catalog, {label: sorted(ids, key=int) for label, ids in in_store.items()}


def reencode(src, dst):
    with Image.open(src) as opened:
        opened.load()
        icc = opened.info.get("icc_profile")
        im: Image.Image = opened.convert("RGB") if opened.mode != "RGB" else opened
        if icc:  # e.g. Adobe RGB catalogue photos: convert, since metadata is dropped
            src_profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            converted = ImageCms.profileToProfile(im, src_profile, _SRGB, outputMode="RGB")
            assert converted is not None  # None only for inPlace=True
            im = converted
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
        help="where to write backend/... and tests/... (default: the repository root)",
    )
    args = ap.parse_args(argv)

    products = read_csv(args.bench / "products.csv")
    catalog, in_store = select(args.bench)
    product_of = {label: pid for pid, label in catalog.items()}

    rows = []
    for pid in sorted(catalog, key=int):
        p = products[pid]
        price = PRICE_BY_LABEL.get(catalog[pid]) or PRICE_BY_CATEGORY[p["category"]]
        rows.append([pid, p["name"], p["category"], price, f"catalog/{pid}.jpg"])
    shoppers = [(in_store[label][0], product_of[label]) for label in FEATURED]
    tests = [
        (photo, product_of[label])
        for label in sorted(in_store)
        for photo in [i for i in in_store[label] if (i, product_of[label]) not in shoppers][
            :TEST_PHOTOS_PER_PRODUCT
        ]
    ]

    static = args.root / "backend" / "static"
    total = write_photos(args.bench, products, static / "catalog", [r[0] for r in rows])
    total += write_photos(args.bench, products, static / "shoppers", [s[0] for s in shoppers])
    total += write_photos(
        args.bench, products, args.root / "tests" / "data" / "instore", [t[0] for t in tests]
    )
    data = args.root / "backend" / "data"
    write_csv(data / "products.csv", ["id", "name", "category", "price", "image_url"], rows)
    write_csv(
        data / "examples.csv",
        ["id", "product_id", "image_url"],
        [[photo, pid, f"shoppers/{photo}.jpg"] for photo, pid in shoppers],
    )
    write_csv(
        args.root / "tests" / "data" / "instore.csv",
        ["id", "product_id", "image_url"],
        [[photo, pid, f"instore/{photo}.jpg"] for photo, pid in tests],
    )
    print(
        f"{len(rows)} catalog items in {len({r[2] for r in rows})} categories, "
        f"{len(shoppers)} shopper photos, {len(tests)} in-store test photos, "
        f"{total / 1e6:.2f} MB of images",
        file=sys.stderr,
    )


def write_photos(bench, products, folder, ids):
    """Re-encode the benchmark photos `ids` into folder/<id>.jpg, removing any other; bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    wanted = {f"{pid}.jpg" for pid in ids}
    for old in folder.glob("*.jpg"):
        if old.name not in wanted:
            old.unlink()
    for pid in ids:
        reencode(bench / products[pid]["image_url"], folder / f"{pid}.jpg")
    return sum((folder / name).stat().st_size for name in wanted)


def write_csv(path, header, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


if __name__ == "__main__":
    main()
