"""The `heddle` script builds only the command its first argument names: same behaviour as all."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from heddle.cli.main import app, app_for


def _run(target: typer.Typer, args: list[str]):
    return CliRunner().invoke(target, args, env={"COLUMNS": "200"})


def _same(args: list[str]) -> None:
    whole, one = _run(app, args), _run(app_for(args), args)
    assert (one.exit_code, one.stdout, one.stderr) == (whole.exit_code, whole.stdout, whole.stderr), args


def test_every_command_and_group_runs_alone_as_within_the_whole_app():
    names = [c.name for c in app.registered_commands] + [g.name for g in app.registered_groups]
    assert {"sim", "catalog", "up", "join", "fleet", "twin"} <= set(names)
    for name in names:
        assert app_for([name, "--help"]) is not app, name
        _same([name, "--help"])
    for sub in ("list", "show"):
        _same(["catalog", sub, "--help"])


def test_runs_and_errors_match_the_whole_app():
    _same(["catalog", "list", "--kind", "offer"])
    _same(["catalog", "list", "--kind", "gpu"])  # a bad choice: click's usage error, exit 2
    _same(["catalog", "show", "nope"])  # heddle's one-line error, exit 2
    _same(["catalog", "lst"])  # a misspelt subcommand: click's suggestion
    _same(["catalog"])  # a group alone: its help


def test_the_whole_app_runs_when_no_single_command_is_named():
    for args in (["sim-it"], ["--install-completion"]):
        assert app_for(args) is app
    _same(["sim-it"])  # a misspelt command: the suggestion needs every name


def test_the_top_level_help_is_the_whole_apps_help():
    # `heddle --help` and bare `heddle` print from an app whose commands have no parameters
    # (main._help_only: typer would build ~80 commands' options only to list their names)
    for args in ([], ["--help"]):
        assert app_for(args) is not app
        _same(args)
    assert "Usage: heddle" in _run(app_for([]), []).output


def test_the_mount_table_names_what_each_module_mounts():
    from heddle.cli.main import MOUNTS

    mounted = [c.name for c in app.registered_commands] + [g.name for g in app.registered_groups]
    listed = [name for _, names in MOUNTS for name in names]
    assert len(set(listed)) == len(listed)
    # a listed name no module mounts would leave `heddle NAME` with no command at all
    assert sorted(set(listed) - set(mounted)) == [], "remove it from MOUNTS in heddle/cli/main.py"
    # an unlisted one still runs (through the whole app), only slower to start
    assert sorted(set(mounted) - set(listed)) == [], "add it to its module's entry in MOUNTS in heddle/cli/main.py"
