"""docs/twin.md executes: its Python example runs and its `heddle sim` commands succeed."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from typer.testing import CliRunner

from heddle.cli.main import app

DOC = Path(__file__).resolve().parents[2] / "docs" / "twin.md"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(), flags=re.DOTALL)


def test_the_python_example_runs(capsys) -> None:
    for block in _blocks("python"):
        exec(compile(block, str(DOC), "exec"), {})  # noqa: S102 - the doc example is the test
    out = capsys.readouterr().out
    assert "small" in out and "demo" in out


def test_the_heddle_sim_commands_succeed(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # --out writes relative to the working directory
    commands = [line.split("#")[0].strip() for block in _blocks("bash") for line in block.splitlines()]
    sim_commands = [c for c in commands if c.startswith("uv run heddle sim")]
    assert len(sim_commands) >= 4
    for command in sim_commands:
        result = CliRunner(env={"COLUMNS": "200"}).invoke(app, shlex.split(command)[3:])
        assert result.exit_code == 0, (command, result.output)
        assert "privacy" in result.output
    assert (tmp_path / "sim-out" / "metrics.json").exists()


def test_the_scenario_example_is_valid(tmp_path) -> None:
    from heddle.models.fleet import load_fleet, shipped_fleet_path
    from heddle.sim import load_scenario

    yaml_block = _blocks("yaml")[0]
    path = tmp_path / "example.yaml"
    path.write_text(yaml_block)
    load_scenario(path).check_against(load_fleet(shipped_fleet_path("demo")))
