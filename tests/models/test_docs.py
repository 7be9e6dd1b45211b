"""The models engineer's docs execute: CLI commands run, YAML examples validate, Python runs."""

import re
import shlex
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from heddle.cli.main import app
from heddle.config import Settings
from heddle.models import parse_fleet, parse_workload

DOCS = Path(__file__).resolve().parents[2] / "docs"
PAGES = ["getting-started.md", "models.md", "performance-model.md", "configuration.md"]
NOT_MINE = {"sim"}  # commands owned and tested elsewhere


def blocks(page: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", (DOCS / page).read_text(), flags=re.DOTALL)


def heddle_commands():
    for page in PAGES:
        for block in blocks(page, "bash"):
            for line in block.splitlines():
                line = line.split(" #")[0].strip()
                if line.startswith("uv run heddle "):
                    args = shlex.split(line)[3:]
                    if args[0] not in NOT_MINE:
                        yield pytest.param(args, id=f"{page}:{' '.join(args)[:50]}")


@pytest.mark.parametrize("args", list(heddle_commands()))
def test_doc_command_runs(args, tmp_path, monkeypatch):
    # getting-started.md runs commands on models.md's workload saved as my-workload.yaml
    (tmp_path / "my-workload.yaml").write_text(next(t for t in blocks("models.md", "yaml") if "pipelines:" in t))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, args, env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output


def test_doc_yaml_examples_validate():
    seen = set()
    for page in PAGES:
        for text in blocks(page, "yaml"):
            data = yaml.safe_load(text)
            if "nodes" in data:
                assert parse_fleet(text, page).nodes
                seen.add("fleet")
            elif {"tasks", "pipelines", "councils"} & set(data):
                assert parse_workload(text, page).tasks
                seen.add("workload")
            else:
                Settings.model_validate(data)
                seen.add("config")
    assert seen == {"fleet", "workload", "config"}


@pytest.mark.parametrize("page", PAGES)
def test_doc_python_examples_run(page, tmp_path, monkeypatch):
    workload_yaml = next(t for t in blocks("models.md", "yaml") if "pipelines:" in t)
    (tmp_path / "my-workload.yaml").write_text(workload_yaml)
    monkeypatch.chdir(tmp_path)
    for code in blocks(page, "python"):
        exec(compile(code, page, "exec"), {})  # noqa: S102 - running our own docs is the point
