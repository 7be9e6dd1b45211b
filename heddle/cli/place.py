"""`heddle place`: place a task file on a fleet and explain every decision.

Defaults: the shipped demo fleet and the shipped demo tasks, an idle fleet at --time 0.
`--json` prints the machine-checkable record (status, objective, bound, demands, capacities,
the cost of every feasible pair) instead of the tables.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rich.table import Table

from heddle.cli.common import LazyConsole, guarded, new_table

SHIPPED_TASKS = Path(__file__).resolve().parent.parent / "data" / "tasks" / "demo.yaml"
"""The sample task file `heddle place` uses by default (package data)."""

out = LazyConsole()  # pipes and CI get full rows, not 80 columns


def _decisions_table(placement, title: str) -> Table:
    t = new_table(title=title)
    for col in ("task", "status", "target", "start+run s", "cost parts (USD)", "reason"):
        t.add_column(col, no_wrap=col in ("task", "status", "target"))
    for d in placement.decisions:
        placed = d.status.value == "placed"
        parts = " ".join(f"{k} {v:.6f}" for k, v in d.cost_usd.items() if v)
        t.add_row(d.task_id, d.status.value, d.target or "-",
                  f"{d.est_start_s:.1f}+{d.est_seconds:.1f}" if placed else "-", parts or "0", d.reason)
    return t


def _alternatives_table(placement) -> Table:
    t = new_table(title="ruled-out alternatives (the first constraint each target breaks, or its cost)")
    t.add_column("task", no_wrap=True)
    t.add_column("target", no_wrap=True)
    t.add_column("why not")
    for d in placement.decisions:
        for target, why in d.rejected_alternatives.items():
            t.add_row(d.task_id, target, why)
    return t


@guarded("place")
def place(
    fleet: Annotated[str | None, typer.Option(
        "--fleet", "-f", metavar="FLEET",
        help="Fleet YAML or shipped fleet name [default: the `fleet` setting, demo].")] = None,
    tasks: Annotated[Path | None, typer.Option(
        "--tasks", metavar="FILE",
        help="Workload YAML (tasks:, pipelines:, councils:) or a YAML/JSON list of tasks [default: the shipped demo tasks].")] = None,
    policy: Annotated[str | None, typer.Option(
        "--policy", "-p", metavar="POLICY",
        help="optimal | fast | round-robin | least-loaded | ray-hybrid | cheapest [default: the `policy` setting, optimal].")] = None,
    time_s: Annotated[float, typer.Option("--time", metavar="SECONDS", help="The idle fleet's clock (deadlines are absolute).")] = 0.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the machine-checkable JSON record.")] = False,
) -> None:
    """Place tasks on an idle fleet and explain each decision."""
    from heddle.cli.check import findings_for, report
    from heddle.cli.inputs import fleet_file, tasks_from
    from heddle.config import load_settings
    from heddle.models import FleetState
    from heddle.models.fleet import load_fleet
    from heddle.models.preflight import work_frame
    from heddle.optimizer import place as place_tasks
    from heddle.optimizer import resolve_policy, scored
    from heddle.optimizer.engine import place_scored
    from heddle.optimizer.report import placement_report

    settings = load_settings({"fleet": fleet, "policy": policy})
    chosen = resolve_policy(settings.policy)
    fleet_path = fleet_file(settings.fleet)
    the_fleet = load_fleet(fleet_path)
    pending = tasks_from(tasks or SHIPPED_TASKS, the_fleet, str(fleet_path))
    report("place", findings_for(the_fleet, work_frame(pending)))
    state = FleetState.idle(the_fleet, time_s)
    if as_json:  # the record reads the table the placement was decided from
        placement, table = place_scored(state, pending, chosen)
        record = placement_report(state, pending, placement, table or scored(state, pending, chosen), chosen)
        typer.echo(json.dumps(record, indent=2))
        return
    placement = place_tasks(state, pending, chosen)
    title = (f"heddle place — fleet {the_fleet.name}, policy {chosen.name}: {placement.status}, "
             f"objective ${placement.objective:.6f}, bound ${placement.best_bound:.6f}")
    out.print(_decisions_table(placement, title))
    out.print(_alternatives_table(placement))
