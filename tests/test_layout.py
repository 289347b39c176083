"""The package map holds: layers import downwards only, no import cycle, Flask and torch where
they belong (every import counts, function-level ones included).

LAYERS is the one list of the layers; docs/development.md's module map lists the same packages
in the same order (a test below keeps them equal).
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BACKEND = ROOT / "backend"
# Bottom to top. A package is a sub-package of backend/ or one of its top-level modules;
# "backend" is backend/__init__.py (create_app). A module may import its own package, the
# packages of lower layers, and nothing else: not a higher layer, nor another package of its own
# layer.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "atomic"),
    ("parsing",),
    ("options",),
    ("catalog",),
    ("images",),
    ("model",),
    ("config",),
    ("index",),
    ("stores",),
    ("service",),
    ("search",),
    ("insights",),
    ("quality",),
    ("extensions",),  # the one SearchService of the app, which web and cli share
    ("web", "cli"),
    ("serving",),
    ("backend",),  # create_app starts the index sync of `flask run` (serving.boot)
)
# Below the web: these never reach Flask (nor werkzeug, click), however many imports away.
DOMAIN = tuple(p for layer in LAYERS[: LAYERS.index(("extensions",))] for p in layer)
WEB_ONLY = ("flask", "werkzeug", "click", "itsdangerous")


def module_name(path: Path, root: Path = BACKEND) -> str:
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, root: Path = BACKEND) -> set[str]:
    """Every module `path` imports (absolute names), at any depth of the file."""
    name = module_name(path, root)
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


def read_tree(root: Path) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """The package under `root`: its import graph between its own modules, and every module's
    other imports (top-level names: `flask`, `numpy`, ...)."""
    modules = {module_name(path, root): path for path in root.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    outside: dict[str, set[str]] = {}
    for name, path in modules.items():
        imported = imports_of(path, root)
        graph[name] = {other for other in imported if other in modules and other != name}
        outside[name] = {m.split(".")[0] for m in imported if m.split(".")[0] != root.name}
    return graph, outside


def package_of(module: str) -> str:
    """`backend.web.api` -> `web`; `backend.config` -> `config`; `backend` -> `backend`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def layering_errors(
    graph: Mapping[str, Iterable[str]], layers: tuple[tuple[str, ...], ...]
) -> list[str]:
    """Every import between packages that does not point down, and every unlisted package."""
    rank = {package: index for index, layer in enumerate(layers) for package in layer}
    errors = []
    for name in sorted(graph):
        here = package_of(name)
        if here not in rank:
            errors.append(f"{name}: package {here!r} is in no layer")
            continue
        for other in sorted(graph[name]):
            there = package_of(other)
            if there == here or rank.get(there, len(layers)) < rank[here]:
                continue
            way = "up" if rank.get(there, len(layers)) > rank[here] else "sideways"
            errors.append(f"{name} imports {other} ({way}: {here} -> {there})")
    return errors


def reaches_web(
    graph: Mapping[str, Iterable[str]],
    outside: Mapping[str, Iterable[str]],
    packages: Iterable[str],
) -> list[str]:
    """The chains by which a module of `packages` reaches Flask, werkzeug or click."""
    chains = []
    for start in sorted(m for m in graph if package_of(m) in set(packages)):
        seen = {start: [start]}
        todo = [start]
        while todo:
            name = todo.pop()
            web = sorted(set(outside.get(name, ())) & set(WEB_ONLY))
            if web:
                chains.append(" -> ".join([*seen[name], web[0]]))
                break
            for other in sorted(graph.get(name, ())):
                if other not in seen:
                    seen[other] = [*seen[name], other]
                    todo.append(other)
    return chains


GRAPH, OUTSIDE = read_tree(BACKEND)


def test_at_most_eight_top_level_modules():
    assert len(list(BACKEND.glob("*.py"))) <= 8


# Sizes that keep a module readable in one sitting and a class to one job.
MAX_MODULE_LINES, MAX_CLASS_LINES = 400, 250


def oversized(path: Path) -> list[str]:
    """The module itself if it is over MAX_MODULE_LINES, and each class over MAX_CLASS_LINES."""
    source = path.read_text()
    found = []
    if (lines := len(source.splitlines())) > MAX_MODULE_LINES:
        found.append(f"{path.name}: {lines} lines")
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ClassDef) or node.end_lineno is None:
            continue
        if (lines := node.end_lineno - node.lineno + 1) > MAX_CLASS_LINES:
            found.append(f"{path.name}: class {node.name}, {lines} lines")
    return found


def test_no_module_over_400_lines_and_no_class_over_250():
    found = [entry for path in sorted(BACKEND.rglob("*.py")) for entry in oversized(path)]
    assert not found, "split these: " + "; ".join(sorted(found))


def test_the_size_check_finds_a_long_class(tmp_path):
    module = tmp_path / "long.py"
    module.write_text("class Long:\n" + "    x = 1\n" * MAX_CLASS_LINES)
    assert oversized(module) == [f"long.py: class Long, {MAX_CLASS_LINES + 1} lines"]
    module.write_text("x = 1\n" * (MAX_MODULE_LINES + 1))
    assert oversized(module) == [f"long.py: {MAX_MODULE_LINES + 1} lines"]


def test_layers_import_downwards_only():
    errors = layering_errors(GRAPH, LAYERS)
    assert not errors, "\n".join(errors)


def test_every_package_is_in_one_layer():
    listed = [package for layer in LAYERS for package in layer]
    assert len(listed) == len(set(listed))
    present = {package_of(name) for name in GRAPH}
    # `service` is listed before it exists, so that it starts below the facade.
    assert present <= set(listed), sorted(present - set(listed))


def test_domain_packages_never_reach_flask():
    chains = reaches_web(GRAPH, OUTSIDE, DOMAIN)
    assert not chains, "\n".join(chains)


def test_the_python_api_loads_no_web_framework():
    """What the static check cannot see: a package runs its parents' __init__ first, so the
    app factory's package must not load Flask either."""
    code = (
        "import sys, backend.search, backend.insights.log, backend.insights.export, "
        "backend.quality.shopper; print(sorted({m.split('.')[0] for m in sys.modules}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert not set(ast.literal_eval(done.stdout)) & set(WEB_ONLY), done.stdout


def test_torch_only_in_the_model_and_fine_tuning():
    allowed = (
        "backend.model.backbones",
        "backend.model.export",
        "backend.model.lite0",
        "backend.model.torch_runtime",
        "backend.quality.finetune",
    )
    for name, imported in OUTSIDE.items():
        if {"torch", "torchvision"} & set(imported):
            assert name.startswith(allowed), f"{name} imports torch"


def test_errors_module_imports_nothing_of_the_app_nor_the_web():
    assert not GRAPH["backend.errors"]
    assert not set(OUTSIDE["backend.errors"]) & set(WEB_ONLY)


def cycle_in(graph: Mapping[str, Iterable[str]]) -> list[str]:
    """Depth-first search for a back edge: the first cycle found, or []."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(name: str) -> list[str]:
        state[name] = 1
        path.append(name)
        for other in sorted(graph.get(name, ())):
            if state.get(other) == 1:
                return path[path.index(other) :] + [other]
            if other not in state and (cycle := visit(other)):
                return cycle
        path.pop()
        state[name] = 2
        return []

    for name in sorted(graph):
        if name not in state and (cycle := visit(name)):
            return cycle
    return []


def test_no_import_cycle():
    cycle = cycle_in(GRAPH)
    assert not cycle, "import cycle: " + " -> ".join(cycle)


# The checks themselves: each catches what it is for.


def write_tree(root: Path, files: Mapping[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_the_layer_check_catches_an_upward_import_inside_a_function(tmp_path):
    app = write_tree(
        tmp_path / "app",
        {
            "__init__.py": "",
            "images/__init__.py": "",
            "images/decode.py": "def f():\n    from ..quality.metrics import p_at_k\n",
            "quality/__init__.py": "",
            "quality/metrics.py": "from ..images import decode\n",
        },
    )
    graph, _ = read_tree(app)
    layers = (("images",), ("quality",), ("app",))
    assert layering_errors(graph, layers) == [
        "app.images.decode imports app.quality.metrics (up: images -> quality)"
    ]
    # Without the upward import the same tree passes.
    (app / "images/decode.py").write_text("def f():\n    pass\n")
    assert layering_errors(read_tree(app)[0], layers) == []


def test_the_layer_check_catches_sideways_imports_and_unlisted_packages():
    graph = {
        "backend.web.api": {"backend.cli", "backend.search"},
        "backend.cli": set(),
        "backend.search": set(),
        "backend.newcomer": set(),
    }
    layers = (("search",), ("web", "cli"))
    assert layering_errors(graph, layers) == [
        "backend.newcomer: package 'newcomer' is in no layer",
        "backend.web.api imports backend.cli (sideways: web -> cli)",
    ]


def test_the_flask_check_follows_imports_to_the_web(tmp_path):
    app = write_tree(
        tmp_path / "backend",
        {
            "__init__.py": "",
            "options.py": "from .extensions import get_service\n",
            "extensions.py": "import json\n\ndef f():\n    from flask import current_app\n",
            "catalog/__init__.py": "from ..options import x\n",
        },
    )
    graph, outside = read_tree(app)
    assert reaches_web(graph, outside, ("catalog", "options")) == [
        "backend.catalog -> backend.options -> backend.extensions -> flask",
        "backend.options -> backend.extensions -> flask",
    ]
    assert reaches_web(graph, outside, ("atomic",)) == []


def test_the_cycle_check_finds_a_cycle():
    assert cycle_in({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert cycle_in({"a": {"b"}, "b": set()}) == []


# The module map of docs/development.md: its packages, in the order of LAYERS.

MAP_ROW = re.compile(r"^\| *(\d+) *\| *`backend/([\w/.]+)` *\|")


def documented_layers(markdown: str) -> tuple[tuple[str, ...], ...]:
    """The package table of the module map: `| layer | package | owns | must not import |`."""
    section = markdown.split("\n## Module map\n", 1)[1].split("\n## ", 1)[0]
    layers: dict[int, list[str]] = {}
    for line in section.splitlines():
        if match := MAP_ROW.match(line):
            name = match.group(2).removesuffix("/").removesuffix(".py")
            layers.setdefault(int(match.group(1)), []).append(
                "backend" if name == "__init__" else name
            )
    return tuple(tuple(layers[number]) for number in sorted(layers))


def test_the_docs_list_the_layers_in_order():
    markdown = (ROOT / "docs" / "development.md").read_text()
    assert documented_layers(markdown) == LAYERS


def test_the_docs_give_each_module_under_its_own_package():
    """Each module's line sits under its package's heading, and each package has one."""
    section = (ROOT / "docs" / "development.md").read_text().split("\n## Module map\n", 1)[1]
    heading = None
    misplaced = []
    for line in section.split("\n## ", 1)[0].splitlines():
        if found := re.match(r"^`backend/(\w+)/`", line):
            heading = found.group(1)
            continue
        found = re.match(r"^- `backend/(\w+)/[\w/]+\.py`", line)
        if found and found.group(1) != heading:
            misplaced.append(line[:60])
    assert not misplaced
