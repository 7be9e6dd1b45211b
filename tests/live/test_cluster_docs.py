"""The examples in docs/live.md's "Cluster formation and access" section run as written."""

from __future__ import annotations

import re
from pathlib import Path

import typer

from heddle.cli.cluster import register

DOC = Path(__file__).resolve().parents[2] / "docs" / "live.md"


def _section() -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index("## Cluster formation and access")
    end = text.find("\n## ", start + 1)
    return text[start:] if end == -1 else text[start:end]


def test_python_examples_print_what_they_say(capsys):
    blocks = re.findall(r"```python\n(.*?)```", _section(), re.DOTALL)
    assert len(blocks) == 2
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), {"__name__": "__docs__"})  # noqa: S102 -- our own docs
        printed = capsys.readouterr().out.splitlines()
        said = [line.split("# ")[-1].strip() for line in block.splitlines() if line.startswith("print(")]
        assert printed == said


def test_documented_commands_parse():
    app = typer.Typer()
    register(app)
    command = typer.main.get_command(app)
    blocks = re.findall(r"```bash\n(.*?)```", _section(), re.DOTALL)
    assert len(blocks) == 2
    for line in "\n".join(b.strip() for b in blocks).splitlines():
        args = line.split()[1:]
        assert line.startswith("heddle ")
        # make_context parses and validates arguments and options without running the command
        sub = command.get_command(None, args[0])
        rest = args[1:]
        while hasattr(sub, "get_command") and rest:
            sub, rest = sub.get_command(None, rest[0]), rest[1:]
        assert sub is not None, line
        sub.make_context(args[0], rest)
