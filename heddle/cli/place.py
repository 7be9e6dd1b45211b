"""`heddle place`: place a task file on a fleet and explain every decision.

Defaults: the shipped demo fleet and the shipped demo tasks, an idle fleet at --time 0.
`--json` prints the machine-checkable record (status, objective, bound, demands, capacities,
the cost of every feasible pair) instead of the tables.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from heddle.models import FleetState
from heddle.models.errors import FleetError
from heddle.models.fleet import load_fleet, shipped_fleet_path
from heddle.optimizer import OptimizerError, resolve_policy, scored
from heddle.optimizer import place as place_tasks
from heddle.optimizer.engine import place_scored
from heddle.optimizer.report import placement_report
from heddle.optimizer.taskfile import parse_tasks

SHIPPED_TASKS = Path(__file__).resolve().parent.parent / "data" / "tasks" / "demo.yaml"
"""The sample task file `heddle place` uses by default (package data)."""

out = Console(width=None if sys.stdout.isatty() else 160)  # pipes and CI get full rows
err = Console(stderr=True)


def _decisions_table(placement, title: str) -> Table:
    t = Table(title=title)
    for col in ("task", "status", "target", "start+run s", "cost parts (USD)", "reason"):
        t.add_column(col, no_wrap=col in ("task", "status", "target"))
    for d in placement.decisions:
        placed = d.status.value == "placed"
        parts = " ".join(f"{k} {v:.6f}" for k, v in d.cost_usd.items() if v)
        t.add_row(d.task_id, d.status.value, d.target or "-",
                  f"{d.est_start_s:.1f}+{d.est_seconds:.1f}" if placed else "-", parts or "0", d.reason)
    return t


def _alternatives_table(placement) -> Table:
    t = Table(title="ruled-out alternatives (the first constraint each target breaks, or its cost)")
    t.add_column("task", no_wrap=True)
    t.add_column("target", no_wrap=True)
    t.add_column("why not")
    for d in placement.decisions:
        for target, why in d.rejected_alternatives.items():
            t.add_row(d.task_id, target, why)
    return t


def place(
    fleet: Annotated[Path | None, typer.Option("--fleet", help="Fleet YAML (default: the shipped demo fleet).")] = None,
    tasks: Annotated[Path | None, typer.Option("--tasks", help="Task YAML/JSON list (default: shipped demo tasks).")] = None,
    policy: Annotated[str, typer.Option("--policy", help="optimal | fast | round-robin | least-loaded | ray-hybrid | cheapest")] = "optimal",
    time_s: Annotated[float, typer.Option("--time", help="The idle fleet's clock, seconds (deadlines are absolute).")] = 0.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the machine-checkable JSON record.")] = False,
) -> None:
    """Place tasks on an idle fleet and explain each decision."""
    fleet_path = fleet or shipped_fleet_path()
    tasks_path = tasks or SHIPPED_TASKS
    try:
        chosen = resolve_policy(policy)
        the_fleet = load_fleet(fleet_path)
        text = tasks_path.read_text(encoding="utf-8")
        pending = parse_tasks(text, str(tasks_path), the_fleet, str(fleet_path))
    except (OptimizerError, FleetError) as exc:
        err.print(f"[red]error:[/red] {exc}", markup=True, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    except OSError as exc:
        err.print(f"[red]error:[/red] cannot read {exc.filename}: {exc.strerror}", highlight=False)
        raise typer.Exit(2) from None
    state = FleetState.idle(the_fleet, time_s)
    if as_json:  # the record reads the table the placement was decided from
        placement, table = place_scored(state, pending, chosen)
        report = placement_report(state, pending, placement, table or scored(state, pending, chosen), chosen)
        typer.echo(json.dumps(report, indent=2))
        return
    placement = place_tasks(state, pending, chosen)
    title = (f"heddle place — fleet {the_fleet.name}, policy {chosen.name}: {placement.status}, "
             f"objective ${placement.objective:.6f}, bound ${placement.best_bound:.6f}")
    out.print(_decisions_table(placement, title))
    out.print(_alternatives_table(placement))
