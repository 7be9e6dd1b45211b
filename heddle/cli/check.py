"""`heddle check`: the preflight report on its own; `report` prints it for the other commands.

Every command that runs work on a fleet (`sim`, `place`, `advise`) first runs the preflight
(`heddle.models.preflight`): warnings go to stderr, one per problem, with a count and the fix;
an error (a model the catalog does not know) stops the command with exit code 2. `heddle
check` prints the same report and exits 1 if it found an error (`--strict`: any finding).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from heddle.cli.common import EXIT_CHECK_FAILED, EXIT_INPUT, console, guarded

if TYPE_CHECKING:
    import pandas as pd

    from heddle.models.fleet_types import Fleet
    from heddle.models.preflight import Finding


def findings_for(fleet: Fleet, work: pd.DataFrame) -> list[Finding]:
    """The preflight of `work` on `fleet` (the twin's default: unbudgeted work never bursts)."""
    from heddle.models.preflight import preflight

    return preflight(fleet, work)


def report(command: str, findings: list[Finding], *, stop_on_error: bool = True) -> None:
    """Print findings to stderr; an error stops `command` with exit code 2."""
    if not findings:
        return
    from rich.markup import escape

    err = console(stderr=True)
    for f in findings:
        colour = "red" if f.level == "error" else "yellow"
        err.print(f"[{colour}]heddle {command}: {f.level}:[/{colour}] {escape(f.message)} [dim]Fix: {escape(f.fix)}[/dim]",
                  highlight=False, soft_wrap=True)
    if stop_on_error and any(f.level == "error" for f in findings):
        raise typer.Exit(EXIT_INPUT)


def read_work(source: Path | list) -> pd.DataFrame:
    """The work's rows as a frame (the preflight reads only its columns): a trace file's, or
    those of the Tasks of a workload YAML."""
    from heddle.models.preflight import work_frame
    from heddle.traces import read_trace

    return work_frame(source) if isinstance(source, list) else read_trace(source).df


@guarded("check")
def check(
    fleet: Annotated[str | None, typer.Option("--fleet", "-f", metavar="FLEET",
                                              help="Fleet YAML or shipped fleet name [default: the `fleet` setting, demo].")] = None,
    trace: Annotated[str | None, typer.Option("--trace", "-t", metavar="WORK",
                                              help="Trace file, shipped trace name or workload YAML [default: the `trace` setting, demo].")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Exit 1 on warnings too, not only on errors.")] = False,
) -> None:
    """Check a fleet and a workload for problems that would make work fail silently."""
    from heddle.cli.inputs import fleet_file, work_source
    from heddle.config import load_settings
    from heddle.models.fleet import load_fleet

    settings = load_settings({"fleet": fleet, "trace": trace})
    the_fleet = load_fleet(fleet_file(settings.fleet))
    work = read_work(work_source(settings.trace))
    findings = findings_for(the_fleet, work)
    out = console()
    if not findings:
        out.print(f"fleet {the_fleet.name}, {len(work):,} tasks from {settings.trace}: no problems found")
        return
    report("check", findings, stop_on_error=False)
    errors = sum(f.level == "error" for f in findings)
    out.print(f"fleet {the_fleet.name}, {len(work):,} tasks from {settings.trace}: "
              f"{errors} error(s), {len(findings) - errors} warning(s)")
    if errors or strict:
        raise typer.Exit(EXIT_CHECK_FAILED)
