"""The documentation stays true: settings, module map, links, and the Python API example runs."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from backend.config import ENV_VARS
from backend.config.server import SERVER_VARS
from backend.config.tables import table_under, tables
from tests.support.catalogs import draw_image, write_catalog

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def _is_environ(node: ast.expr) -> bool:
    """`os.environ` or a bare `environ`."""
    return (isinstance(node, ast.Attribute) and node.attr == "environ") or (
        isinstance(node, ast.Name) and node.id == "environ"
    )


def _literal(node: ast.expr) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def environ_names(path: Path) -> set[str]:
    """String literals read from the environment: environ.get/setdefault/pop(...), environ[...],
    and `... in environ`."""
    names: set[str | None] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
            if node.func.attr in ("get", "setdefault", "pop") and _is_environ(node.func.value):
                names.add(_literal(node.args[0]))
        elif isinstance(node, ast.Subscript) and _is_environ(node.value):
            names.add(_literal(node.slice))
        elif isinstance(node, ast.Compare) and any(_is_environ(c) for c in node.comparators):
            names.add(_literal(node.left))
    return {name for name in names if name}


def table_names(markdown: str) -> set[str]:
    """The backticked names in the first column of every table."""
    names: set[str] = set()
    for line in markdown.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            first = line.split("|")[1]
            names.update(re.findall(r"`([A-Z][A-Z0-9_]*)`", first))
    return names


def python_block_under(markdown: str, heading: str) -> str:
    section = markdown.split(f"\n{heading}\n", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


def test_configuration_lists_exactly_the_settings_the_code_reads():
    sources = [ROOT / "gunicorn.conf.py", *sorted((ROOT / "backend").rglob("*.py"))]
    read = set(ENV_VARS) | set(SERVER_VARS)
    for path in sources:
        read |= environ_names(path)
    documented = table_names((DOCS / "configuration.md").read_text())
    missing, extra = sorted(read - documented), sorted(documented - read)
    assert not missing and not extra, f"undocumented: {missing}; documented but not read: {extra}"


def test_the_settings_tables_are_written_from_the_declarations():
    """Each setting's default and doc line live in its declaration: the file must hold exactly
    the tables they make (`python -m backend.config --write docs/configuration.md`)."""
    markdown = (DOCS / "configuration.md").read_text()
    for heading, table in tables().items():
        written = table_under(markdown, heading)
        stale = sorted(set(table.splitlines()) ^ set(written.splitlines()))
        assert written == table, f"{heading}: rows differing from the declarations: {stale}"


def environ_reads(path: Path) -> set[str]:
    """Names read from os.environ (get, [] or in), not those the server sets for its workers."""
    names: set[str | None] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
            if node.func.attr in ("get", "pop") and _is_environ(node.func.value):
                names.add(_literal(node.args[0]))
        elif isinstance(node, ast.Subscript) and _is_environ(node.value):
            if isinstance(node.ctx, ast.Load):
                names.add(_literal(node.slice))
        elif isinstance(node, ast.Compare) and any(_is_environ(c) for c in node.comparators):
            names.add(_literal(node.left))
    return {name for name in names if name}


def test_declared_settings_are_read_only_through_their_declarations():
    """Parsed and bounded in one place: no module reads a declared variable from os.environ."""
    declared = set(ENV_VARS) | set(SERVER_VARS)
    config = ROOT / "backend" / "config"
    sources = [ROOT / "gunicorn.conf.py", *sorted((ROOT / "backend").rglob("*.py"))]
    raw = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in sources
        if not path.is_relative_to(config)
        for name in environ_reads(path) & declared
    }
    assert not raw, f"read from os.environ, not through backend.config: {sorted(raw)}"


def test_python_api_example_runs(tmp_path, monkeypatch):
    """The example shows `search_url` in a comment (it would need the network), so it runs as is."""
    catalog = write_catalog(tmp_path / "shop")
    monkeypatch.setenv("CATALOG_PATH", str(catalog))
    monkeypatch.setenv("INDEX_PATH", str(tmp_path / "index" / "index.csv"))
    monkeypatch.setenv("CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MODEL", "resnet18")
    monkeypatch.setenv("MODEL_WEIGHTS", "random")
    monkeypatch.setenv("SIMILARITY_THRESHOLD", "0")
    monkeypatch.chdir(tmp_path)
    draw_image("red", "circle").save(tmp_path / "photo.jpg")
    draw_image("yellow", "square").save(tmp_path / "oat.jpg")
    code = python_block_under((DOCS / "development.md").read_text(), "## Python API")
    exec(compile(code, "docs/development.md", "exec"), {})


def test_readme_is_short_and_starts_with_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    first_block = re.search(r"```\w*\n(.*?)```", readme, re.DOTALL).group(1)
    assert "./scripts/demo.sh" in first_block
    assert "./scripts/test.sh" in first_block
    assert "scripts/test.sh" in (ROOT / ".ci" / "run").read_text()


def test_module_map_matches_the_tree():
    mentioned = set(re.findall(r"backend/[\w/]+\.py", (DOCS / "development.md").read_text()))
    tree = {path.relative_to(ROOT).as_posix() for path in (ROOT / "backend").rglob("*.py")}
    assert not mentioned - tree, f"not in the tree: {sorted(mentioned - tree)}"
    assert not tree - mentioned, f"missing from the module map: {sorted(tree - mentioned)}"


def test_doc_links_resolve():
    broken = []
    for page in [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if target.startswith(("http://", "https://", "#")):
                continue
            if not (page.parent / target.split("#")[0]).exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, f"broken links: {broken}"
