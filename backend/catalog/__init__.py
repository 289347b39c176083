"""The shop's catalog: products.csv -> frozen `Product` records, and live edits of it."""

from .products import Catalog, Product, SkippedRow, load_catalog

__all__ = ["Catalog", "Product", "SkippedRow", "load_catalog"]
