"""`heddle sim`: replay a trace on a fleet through the optimizer and show what would happen.

With no arguments it runs the shipped demo fleet and demo trace. Several --fleet and/or
--policy values run side by side in parallel processes and print one comparison table.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rich.table import Table

from heddle.cli.common import InputError, LazyConsole, guarded, new_table

out = LazyConsole()
err = LazyConsole(stderr=True)


def _fmt(value: float, unit: str = "", digits: int = 2) -> str:
    if math.isnan(value):  # nothing completed in that class
        return "-"
    return f"{value:,.{digits}f}{unit}" if abs(value) < 1000 else f"{value:,.0f}{unit}"


def _summary_table(run) -> Table:
    s = run.result.summary
    t = new_table(title=f"heddle sim — fleet {s.fleet}, policy {s.policy}", show_header=False)
    t.add_column("metric", style="bold", no_wrap=True)
    t.add_column("value", justify="right", no_wrap=True)
    rows = [
        ("tasks arrived / completed", f"{s.arrived:,} / {s.completed:,}"),
        ("rejected / failed / in flight", f"{s.rejected:,} / {s.failed:,} / {s.in_flight:,}"),
        ("latency p50 / p95 / p99", " / ".join(_fmt(s.latency_s[p], " s") for p in ("p50", "p95", "p99"))),
        ("time to first token p50 / p95 / p99", " / ".join(_fmt(s.ttft_s[p], " s") for p in ("p50", "p95", "p99"))),
        ("deadline-miss rate", f"{s.deadline_miss_rate:.1%}"),
        ("throughput", f"{s.throughput_per_s:,.3f} tasks/s over {s.makespan_s / 3600:,.2f} h"),
        ("cloud spend", f"${s.cloud_spend_usd:,.2f}"),
        ("energy", f"{s.energy_kwh:,.2f} kWh (${s.energy_cost_usd:,.2f})"),
        ("retried tasks (retries)", f"{s.retried_tasks:,} ({s.retries:,})"),
        ("privacy violations", str(s.privacy_violations)),
        ("simulated in", f"{s.wall_s:.1f} s ({s.requests_per_wall_s:,.0f} requests/s)"),
    ]
    for name, value in rows:
        t.add_row(name, value)
    for node, u in s.utilization.items():
        t.add_row(f"utilization {node}", f"{u:.0%}")
    return t


def _rejections_table(run) -> Table | None:
    reasons = run.result.summary.rejected_reasons
    if not reasons:
        return None
    t = new_table(title="Rejected tasks, by reason")
    t.add_column("tasks", justify="right", no_wrap=True)
    t.add_column("reason (the first constraint each target breaks, with how many targets)", overflow="fold")
    for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1]):
        t.add_row(f"{n:,}", reason)
    return t


def _class_table(run) -> Table:
    s = run.result.summary
    t = new_table(title="Per class (seconds)")
    for col in ("class", "arrived", "done", "p50", "p95", "p99", "TTFT p95", "missed"):
        t.add_column(col, justify="left" if col == "class" else "right", no_wrap=True)
    for name, row in s.by_class.items():
        t.add_row(name, f"{row['arrived']:,}", f"{row['completed']:,}", _fmt(row["latency_p50_s"], digits=1),
                  _fmt(row["latency_p95_s"], digits=1), _fmt(row["latency_p99_s"], digits=1),
                  _fmt(row["ttft_p95_s"], digits=1),
                  f"{row['deadline_miss_rate']:.1%}")
    return t


def _comparison(runs, width: int) -> Table:
    """One row per run, or, where that would not fit `width` columns (rich would cut every
    figure to "3.…"), one row per figure with a column per run headed by its fleet and policy."""
    from heddle.sim.whatif import comparison_table

    heads = ("run", "done", "rejected", "p50 s", "p95 s", "p99 s", "missed", "cloud $", "kWh", "util", "privacy")
    rows = [
        (row["run"], f"{row['completed']:,}", f"{row['rejected']:,}", _fmt(row["latency_p50_s"]),
         _fmt(row["latency_p95_s"]), _fmt(row["latency_p99_s"]), f"{row['deadline_miss_rate']:.1%}",
         f"{row['cloud_spend_usd']:,.2f}", f"{row['energy_kwh']:,.2f}", f"{row['mean_utilization']:.0%}",
         str(row["privacy_violations"]))
        for row in comparison_table(runs).to_dict("records")
    ]
    t = new_table(title="What-if comparison")
    if _drawn_width([heads, *rows]) <= width:
        for head in heads:
            t.add_column(head, justify="left" if head == "run" else "right", no_wrap=True)
        for row in rows:
            t.add_row(*row)
        return t
    t.add_column("figure", no_wrap=True)
    for row in rows:  # "demo/optimal" -> "demo" over "optimal": a column as wide as the longer
        t.add_column(row[0].replace("/", "/\n", 1), justify="right")
    for k, head in enumerate(heads[1:], start=1):
        t.add_row(head, *(row[k] for row in rows))
    return t


def _drawn_width(rows: list[tuple[str, ...]]) -> int:
    """Columns a rich table of `rows` takes unsqueezed: each column's widest cell, one space of
    padding each side, and the borders."""
    return sum(max(len(row[k]) for row in rows) + 3 for k in range(len(rows[0]))) + 1


REJECTED_SHARE_WARNING = 0.10
"""Above this share of rejected tasks a run's summary says so in red: the other figures
(latency, deadline misses) then describe only the work that was kept."""


def _rejections_warning(run) -> str | None:
    s = run.result.summary
    if not s.arrived or s.rejected / s.arrived <= REJECTED_SHARE_WARNING:
        return None
    top = max(s.rejected_reasons.items(), key=lambda kv: kv[1], default=("", 0))
    return (f"[bold red]{run.label}: {s.rejected:,} of {s.arrived:,} tasks ({s.rejected / s.arrived:.0%}) "
            f"were rejected[/bold red]; the latency and deadline figures cover only the rest. "
            f"Most common reason ({top[1]:,}): {top[0]}")


@guarded("sim")
def sim(
    fleet: Annotated[list[str] | None, typer.Option(
        "--fleet", "-f", metavar="FLEET",
        help="Fleet YAML or shipped fleet name (demo, small, office); repeat to compare [default: the `fleet` setting, demo].")] = None,
    trace: Annotated[str | None, typer.Option(
        "--trace", "-t", metavar="WORK",
        help="Trace file, shipped trace name or workload YAML [default: the `trace` setting, demo].")] = None,
    policy: Annotated[list[str] | None, typer.Option(
        "--policy", "-p", metavar="POLICY",
        help="Placement policy; repeat to compare [default: the `policy` setting, optimal].")] = None,
    scenario: Annotated[str | None, typer.Option(
        "--scenario", "-s", metavar="SCENARIO",
        help="Scenario YAML or shipped scenario name (demo, flaky): joins, drains, failures [default: none].")] = None,
    out_dir: Annotated[Path | None, typer.Option(
        "--out", "-o", metavar="DIR", help="Write metrics.json, records.csv and PNG charts into this directory.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", metavar="N", help="Seed of the run's random draws [default: the `seed` setting, 0].")] = None,
    batch_window: Annotated[float | None, typer.Option(
        "--batch-window", metavar="SECONDS", min=0,
        help="Seconds between batch placements; 0 places each arrival [default: the policy's].")] = None,
    horizon: Annotated[float | None, typer.Option(
        "--horizon", metavar="SECONDS", min=0, help="Stop the clock at this many simulated seconds [default: run to the end].")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary metrics as JSON.")] = False,
    ray: Annotated[str | None, typer.Option(
        "--ray", metavar="ADDRESS",
        help="Run several fleets/policies on Ray: auto (a running cluster, else a local one), local, or a cluster address; needs the `ray` extra [default: local processes].")] = None,
    workers: Annotated[int | None, typer.Option(
        "--workers", "-w", metavar="N", min=1,
        help="Local worker processes for several fleets/policies (CPUs of a local Ray cluster) [default: one per core].")] = None,
) -> None:
    """Replay a workload on a fleet (default: the shipped demo fleet and demo trace)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from heddle.cli.check import findings_for, read_work, report
    from heddle.cli.inputs import fleet_file, output_dir, scenario_file, work_source
    from heddle.config import load_settings
    from heddle.models.fleet import load_fleet
    from heddle.optimizer import POLICY_NAMES
    from heddle.sim.executors import make_executor
    from heddle.sim.whatif import safe_dir_name, what_if

    settings = load_settings({"trace": trace, "seed": seed})
    policies = policy or [settings.policy]
    for p in policies:
        if p not in POLICY_NAMES:
            raise InputError(f"option --policy: unknown policy {p!r}; expected one of {', '.join(POLICY_NAMES)}")
    if out_dir is not None:
        output_dir(out_dir)  # before the run, not after it
    fleets = [str(fleet_file(f)) for f in fleet or [settings.fleet]]
    scenario_path = str(scenario_file(scenario)) if scenario else None
    source = work_source(settings.trace)
    work = read_work(source)
    for f in fleets:
        report("sim", findings_for(load_fleet(f), work))
    n_runs = len(fleets) * len(policies)
    executor = make_executor(workers=workers, ray_address=ray) if n_runs > 1 else None
    if executor is None and (ray or workers):
        err.print("heddle sim: note: one run runs in this process; --ray and --workers spread "
                  "several fleets/policies", highlight=False)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err.real(), transient=True, disable=as_json) as bar:
        if n_runs == 1:
            job = bar.add_task("simulating arrivals", total=None)
            report_to = {"progress": lambda done, total: bar.update(job, completed=done, total=total)}
        else:
            job = bar.add_task(f"{n_runs} runs in parallel ({executor.name})", total=n_runs)
            report_to = {"on_done": lambda k, n, label: bar.advance(job)}
        runs = what_if(fleets, source if isinstance(source, list) else str(source), policies,
                       scenario=scenario_path, seed=settings.seed, batch_window_s=batch_window,
                       horizon_s=horizon, executor=executor, **report_to)

    if out_dir is not None:
        for run in runs:
            target = out_dir if len(runs) == 1 else out_dir / safe_dir_name(run.label)
            run.result.write(target)
    for run in runs:
        if (warning := _rejections_warning(run)) is not None:
            err.print(warning, highlight=False, soft_wrap=True)
    if as_json:
        payload = {run.label: run.result.metrics() for run in runs}
        out.print_json(json.dumps(payload if len(runs) > 1 else next(iter(payload.values()))))
        return
    if len(runs) == 1:
        out.print(_summary_table(runs[0]))
        out.print(_class_table(runs[0]))
        if (rejections := _rejections_table(runs[0])) is not None:
            out.print(rejections)
    else:
        out.print(_comparison(runs, out.width))
    if out_dir is not None:
        out.print(f"wrote metrics.json, records.csv and charts to {out_dir}")
