"""The Flask CLI: `flask --app backend index | search | product | db | evaluate | finetune`.

Commands (in `search`, `catalog`, `quality`) parse their arguments, call the service and echo;
what they share lives here. `create_app` registers them.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Callable, Iterator

import click

from ..errors import ConfigError, InvalidInput, SearchAppError
from ..options import OPTION_FIELDS

RANDOM_NOTICE = "NOTE: MODEL_WEIGHTS=random: an untrained model; similarities are NOT meaningful."


class SettingsError(click.ClickException):
    """A bad setting or argument: one line naming it, exit status 2 (like a usage error)."""

    exit_code = 2


def friendly_errors(command: Callable) -> Callable:
    """Turn domain errors into a one-line message and a non-zero exit, not a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (ConfigError, InvalidInput) as error:
            raise SettingsError(error.message) from None
        except SearchAppError as error:
            raise click.ClickException(error.message) from None
        except OSError as error:  # a disk full, a read-only or missing folder
            raise click.ClickException(
                f"{error.strerror or error}: {error.filename or ''}"
            ) from None

    return wrapper


def search_option_flags(command: Callable) -> Callable:
    """`--k`, `--threshold`, `--category`, `--min-price`, `--max-price`, from `backend.options`."""
    for field in reversed(OPTION_FIELDS):
        flag = f"--{field.name.replace('_', '-')}"
        command = click.option(flag, field.name, type=field.kind, help=field.description)(command)
    return command


def echo_model(service) -> None:
    click.echo(f"model: {service.embedder.identity}", err=True)
    if service.embedder.random_weights:
        click.secho(RANDOM_NOTICE, fg="yellow", err=True)


@contextlib.contextmanager
def progress_bar(label: str) -> Iterator[Callable[[int, int], None]]:
    """A click progress bar on stderr driven by (done, total) callbacks."""
    with click.progressbar(length=0, label=label, file=sys.stderr) as bar:

        def progress(done: int, total: int) -> None:
            bar.length = total
            bar.update(done - bar.pos)

        yield progress
