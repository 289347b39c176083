"""The settings tables of docs/configuration.md, written from the declarations.

`python -m backend.config --markdown` prints them; `--write docs/configuration.md` puts them in
place of the tables under their headings (a test keeps the file equal to them).
"""

from __future__ import annotations

import re

from .declare import declared, markdown_table
from .server import ServerSettings
from .settings import Settings

APP_HEADING, SERVER_HEADING = "## App settings", "## Server settings"
# The first table after a heading: its lines, each starting with "|".
_TABLE = re.compile(r"(?m)^\|.*\n(?:^\|.*\n)*")


def tables() -> dict[str, str]:
    """Heading -> the table under it: the app's settings, then the server's (with the app's
    settings that the server sets)."""
    app = [setting for setting in declared(Settings) if not setting.server_table]
    server = [*declared(ServerSettings)]
    server += [setting for setting in declared(Settings) if setting.server_table]
    return {APP_HEADING: markdown_table(app), SERVER_HEADING: markdown_table(server)}


def table_under(markdown: str, heading: str) -> str:
    """The first table after `heading` in `markdown`, as written."""
    return _first_table(markdown.split(f"\n{heading}\n", 1)[1], heading).group()


def with_tables(markdown: str) -> str:
    """`markdown` with the table under each heading replaced by the generated one."""
    for heading, table in tables().items():
        before, after = markdown.split(f"\n{heading}\n", 1)
        old = _first_table(after, heading)
        after = after[: old.start()] + table + after[old.end() :]
        markdown = f"{before}\n{heading}\n{after}"
    return markdown


def _first_table(section: str, heading: str) -> re.Match[str]:
    found = _TABLE.search(section)
    if found is None:
        raise ValueError(f"no table under {heading!r}")
    return found
