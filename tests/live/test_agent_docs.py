"""The examples in docs/live.md's "Wire protocol" and "The agent" sections run as written."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import typer

from heddle.cli.main import app

DOC = Path(__file__).resolve().parents[2] / "docs" / "live.md"


def _section(title: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:] if end == -1 else text[start:end]


def test_protocol_example_runs_and_prints_what_it_says(capsys):
    blocks = re.findall(r"```python\n(.*?)```", _section("Wire protocol"), re.DOTALL)
    assert blocks, "the Wire protocol section lost its example"
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), {"__name__": "__docs__"})  # noqa: S102
    assert capsys.readouterr().out.split("\n")[:2] == ["3 150.0", "v"]


def test_documented_agent_command_parses(monkeypatch, tmp_path):
    monkeypatch.setenv("HEDDLE_CONFIG", str(tmp_path / "none.yaml"))
    commands = re.findall(r"```bash\n(.*?)```", _section("The agent"), re.DOTALL)
    assert commands, "the agent section lost its command"
    for line in commands:
        args = shlex.split(line)
        assert args[:2] == ["heddle", "agent"]
        # Parse the flags with the real command (without starting an agent).
        ctx = typer.main.get_command(app).make_context("heddle", args[1:], resilient_parsing=False)
        sub = ctx.command.get_command(ctx, "agent")
        params = sub.make_context("agent", args[2:]).params
        assert params["node_id"] == "studio" and params["slots"] == 4
