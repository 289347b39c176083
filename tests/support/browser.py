"""Browser tests' shared parts: Debian's chromium, a live server for an app, and axe-core."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "artifacts"
# axe-core from npm (tests/support/axe/package.json), installed by scripts/test.sh with `npm ci`.
AXE = ROOT / "tests" / "support" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.is_file(),
    reason="needs Debian's chromium at /usr/bin/chromium (scripts/test.sh installs it as root)",
)


def axe_source() -> str:
    """axe.min.js, or a skip (a failure in CI) when `npm ci` has not installed it."""
    if not AXE.is_file():
        message = "axe-core is not installed: run `npm ci --prefix tests/support/axe`"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return AXE.read_text(encoding="utf-8")


def axe_violations(page, source: str) -> list[str]:
    """Run axe-core on the page as it is now; one line per violation and element."""
    # evaluate() runs through the DevTools protocol, so the page's CSP does not block axe.
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(source + "\n;undefined")
    violations = page.evaluate(
        """async () => {
            const result = await axe.run(document, {resultTypes: ["violations"]});
            return result.violations.map((v) => ({
                id: v.id, impact: v.impact, help: v.help,
                targets: v.nodes.map((n) => n.target.join(" ") + " " + (n.failureSummary || "")),
            }));
        }"""
    )
    return [
        f"{page.url}: {v['id']} ({v['impact']}): {v['help']}: {json.dumps(v['targets'])}"
        for v in violations
    ]


def search_address(base_url: str) -> re.Pattern:
    """/search as a page shows it: bare after a POST with an error, or as the results' link
    (`?query=...&threshold=...`) once the script has made the address shareable."""
    return re.compile(re.escape(base_url) + r"/search(\?.*)?$")
