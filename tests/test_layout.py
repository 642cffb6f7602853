"""The package stays easy to find your way in: small modules, and services that know nothing of
the API or the admin built on them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "plunk_events"
MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts)
MAX_LINES = 600


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_is_over_600_lines(path):
    assert len(path.read_text().splitlines()) <= MAX_LINES


@pytest.mark.parametrize(
    "path",
    sorted((PACKAGE / "services").glob("*.py")),
    ids=lambda p: p.name,
)
def test_services_do_not_import_the_api_or_the_admin(path):
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add("." * node.level + node.module)
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    layers = ("..api", "..admin", "plunk_events.api", "plunk_events.admin")
    assert not [name for name in imported if name.startswith(layers)]
