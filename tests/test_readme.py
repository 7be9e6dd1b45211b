"""The README's commands work as written (STYLE 12: docs execute).

Each `uv run heddle ...` line of the README runs through the real CLI in a scratch working
directory, so what a newcomer copies is what CI checks. `uv run pytest` is this very run.
"""

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from heddle.cli.main import app

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_commands() -> list[list[str]]:
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)
    lines = [line.split(" #")[0].strip() for block in blocks for line in block.splitlines()]
    return [shlex.split(line)[3:] for line in lines if line.startswith("uv run heddle ")]


def test_readme_gives_the_two_quick_start_commands():
    text = README.read_text(encoding="utf-8")
    assert "uv run heddle sim" in text and "uv run pytest" in text
    assert ["sim"] in readme_commands()


@pytest.mark.parametrize("args", readme_commands(), ids=lambda a: " ".join(a)[:60])
def test_readme_command_runs(args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # commands that write reports write them here
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert result.output.strip(), "a README command printed nothing"
