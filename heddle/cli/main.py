"""The `heddle` command: one typer app that mounts each package's commands.

The command modules import only typer and rich at the top; each command imports the packages
it needs when it runs, so `heddle --help` starts about as fast as typer and rich themselves.
`main` (the `heddle` script) goes further for a command line naming one command or group:
it imports only that command's module and runs an app holding only that command. typer turns
every command's signature into click objects before it runs any, and importing and building
all ~40 of heddle's costs ~0.04 s, more than half of what typer itself takes to import.
"""

from __future__ import annotations

import copy
import importlib
import sys
from typing import Any

import typer

from heddle.cli.common import guarded, install_help_format

__all__ = ["app", "app_for", "main"]  # noqa: F822 -- `app` comes from __getattr__, built on first use

install_help_format()

_SETTINGS: dict[str, Any] = {
    "name": "heddle",
    "help": "Schedule AI work across an ad-hoc fleet, simulate it, and advise what to buy.",
    "no_args_is_help": True,
    "pretty_exceptions_show_locals": False,
    "rich_markup_mode": None,  # plain help: typer's rich help imports markdown and pygments (~0.3 s)
}

MOUNTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("catalog", ("catalog",)),
    ("models_cmd", ("models",)),
    ("trace", ("trace",)),
    ("events", ("events",)),
    ("sim", ("sim",)),
    ("check", ("check",)),
    ("place", ("place",)),
    ("advise", ("advise",)),
    ("agent", ("agent",)),
    ("sweep", ("sweep",)),
    ("ui", ("ui",)),
    ("gateway", ("gateway",)),
    ("live", ("up", "scheduler", "submit", "status", "drain", "cancel")),
    ("cluster", ("join", "join-code", "clusters", "nodes", "users")),
    ("twin", ("fleet", "twin")),
)
"""Each module of heddle.cli and the top-level commands and groups it mounts, in help order.
A module mounts them with its `register(app)`, as its group `app`, or as the function named
like the command. tests/cli/test_dispatch.py checks these names are what the modules mount."""


def _mount(target: typer.Typer, module_name: str, names: tuple[str, ...]) -> None:
    module = importlib.import_module(f"heddle.cli.{module_name}")
    if hasattr(module, "register"):
        module.register(target)
    elif isinstance(getattr(module, "app", None), typer.Typer):
        target.add_typer(module.app, name=names[0])
    else:
        target.command(names[0])(getattr(module, names[0]))
    _guard_all(target)


def _guard_all(group: typer.Typer, prefix: str = "") -> None:
    """Run every command of `group` (and its sub-groups) under `common.guarded`, whether or not
    its module did: an error no command foresaw (a binary file where YAML was expected, a
    network failure) ends in one line and an exit code, never a traceback. Idempotent."""
    for command in group.registered_commands:
        if command.callback is not None and not getattr(command.callback, "_heddle_guarded", False):
            name = command.name or command.callback.__name__.replace("_", "-")
            command.callback = guarded(f"{prefix}{name}")(command.callback)
    for sub in group.registered_groups:
        if sub.typer_instance is not None:
            _guard_all(sub.typer_instance, f"{prefix}{sub.name} " if sub.name else prefix)


def _whole() -> typer.Typer:
    whole = typer.Typer(**_SETTINGS)
    for module_name, names in MOUNTS:
        _mount(whole, module_name, names)
    return whole


def __getattr__(name: str) -> Any:  # `app` is built on first use: `main` may never need it
    if name == "app":
        globals()["app"] = built = _whole()
        return built
    raise AttributeError(f"module 'heddle.cli.main' has no attribute {name!r}")


def _stand_in(command: Any) -> Any:
    """A copy of typer's CommandInfo `command` whose callback takes no parameters but has the
    original's name and docstring (no __wrapped__: typer would read the original's signature)."""
    original = command.callback

    def stand_in() -> None:
        raise AssertionError("the help-only app runs no command")

    for attr in ("__name__", "__qualname__", "__module__", "__doc__"):
        setattr(stand_in, attr, getattr(original, attr))
    listed = copy.copy(command)
    listed.callback = stand_in
    return listed


def _help_only(source: typer.Typer) -> typer.Typer:
    """`source` for printing its help: the same commands, groups, names and help text, with
    every command's parameters left out. The top-level help lists only names and one-line
    help, yet typer builds each command's parameters from its signature first (~0.04 s for
    heddle's ~80 commands, a third of what `heddle --help` takes). tests/cli/test_help.py
    holds this help equal to the whole app's."""
    listing = copy.copy(source)
    listing.registered_commands = [_stand_in(c) for c in source.registered_commands]
    listing.registered_groups = []
    for group in source.registered_groups:
        listed = copy.copy(group)
        listed.typer_instance = _help_only(group.typer_instance)
        listing.registered_groups.append(listed)
    return listing


def _group() -> None:
    """Makes typer build a group around a lone command, as it does around all of `app`'s."""


def app_for(args: list[str]) -> typer.Typer:
    """The app to run `heddle ARGS` with: only the command or group `args[0]` names, the whole
    `app` without its commands' parameters for the top-level help (`--help`, no arguments), or
    the whole `app` for anything else (a misspelt command, `--install-completion`)."""
    name = args[0] if args else None
    module_name = next((module for module, names in MOUNTS if name in names), None)
    if module_name is None:
        whole = sys.modules[__name__].app
        return _help_only(whole) if args in ([], ["--help"]) else whole
    part = typer.Typer()
    _mount(part, module_name, dict(MOUNTS)[module_name])
    one = typer.Typer(**_SETTINGS, callback=_group)
    one.registered_groups = [g for g in part.registered_groups if g.name == name]
    one.registered_commands = [c for c in part.registered_commands if c.name == name]
    return one


def main() -> None:
    """The `heddle` script."""
    app_for(sys.argv[1:])()


if __name__ == "__main__":
    main()
