"""The parts of `backend/service/` keep their order: none imports the facade (`backend.search`)
nor a part above it, at any depth of the file."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SERVICE = Path(__file__).resolve().parent.parent / "backend" / "service"
# From the bottom up: each part may import only those before it.
ORDER = ("results", "runtime", "lifecycle", "media", "ranking", "edits")


def imported(source: str) -> set[str]:
    """The absolute names a module of backend/service imports (function-level ones included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = ["backend", "service"][: 3 - node.level] if node.level else []
            prefix = ".".join(base + ([node.module] if node.module else []))
            found.add(prefix)
            found.update(f"{prefix}.{alias.name}" for alias in node.names)
    return found


def wrong_imports(part: str, source: str) -> list[str]:
    """What `part` imports against the order: the facade, or a part at or above its own place."""
    allowed = ORDER[: ORDER.index(part)] if part in ORDER else ()
    wrong = []
    for name in sorted(imported(source)):
        if name == "backend.search" or name.startswith("backend.search."):
            wrong.append(name)
        elif name.startswith("backend.service."):
            other = name.split(".")[2]
            if other != part and other not in allowed:
                wrong.append(name)
    return wrong


def test_every_part_has_its_place_in_the_order():
    parts = {path.stem for path in SERVICE.glob("*.py")} - {"__init__"}
    assert parts == set(ORDER)


@pytest.mark.parametrize("part", ["__init__", *ORDER])
def test_parts_import_neither_the_facade_nor_a_part_above_them(part):
    assert wrong_imports(part, (SERVICE / f"{part}.py").read_text()) == []


@pytest.mark.parametrize(
    "part, source",
    [
        ("runtime", "from .lifecycle import Lifecycle"),
        ("lifecycle", "def f():\n    from . import edits\n"),
        ("edits", "from ..search import SearchService"),
        ("results", "import backend.search"),
        ("media", "from backend.service.ranking import Ranking"),
    ],
)
def test_the_check_finds_an_upward_import(part, source):
    assert wrong_imports(part, source)


def test_the_check_lets_a_downward_import_pass():
    assert wrong_imports("edits", "from .lifecycle import Lifecycle\nfrom ..index import x") == []
