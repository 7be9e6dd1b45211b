"""`heddle --help` stays fast: building the CLI and its help imports none of the heavy packages.

Checked by module, not by clock (timings are noisy on a shared machine): a fresh interpreter
imports `heddle.cli.main`, prints help for the app and for every command, and reports what is
in `sys.modules`. benchmarks/bench_cli.py measures the time itself.
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = (
    "ortools", "pandas", "numpy", "scipy", "pyarrow", "matplotlib", "simpy", "yaml", "nats",
    "fastapi", "uvicorn", "ray", "anthropic", "zeroconf", "psutil", "httpx",
    "heddle.optimizer", "heddle.sim", "heddle.traces", "heddle.advisor", "heddle.live",
    "heddle.events", "heddle.models", "heddle.config",
    "rich.table", "rich.progress", "rich.live", "rich.markdown", "pygments", "asyncio", "pydantic",
)
"""Packages no command needs before it runs: each command imports its own when it runs."""

PROBE = """
import contextlib, io, json, sys
import typer.main
import heddle.cli.main as cli

def paths(group, prefix=()):
    for name, cmd in getattr(group, "commands", {}).items():
        yield (*prefix, name)
        yield from paths(cmd, (*prefix, name))

def help_of(path):
    with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.suppress(SystemExit):
        typer.main.get_command(cli.app).main([*path, "--help"], prog_name="heddle")
    return out.getvalue()

after_import = sorted(sys.modules)
top_help = help_of(())
after_top_help = sorted(sys.modules)
helps = {" ".join(p): help_of(p) for p in paths(typer.main.get_command(cli.app))}
print(json.dumps({"import": after_import, "top_help": after_top_help, "helps": helps,
                  "all": sorted(sys.modules), "top_text": top_help}))
"""


def _probe() -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _heavy(modules: list[str], also: tuple[str, ...] = ()) -> list[str]:
    return [m for m in modules if any(m == h or m.startswith(h + ".") for h in (*HEAVY, *also))]


def test_help_imports_nothing_heavy():
    probe = _probe()
    assert "Usage: heddle" in probe["top_text"] and "sim" in probe["top_text"]
    assert len(probe["helps"]) > 20 and all("Usage:" in text for text in probe["helps"].values())
    # `import heddle.cli.main` and `heddle --help`: not even rich's console
    assert _heavy(probe["import"], ("rich.console", "logging")) == []
    assert _heavy(probe["top_help"], ("rich.console",)) == []
    # every command's --help
    assert _heavy(probe["all"]) == []


def test_the_typer_hooks_patched_for_start_up_are_the_ones_this_typer_has():
    # cli/common.install_help_format replaces typer's private get_runtime_param (and calls
    # typer._coercion.build_runtime_param on first value): measured ~0.2 s of `heddle sim --help`
    # (pydantic TypeAdapters for unset options). Pinned to the typer it was written against: on
    # an upgrade, re-read typer.core / typer._coercion, then move this pin.
    from importlib.metadata import version

    from typer import _coercion, core

    from heddle.cli.common import TYPER_CHECKED

    assert version("typer").startswith(TYPER_CHECKED), "typer upgraded: re-check the hooks in heddle/cli/common.py"
    assert callable(core._TyperParameter.get_runtime_param) and callable(_coercion.build_runtime_param)
    assert callable(core.TyperArgument._usage_display_name)  # the usage line's argument names


OTHER_TYPER_PROBE = """
import contextlib, io, json, sys
import typer
from typer import core
typer.__version__ = "0.30.0"  # a release the coercion hook was not checked against
own = core._TyperParameter.get_runtime_param
sys.argv = ["heddle", "catalog", "show", "m4-max-40"]
from heddle.cli.main import main
with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.suppress(SystemExit):
    main()
print(json.dumps({"own": core._TyperParameter.get_runtime_param is own, "out": out.getvalue()}))
"""


def test_another_typer_keeps_its_own_coercion_and_commands_still_run():
    # the hook reaches into typer's private parameter objects: under a typer it was not checked
    # against (pyproject allows any >= 0.12) it must not be installed, and nothing breaks
    done = subprocess.run([sys.executable, "-c", OTHER_TYPER_PROBE], capture_output=True, text=True,
                          check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    probe = json.loads(done.stdout)
    assert probe["own"] and "m4-max-40" in probe["out"]


LIST_PROBE = """
import contextlib, io, json, sys
sys.argv = ["heddle", "catalog", "list"]
from heddle.cli.main import main
with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.suppress(SystemExit):
    main()
print(json.dumps({"modules": sorted(sys.modules), "out": out.getvalue()}))
"""


def test_catalog_list_reads_the_catalog_without_pydantic_yaml_or_numpy():
    # the shipped catalog comes from its snapshot (heddle.models.catalog_snapshot), the unset
    # --kind needs no typer coercion, no other command's click objects are built, and output
    # that is not a terminal is drawn without rich's console (heddle.cli.tables)
    done = subprocess.run([sys.executable, "-c", LIST_PROBE], capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    probe = json.loads(done.stdout)
    assert "m4-max-40" in probe["out"] and "claude-sonnet-4.6" in probe["out"] and "gpt-oss-120b" in probe["out"]
    also = ("heddle.models.catalog_yaml", "rich.console", "rich.text")
    assert [m for m in _heavy(probe["modules"], also) if not m.startswith("heddle.models")] == []
    assert "heddle.models.catalog_yaml" not in probe["modules"]  # the YAML path: pydantic schemas


def _commands(group):
    for cmd in getattr(group, "commands", {}).values():
        yield cmd
        yield from _commands(cmd)


def test_a_str_or_bool_value_skips_typers_coercion_only_where_typer_would_return_it_unchanged():
    import click
    import typer.main
    from typer._coercion import build_runtime_param

    from heddle.cli.main import app

    samples = {str: ["m4-max-40", " two  words ", "", "ünïcode", "--x", "1e3", "None"], bool: [True, False]}
    checked = 0
    for cmd in _commands(typer.main.get_command(app)):
        ctx = click.Context(cmd)
        for param in cmd.params:
            desc = param.type_descriptor
            if desc.annotation not in samples or param.multiple:
                continue
            typers = build_runtime_param(desc)
            for value in samples[desc.annotation]:
                ours = param.get_runtime_param().coerce(value, param=param, ctx=ctx)
                assert ours == typers.coerce(value, param=param, ctx=ctx) and type(ours) is desc.annotation
                checked += 1
    assert checked > 300  # every str option and flag of every command


SHOW_PROBE = """
import contextlib, io, json, sys
sys.argv = ["heddle", "catalog", "show", "m4-max-40", "--json"]
from heddle.cli.main import main
with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.suppress(SystemExit):
    main()
print(json.dumps({"pydantic": "pydantic" in sys.modules, "out": json.loads(out.getvalue())}))
"""


def test_catalog_show_takes_its_id_without_pydantic():
    done = subprocess.run([sys.executable, "-c", SHOW_PROBE], capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    probe = json.loads(done.stdout)
    assert probe["out"]["id"] == "m4-max-40" and probe["pydantic"] is False
