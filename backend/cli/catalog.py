"""Flask CLI for live catalog edits and the database: `flask product put|delete`, `flask db init`."""

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
    from ..stores.postgres import DEFAULT_INDEX, HnswIndex, describe, init_schema

    url = current_app.config["SETTINGS"].database_url
    if not url:
        raise click.ClickException("set DATABASE_URL to the PostgreSQL database first")
    index = None
    if hnsw_m is not None or hnsw_ef_construction is not None:
        index = HnswIndex(hnsw_m or DEFAULT_INDEX.m,
                          hnsw_ef_construction or DEFAULT_INDEX.ef_construction)  # fmt: skip
    if reset:
        click.confirm(f"drop the search tables in {describe(url)}?", abort=True)
    dim = get_service().embedder.dim  # the vector column's width: the model's (with its head)
    click.echo(f"{describe(url)}: {init_schema(url, dim, reset=reset, index=index)}")


COMMANDS = (product_group, db_group)
