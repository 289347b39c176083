"""`flask index` (sync index.csv with the catalog) and `flask search IMAGE`."""

from __future__ import annotations

from pathlib import Path

import click
from flask.cli import with_appcontext

from ..extensions import get_service
from ..options import parse_options
from . import echo_model, friendly_errors, progress_bar, search_option_flags


@click.command("index")
@with_appcontext
@friendly_errors
def index_command() -> None:
    """Sync index.csv with the catalog (embeds only new or changed products)."""
    service = get_service()
    echo_model(service)
    with progress_bar("embedding") as progress:
        catalog, report = service.sync(progress=progress)
    for skipped in catalog.skipped:
        click.echo(f"skipped {catalog.path.name} {skipped}", err=True)
    for product_id, reason in report.failed.items():
        click.echo(f"failed {product_id}: {reason}", err=True)
    click.echo(f"index: {report.summary()} in {report.seconds:.1f} s")
    if service.indexed_count() == 0 and (catalog.products or catalog.skipped):
        skipped, failed = len(catalog.skipped), len(report.failed)
        raise click.ClickException(
            f"nothing in {catalog.path.name} could be indexed ({skipped} "
            f"{'row' if skipped == 1 else 'rows'} skipped, {failed} "
            f"{'image' if failed == 1 else 'images'} failed; the reasons are above)"
        )


@click.command("search")
@click.argument("image")
@search_option_flags
@with_appcontext
@friendly_errors
def search_command(image: str, **values) -> None:
    """Print the catalog items most similar to IMAGE (a file path or an http(s) URL)."""
    service = get_service()
    echo_model(service)
    defaults = service.settings.search_defaults
    options = parse_options(values, defaults, service.catalog.categories, percent=False)
    if image.lower().startswith(("http://", "https://")):
        result = service.search_url(image, options)
    else:
        path = Path(image)
        if not path.is_file():
            raise click.ClickException(f"{image} is not a file or an http(s) URL")
        result = service.search_path(path, options)
    for rank, hit in enumerate(result.shown, start=1):
        product = hit.product
        price = "" if product.price is None else f"{product.price:.2f}"
        chance = "" if hit.match is None else f"{hit.match:>3}%  "
        click.echo(
            f"{rank:>3}  {hit.similarity:.4f}  {chance}{product.id}  {product.name}  "
            f"[{product.category}]  {price}".rstrip()
        )
    if not result.shown:
        unit = "match" if result.calibrated else "similarity"
        click.echo(f"no results at or above {unit} {result.threshold:.2f}")
    if result.hidden_below_threshold:
        click.echo(f"({result.hidden_below_threshold} more below the threshold)")


COMMANDS = (index_command, search_command)
