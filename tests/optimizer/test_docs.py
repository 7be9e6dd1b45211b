"""docs/optimizer.md executes: its Python example runs and its commands succeed."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from typer.testing import CliRunner

from heddle.cli.main import app

DOC = Path(__file__).resolve().parents[2] / "docs" / "optimizer.md"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(), flags=re.DOTALL)


def test_the_python_example_runs(capsys):
    for block in _blocks("python"):
        exec(compile(block, str(DOC), "exec"), {})  # noqa: S102 - running the docs is the test
    assert "contract-summary" in capsys.readouterr().out


def test_the_heddle_place_commands_succeed():
    commands = [line.split("#")[0].strip() for block in _blocks("bash") for line in block.splitlines()]
    place_commands = [c for c in commands if c.startswith("uv run heddle place")]
    assert place_commands
    for command in place_commands:
        args = shlex.split(command)[3:]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, (command, result.output)
