"""Flask CLI: `flask --app backend index` and `flask --app backend search IMAGE`."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import click
from flask import Flask
from flask.cli import with_appcontext

from .errors import SearchAppError
from .service import get_service

RANDOM_NOTICE = "NOTE: MODEL_WEIGHTS=random: an untrained model; similarities are NOT meaningful."


def init_app(app: Flask) -> None:
    app.cli.add_command(index_command)
    app.cli.add_command(search_command)
    from . import catalog_cli, quality_cli  # they import this module: registered here

    quality_cli.init_app(app)
    catalog_cli.init_app(app)


def friendly_errors(command):
    """Turn domain errors into a one-line message and a non-zero exit, not a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except SearchAppError as error:
            raise click.ClickException(error.message) from None

    return wrapper


def echo_model(service) -> None:
    click.echo(f"model: {service.embedder.identity}", err=True)
    if service.embedder.random_weights:
        click.secho(RANDOM_NOTICE, fg="yellow", err=True)


@click.command("index")
@with_appcontext
@friendly_errors
def index_command() -> None:
    """Sync index.csv with the catalog (embeds only new or changed products)."""
    service = get_service()
    echo_model(service)
    with click.progressbar(length=0, label="embedding", file=sys.stderr) as bar:
        def progress(done: int, total: int) -> None:
            bar.length = total
            bar.update(done - bar.pos)

        catalog, report = service.sync(progress=progress)
    for skipped in catalog.skipped:
        click.echo(f"skipped {catalog.path.name} {skipped}", err=True)
    for product_id, reason in report.failed.items():
        click.echo(f"failed {product_id}: {reason}", err=True)
    click.echo(f"index: {report.summary()} in {report.seconds:.1f} s")


@click.command("search")
@click.argument("image")
@click.option("--k", type=click.IntRange(1, 100), default=None, help="Number of results.")
@click.option("--threshold", type=click.FloatRange(0, 1), default=None, help="Minimum cosine similarity.")
@click.option("--category", default=None, help="Only search this category.")
@click.option("--min-price", type=click.FloatRange(0), default=None, help="Only products at this price or more.")
@click.option("--max-price", type=click.FloatRange(0), default=None, help="Only products at this price or less.")
@with_appcontext
@friendly_errors
def search_command(image: str, **options) -> None:
    """Print the catalog items most similar to IMAGE (a file path or an http(s) URL)."""
    service = get_service()
    echo_model(service)
    if image.lower().startswith(("http://", "https://")):
        result = service.search_url(image, **options)
    else:
        path = Path(image)
        if not path.is_file():
            raise click.ClickException(f"{image} is not a file or an http(s) URL")
        result = service.search_path(path, **options)
    for rank, hit in enumerate(result.shown, start=1):
        product = hit.product
        price = "" if product.price is None else f"{product.price:.2f}"
        click.echo(
            f"{rank:>3}  {hit.similarity:.4f}  {product.id}  {product.name}  "
            f"[{product.category}]  {price}".rstrip()
        )
    if not result.shown:
        click.echo(f"no results at or above similarity {result.threshold:.2f}")
    if result.hidden_below_threshold:
        click.echo(f"({result.hidden_below_threshold} more below the threshold)")
