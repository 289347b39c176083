"""`python -m backend.config --markdown`: the settings tables of docs/configuration.md;
`--write FILE`: put them in place in FILE."""

from __future__ import annotations

import argparse
from pathlib import Path

from .tables import tables, with_tables


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m backend.config", description=__doc__)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--markdown", action="store_true", help="print the settings tables")
    group.add_argument("--write", type=Path, metavar="FILE", help="replace the tables in FILE")
    args = parser.parse_args()
    if args.markdown:
        print("\n".join(f"{heading}\n\n{table}" for heading, table in tables().items()), end="")
        return
    args.write.write_text(with_tables(args.write.read_text()))


if __name__ == "__main__":
    main()
