"""docs/traces.md executes: every `heddle` command and Python block in it runs as written."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from heddle.cli.main import app
from tests.traces.conftest import SHARED_TRACES

DOC = Path(__file__).resolve().parents[2] / "docs" / "traces.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.DOTALL)


def test_doc_has_examples():
    assert len(_blocks("bash")) >= 3 and _blocks("python")


def test_every_documented_command_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    commands = [line for block in _blocks("bash") for line in block.splitlines()
                if line.startswith("heddle ")]
    assert commands
    for command in commands:
        # the docs use the repository-relative data path; tests run from a temp dir
        command = command.replace("tests/data/azure/", f"{SHARED_TRACES}/")
        result = runner.invoke(app, shlex.split(command)[1:], catch_exceptions=False)
        assert result.exit_code == 0, f"{command}\n{result.output}"


def test_every_python_block_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    for block in _blocks("python"):
        exec(compile(block, str(DOC), "exec"), {})  # noqa: S102 - our own documentation
