"""Helpers for the CLI tests: run `heddle` in-process and check how it fails."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from heddle.cli.main import app_for

DOCS = Path(__file__).resolve().parents[2] / "docs"
WORKLOAD = re.search(r"## Workloads.*?```yaml\n(.*?)```", (DOCS / "models.md").read_text(encoding="utf-8"),
                     flags=re.DOTALL).group(1)
"""The workload YAML docs/models.md teaches (tasks, a pipeline, a council): what people write."""


def heddle(*args: str, env: dict[str, str] | None = None):
    """Run `heddle ARGS` as the `heddle` script does (the app reduced to the command named);
    stdout and stderr stay apart."""
    return CliRunner().invoke(app_for(list(args)), list(args), env={"COLUMNS": "200", **(env or {})})


def assert_rejected(result, *needles: str) -> str:
    """Exit code 2 and one error line on stderr (naming `needles`), no traceback."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr, result.exception)
    assert "Traceback" not in result.stderr + result.stdout
    errors = [line for line in lines if ": warning:" not in line]
    assert len(errors) == 1, lines
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    return errors[0]


@pytest.fixture
def run():
    return heddle
