"""Flask CLI for the catalog and the database: `flask product put|delete`, `flask catalog
from-s3`, `flask db init`."""

from __future__ import annotations

from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from ..extensions import get_service
from ..images.sources import read_limited
from . import echo_model, friendly_errors


@click.group("product")
def product_group() -> None:
    """Add, replace or delete one product now, without re-indexing the others."""


@product_group.command("put")
@click.argument("product_id")
@click.option("--name", help="Display name (default: the id).")
@click.option("--category", help="Category used by the search filter.")
@click.option("--price", help="A non-negative number; an empty string clears it.")
@click.option("--image-url", help="An http(s) URL, or a path relative to the catalog folder.")
@click.option(
    "--image-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A photo to copy into the catalog folder (uploads/).",
)
@with_appcontext
@friendly_errors
def put_command(product_id: str, image_file: Path | None, **fields: str | None) -> None:
    """Add a product, or replace the one with this id (options left out keep their values)."""
    if image_file is not None and fields["image_url"] is not None:
        raise click.UsageError("give --image-url or --image-file, not both")
    service = get_service()
    echo_model(service)
    image = (
        None if image_file is None else read_limited(image_file, service.settings.max_upload_bytes)
    )
    created = service.catalog.get(product_id) is None
    product = service.put_product(
        product_id, {k: v for k, v in fields.items() if v is not None}, image
    )
    price = "" if product.price is None else f" {product.price:.2f}"
    click.echo(
        f"{'added' if created else 'replaced'} {product.id}: {product.name} "
        f"[{product.category}]{price} {product.image_url}"
    )


@product_group.command("delete")
@click.argument("product_id")
@with_appcontext
@friendly_errors
def delete_command(product_id: str) -> None:
    """Delete one product from products.csv, index.csv and the vector store."""
    get_service().delete_product(product_id)
    click.echo(f"deleted {product_id}")


@click.group("db")
def db_group() -> None:
    """The PostgreSQL database of the pgvector backend (DATABASE_URL)."""


@db_group.command("init")
@click.option(
    "--reset", is_flag=True, help="Drop the search tables first (then run `flask index`)."
)
@click.option("--hnsw-m", type=int, help="Rebuild the HNSW index with this m (default 16).")
@click.option(
    "--hnsw-ef-construction", type=int, help="... and this ef_construction (default 128)."
)
@with_appcontext
@friendly_errors
def db_init_command(reset: bool, hnsw_m: int | None, hnsw_ef_construction: int | None) -> None:
    """Create or migrate the search tables and the pgvector extension (safe to run again)."""
    from ..stores.postgres_db import DEFAULT_INDEX, HnswIndex, describe, init_schema

    url = current_app.config["SETTINGS"].database_url
    if not url:
        raise click.ClickException("set DATABASE_URL to the PostgreSQL database first")
    index = None
    if hnsw_m is not None or hnsw_ef_construction is not None:
        index = HnswIndex(
            hnsw_m or DEFAULT_INDEX.m, hnsw_ef_construction or DEFAULT_INDEX.ef_construction
        )
    if reset:
        click.confirm(f"drop the search tables in {describe(url)}?", abort=True)
    dim = get_service().embedder.dim  # the vector column's width: the model's (with its head)
    click.echo(f"{describe(url)}: {init_schema(url, dim, reset=reset, index=index)}")


@click.group("catalog")
def catalog_group() -> None:
    """Make a catalog for the photos you already have."""


@catalog_group.command("from-s3")
@click.argument("prefix_url")
@click.argument("output", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
@with_appcontext
@friendly_errors
def from_s3_command(prefix_url: str, output: Path, overwrite: bool) -> None:
    """Write OUTPUT (a products.csv) listing every image under PREFIX_URL (s3://bucket/prefix/).

    Ids come from the keys, names from the file names, categories from the first folder under
    the prefix; prices are left empty. Point CATALOG_PATH at the file (or upload it next to the
    photos and point CATALOG_PATH at its s3:// URL), then run `flask index`.
    """
    from ..catalog.bucket import products_from_keys, write_products_csv

    if output.exists() and not overwrite:
        raise click.UsageError(f"{output} exists; pass --overwrite to replace it")
    reader = get_service().locator.s3
    if reader is None:  # a locator built without an S3 reader
        raise click.ClickException("s3:// catalogs are not enabled here")
    bucket, _, prefix = prefix_url[len("s3://") :].partition("/")
    keys = [key for key, _ in reader.list_images(prefix_url)]
    count = write_products_csv(output, products_from_keys(bucket, prefix, keys))
    click.echo(f"wrote {count} products to {output} from {prefix_url}")


COMMANDS = (product_group, catalog_group, db_group)
