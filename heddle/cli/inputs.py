"""The files a `heddle` command reads and writes, checked before any work starts.

Every command that takes a fleet accepts a fleet YAML path or a shipped fleet name; every
command that takes work accepts a trace (a `.parquet` file, a directory of them, or a legacy
`.htr`), a shipped trace name, or the workload YAML of docs/models.md (`tasks:`,
`pipelines:`, `councils:`). A path that is missing, a directory where a file is expected, or
not text where text is expected is an InputError naming the file, before anything runs; so
is an output path that cannot be written.
"""
from __future__ import annotations

from pathlib import Path

from heddle.cli.common import InputError

__all__ = [
    "fleet_file",
    "output_dir",
    "output_file",
    "scenario_file",
    "tasks_from",
    "text_of",
    "trace_file",
    "work_source",
]

YAML_SUFFIXES = (".yaml", ".yml")
"""Suffixes that mark a YAML file (a fleet, a scenario, or a workload instead of a trace)."""
_SNIFF_BYTES = 4096
"""How much of a file is read to tell text from binary before a parser sees it."""


def _looks_like_path(arg: str) -> bool:
    return "/" in arg or "\\" in arg or Path(arg).suffix != ""


def _existing(arg: str | Path, what: str, shipped: list[str], *, dirs: bool = False) -> Path | None:
    """`arg` as an existing file (or directory, with `dirs`: a trace may be a directory of
    Parquet files); None if it can only be a shipped name; InputError otherwise."""
    path = Path(arg).expanduser()
    if path.is_dir() and not dirs:
        raise InputError(f"{arg}: is a directory; expected a {what} file")
    if path.exists():
        return path
    if _looks_like_path(str(arg)) or str(arg) not in shipped:
        names = ", ".join(shipped) or "none"
        raise InputError(f"{arg}: no such file, and not a shipped {what} (shipped: {names})")
    return None


def text_of(path: Path, what: str) -> str:
    """The UTF-8 text of `path`; a binary file is an InputError naming it."""
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory; expected a {what} file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read {what} file: {(exc.strerror or str(exc)).lower()}") from None
    if b"\x00" in data[:_SNIFF_BYTES]:
        raise InputError(f"{path}: binary data, not a {what} file (expected YAML text)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: byte {exc.start} is not UTF-8 text; expected a {what} file (YAML)") from None


def fleet_file(arg: str | Path) -> Path:
    """A fleet YAML path, or the shipped fleet named `arg`."""
    from heddle.models.fleet import shipped_fleet_path, shipped_fleets

    path = _existing(arg, "fleet", shipped_fleets())
    if path is None:
        return shipped_fleet_path(str(arg))
    text_of(path, "fleet")
    return path


def scenario_file(arg: str | Path) -> Path:
    """A scenario YAML path, or the shipped scenario named `arg`."""
    from heddle.sim.scenario import shipped_scenario_path

    shipped_dir = shipped_scenario_path().parent
    path = _existing(arg, "scenario", sorted(p.stem for p in shipped_dir.glob("*.yaml")))
    if path is None:
        return shipped_scenario_path(str(arg))
    text_of(path, "scenario")
    return path


def _workload_trace(path: Path, scratch: Path) -> Path:
    """The workload YAML at `path` written as a trace file under `scratch`."""
    from heddle.models.workload import parse_workload
    from heddle.traces import from_tasks, write_trace

    workload = parse_workload(text_of(path, "workload"), str(path))
    if not workload.tasks:
        raise InputError(f"{path}: no tasks, pipelines or councils; expected a workload to run")
    depends = {t.id: ",".join(t.depends_on) for t in workload.tasks if t.depends_on}
    trace = from_tasks(workload.tasks, depends, meta={"source": str(path)})
    target = scratch / (path.stem + ".parquet")
    write_trace(trace, target)
    return target


def work_source(arg: str | Path) -> Path | list:
    """What the twin replays for `arg`: a trace file, or the Tasks of a workload YAML (kept as
    Tasks: a task with a tier and no model has no trace row, but the twin can run it)."""
    from heddle.models.workload import parse_workload
    from heddle.traces import shipped_trace_names, shipped_trace_path

    path = _existing(arg, "trace", shipped_trace_names(), dirs=True)
    if path is None:
        return shipped_trace_path(str(arg))
    if path.suffix.lower() not in YAML_SUFFIXES or path.is_dir():
        return path
    tasks = list(parse_workload(text_of(path, "workload"), str(path)).tasks)
    if not tasks:
        raise InputError(f"{path}: no tasks, pipelines or councils; expected a workload to run")
    return tasks


def trace_file(arg: str | Path, scratch: Path) -> Path:
    """A trace file to read for `arg`: a trace path, a shipped name, or a workload YAML
    (converted into `scratch`, a directory that lives as long as the command)."""
    from heddle.traces import shipped_trace_names, shipped_trace_path

    path = _existing(arg, "trace", shipped_trace_names(), dirs=True)
    if path is None:
        return shipped_trace_path(str(arg))
    if path.suffix.lower() in YAML_SUFFIXES and not path.is_dir():
        return _workload_trace(path, scratch)
    return path


def tasks_from(arg: str | Path, fleet=None, fleet_source: str = "") -> list:
    """Tasks of a workload YAML (`tasks:`/`pipelines:`/`councils:`) or of a task list file;
    with `fleet`, every task's budget account must be one the fleet defines."""
    from heddle.models.workload import parse_workload
    from heddle.models.yamlsource import load_yaml
    from heddle.optimizer.taskfile import parse_tasks

    path = _existing(arg, "tasks", [])
    assert path is not None  # no shipped task names: _existing raised for a missing path
    text = text_of(path, "tasks")
    if isinstance(load_yaml(text, str(path), InputError).data, list):
        tasks = parse_tasks(text, str(path), fleet, fleet_source)  # the list form, deadlines absolute
    else:
        tasks = list(parse_workload(text, str(path)).tasks)
        for t in tasks:  # the same rule parse_tasks applies to the list form
            if fleet is not None and t.account and (problem := fleet.unknown_account(t.account)):
                raise InputError(f"{path}: task {t.id}: account: {problem} (fleet file {fleet_source})")
    if not tasks:
        raise InputError(f"{path}: no tasks; expected a workload (tasks:, pipelines:, councils:) or a list of tasks")
    return tasks


def output_dir(path: Path) -> Path:
    """A directory results can be written into (created later); checked before a long run."""
    if path.exists() and not path.is_dir():
        raise InputError(f"{path}: exists and is not a directory; expected a directory for the output")
    parent = next((p for p in [path, *path.parents] if p.exists()), Path("."))
    if not parent.is_dir():
        raise InputError(f"{path}: {parent} is not a directory")
    return path


def output_file(path: Path) -> Path:
    """A file path that can be written: not a directory, its parent directory exists."""
    if path.is_dir():
        raise InputError(f"{path}: is a directory; expected a file path to write")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(f"{path}: directory {parent} does not exist")
    return path
