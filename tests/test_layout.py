"""The package map holds: layers import downwards only, no import cycle, Flask and torch where
they belong (every import counts, function-level ones included)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

BACKEND = Path(__file__).resolve().parent.parent / "backend"
# Packages that know nothing of the web: they must not import Flask (nor werkzeug, click).
NO_FLASK = ("catalog", "images", "model", "index", "stores", "quality", "insights")
WEB_ONLY = ("flask", "werkzeug", "click", "itsdangerous")


def module_name(path: Path) -> str:
    parts = ["backend", *path.relative_to(BACKEND).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module `path` imports (absolute names), at any depth of the file."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            found.add(prefix)
            # `from . import x` may name a module: count it as one when it is.
            found.update(f"{prefix}.{alias.name}" for alias in node.names)
    return found


MODULES = {module_name(path): path for path in BACKEND.rglob("*.py")}
GRAPH = {
    name: {other for other in imports_of(path) if other in MODULES and other != name}
    for name, path in MODULES.items()
}


def test_at_most_eight_top_level_modules():
    assert len(list(BACKEND.glob("*.py"))) <= 8


@pytest.mark.parametrize("package", NO_FLASK)
def test_domain_packages_do_not_import_flask(package):
    for name, path in MODULES.items():
        if name.startswith(f"backend.{package}"):
            web = {m for m in imports_of(path) if m.split(".")[0] in WEB_ONLY}
            assert not web, f"{name} imports {sorted(web)}"
            assert not {m for m in GRAPH[name] if m.startswith(("backend.web", "backend.cli"))}


def test_torch_only_in_the_model_and_fine_tuning():
    allowed = (
        "backend.model.backbones",
        "backend.model.export",
        "backend.model.lite0",
        "backend.model.torch_runtime",
        "backend.quality.finetune",
    )
    for name, path in MODULES.items():
        if any(m.split(".")[0] in ("torch", "torchvision") for m in imports_of(path)):
            assert name.startswith(allowed), f"{name} imports torch"


def test_errors_module_is_plain_python():
    assert not {m for m in imports_of(BACKEND / "errors.py") if m.split(".")[0] in WEB_ONLY}


def test_no_import_cycle():
    """Depth-first search for a back edge over every import, function-level included."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        path.append(name)
        for other in sorted(GRAPH[name]):
            if state.get(other) == 1:
                cycle = path[path.index(other) :] + [other]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if other not in state:
                visit(other)
        path.pop()
        state[name] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name)
