"""`flask index` (sync index.csv with the catalog) and `flask search IMAGE`."""

from __future__ import annotations

from pathlib import Path

import click
from flask.cli import with_appcontext

from ..extensions import get_service
from ..options import parse_options
from ..search import model_name
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
    for row in catalog.skipped:
        click.echo(f"skipped {catalog.path.name} {row}", err=True)
    for product_id, reason in report.failed.items():
        click.echo(f"failed {product_id}: {reason}", err=True)
    if catalog.csv_format.note:
        click.echo(f"catalog: {catalog.path.name} {catalog.csv_format.note}")
    click.echo(f"index: {report.summary()} in {report.seconds:.1f} s")
    if report.damaged_rows:
        click.secho(
            f"NOTE: {service.settings.index_path.name} had {report.damaged_rows} damaged "
            "row(s) (a vector not finite or not of unit length, a torn line or a repeated id); "
            "left out, and their products embedded again",
            fg="yellow",
            err=True,
        )
    if report.replaced_model:
        click.secho(replaced_model_notice(service, report.replaced_model), fg="yellow", err=True)
    if service.indexed_count() == 0 and (catalog.products or catalog.skipped):
        skipped, failed = len(catalog.skipped), len(report.failed)
        raise click.ClickException(
            f"nothing in {catalog.path.name} could be indexed ({skipped} "
            f"{'row' if skipped == 1 else 'rows'} skipped, {failed} "
            f"{'image' if failed == 1 else 'images'} failed; the reasons are above)"
        )
    lost = catalog.undecodable_rows
    if lost:
        # The shop now serves a catalog without them: a script running this must notice.
        raise click.ClickException(
            f"{lost} {'row' if lost == 1 else 'rows'} of {catalog.path.name} could not be "
            f"read and {'is' if lost == 1 else 'are'} not searchable: the file "
            f"{catalog.decoding_advice}"
        )


def replaced_model_notice(service, old: str) -> str:
    """What a re-index with another model did, and what a server still running the old one does."""
    new = service.embedder.identity
    return (
        f"NOTE: {service.settings.index_path.name} was built with model {old}; every image was "
        f"embedded again with {new}. A server still running model {old} keeps its old index "
        f"(its /readyz says so) until restarted with MODEL={model_name(new)}"
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
