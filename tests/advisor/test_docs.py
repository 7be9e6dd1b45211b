"""docs/advisor.md executes: the worked example reproduces the hand figures, and the
`heddle advise` command in it succeeds."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from typer.testing import CliRunner

from heddle.cli.main import app

DOC = Path(__file__).resolve().parents[2] / "docs" / "advisor.md"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(), flags=re.DOTALL)


def test_the_worked_example_prints_what_the_doc_says(capsys) -> None:
    (block,) = _blocks("python")
    exec(compile(block, str(DOC), "exec"), {})  # noqa: S102 - the doc example is the test
    printed = capsys.readouterr().out.strip().splitlines()
    (shown,) = _blocks("text")
    assert printed == shown.strip().splitlines()


def test_the_heddle_advise_commands_succeed(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # --out writes relative to the working directory
    commands = [line.split("#")[0].strip() for block in _blocks("bash") for line in block.splitlines()]
    advise = [c for c in commands if c.startswith("uv run heddle advise")]
    assert advise
    for command in advise:
        result = CliRunner(env={"COLUMNS": "200"}).invoke(app, shlex.split(command)[3:])
        assert result.exit_code == 0, (command, result.output)
        assert "privacy violations in all replays: 0" in " ".join(result.output.split())
    assert (tmp_path / "advice-demo" / "advice.html").exists()
