"""docs/architecture.md says what exists: the package dependencies it states are the real ones,
and no doc points outside the repository."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ALLOWED = {
    "models": set(),
    "traces": {"models"},
    "optimizer": {"models", "traces"},
    "sim": {"models", "traces", "optimizer"},
    "advisor": {"models", "traces", "optimizer", "sim"},
    "events": {"models"},
    "live": {"models", "traces", "optimizer", "events", "config"},
    "ui": {"models", "traces", "optimizer", "sim", "advisor", "events", "live", "config"},
    "gateway": {"models", "events", "live"},
}
"""What each package may import from heddle, as docs/architecture.md states it."""


def _heddle_imports(package: str) -> set[str]:
    found = set()
    for path in (ROOT / "heddle" / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                parts = node.module.split(".")
                if parts[0] == "heddle":
                    found |= {parts[1]} if len(parts) > 1 else {a.name for a in node.names}
            elif isinstance(node, ast.Import):
                found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("heddle.")}
    return found - {package}


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_packages_import_only_what_the_architecture_allows(package):
    assert _heddle_imports(package) <= ALLOWED[package], sorted(_heddle_imports(package) - ALLOWED[package])


def test_architecture_doc_states_these_rules():
    text = " ".join((ROOT / "docs" / "architecture.md").read_text(encoding="utf-8").split())
    assert "`models` <- `traces` <- `optimizer` <- `sim` <- `advisor`" in text
    assert "`events` may use `models` only" in text
    assert "`live` may use `models`, `traces`, `optimizer`, `events` and the settings module" in text
    assert "`ui` may use all of them but `cli`" in text
    assert "`gateway` may use `models`, `events` and `live`" in text


def test_docs_never_point_outside_the_repository():
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"\.\./shared|/work/shared|shared/seeds", text), path.name
