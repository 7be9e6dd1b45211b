"""`--help` reads like a manual: placeholders and defaults, no Python types."""

from __future__ import annotations

import re

import typer
from conftest import heddle

from heddle.cli.main import app


def _commands(group, prefix=()):
    for name, cmd in getattr(group, "commands", {}).items():
        yield (*prefix, name)
        yield from _commands(cmd, (*prefix, name))


def test_no_python_types_in_any_help():
    paths = list(_commands(typer.main.get_command(app)))
    assert ("sim",) in paths and ("check",) in paths and ("trace", "synth") in paths
    for path in [(), *paths]:
        result = heddle(*path, "--help")
        assert result.exit_code == 0, path
        assert not re.search(r"<(list|str|int|float|bool|path)[^>]*>", result.stdout), (path, result.stdout)
        assert "list[" not in result.stdout
        usage = result.stdout.splitlines()[0]  # arguments as click writes them: FILE, [JOB], FILE...
        assert "{" not in usage and usage.split("[OPTIONS]")[-1] == usage.split("[OPTIONS]")[-1].upper(), usage
        arguments = result.stdout.partition("Arguments:")[2].partition("Options:")[0]
        for line in arguments.splitlines():  # an argument is named once: "FILE  help", not "FILE FILE"
            words = line.split()
            assert len(words) < 2 or words[0] != words[1], (path, line)


def test_help_gives_defaults():
    sim = heddle("sim", "--help").stdout
    assert "default: the `fleet` setting, demo" in " ".join(sim.split())
    place = " ".join(heddle("place", "--help").stdout.split())
    assert "[default: 0.0]" in place  # --time
    predict = " ".join(heddle("models", "predict", "--help").stdout.split())
    assert "--prompt-tokens N" in predict and "default: 512" in predict
