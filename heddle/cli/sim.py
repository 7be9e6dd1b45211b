"""`heddle sim`: replay a trace on a fleet through the optimizer and show what would happen.

With no arguments it runs the shipped demo fleet and demo trace. Several --fleet and/or
--policy values run side by side in parallel processes and print one comparison table.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

out = Console()
err = Console(stderr=True)


def _fmt(value: float, unit: str = "", digits: int = 2) -> str:
    if math.isnan(value):  # nothing completed in that class
        return "-"
    return f"{value:,.{digits}f}{unit}" if abs(value) < 1000 else f"{value:,.0f}{unit}"


def _summary_table(run) -> Table:
    s = run.result.summary
    t = Table(title=f"heddle sim — fleet {s.fleet}, policy {s.policy}", show_header=False)
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
    for reason, n in sorted(s.rejected_reasons.items(), key=lambda kv: -kv[1])[:5]:  # most common
        t.add_row("rejected: " + (reason if len(reason) <= 40 else reason[:39] + "…"), f"{n:,}")
    return t


def _class_table(run) -> Table:
    s = run.result.summary
    t = Table(title="Per class (seconds)")
    for col in ("class", "arrived", "done", "p50", "p95", "p99", "TTFT p95", "missed"):
        t.add_column(col, justify="left" if col == "class" else "right", no_wrap=True)
    for name, row in s.by_class.items():
        t.add_row(name, f"{row['arrived']:,}", f"{row['completed']:,}", _fmt(row["latency_p50_s"], digits=1),
                  _fmt(row["latency_p95_s"], digits=1), _fmt(row["latency_p99_s"], digits=1),
                  _fmt(row["ttft_p95_s"], digits=1),
                  f"{row['deadline_miss_rate']:.1%}")
    return t


def _comparison(runs) -> Table:
    from heddle.sim.whatif import comparison_table

    df = comparison_table(runs)
    t = Table(title="What-if comparison")
    cols = [("run", "run"), ("completed", "done"), ("rejected", "rejected"), ("latency_p50_s", "p50 s"),
            ("latency_p95_s", "p95 s"), ("latency_p99_s", "p99 s"), ("deadline_miss_rate", "missed"),
            ("cloud_spend_usd", "cloud $"), ("energy_kwh", "kWh"), ("mean_utilization", "util"),
            ("privacy_violations", "privacy")]
    for _, head in cols:
        t.add_column(head, justify="left" if head == "run" else "right", no_wrap=True)
    for row in df.to_dict("records"):
        t.add_row(
            row["run"], f"{row['completed']:,}", f"{row['rejected']:,}", _fmt(row["latency_p50_s"]),
            _fmt(row["latency_p95_s"]), _fmt(row["latency_p99_s"]), f"{row['deadline_miss_rate']:.1%}",
            f"{row['cloud_spend_usd']:,.2f}", f"{row['energy_kwh']:,.2f}", f"{row['mean_utilization']:.0%}",
            str(row["privacy_violations"]),
        )
    return t


def sim(
    fleet: Annotated[list[str] | None, typer.Option("--fleet", "-f", help="Fleet YAML or shipped fleet name; repeat to compare.")] = None,
    trace: Annotated[str | None, typer.Option("--trace", "-t", help="Trace file or shipped trace name.")] = None,
    policy: Annotated[list[str] | None, typer.Option("--policy", "-p", help="Placement policy; repeat to compare.")] = None,
    scenario: Annotated[str | None, typer.Option("--scenario", "-s", help="Scenario YAML or shipped scenario name (fleet dynamics).")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", "-o", help="Write metrics.json, records.csv and PNG plots here.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of the run's random draws.")] = None,
    batch_window: Annotated[float | None, typer.Option("--batch-window", help="Seconds between batch placements (0 = place each arrival).", min=0)] = None,
    horizon: Annotated[float | None, typer.Option("--horizon", help="Stop the clock at this many simulated seconds.", min=0)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary metrics as JSON.")] = False,
) -> None:
    """Replay a workload trace on a fleet (default: the shipped demo fleet and trace)."""
    from heddle.config import load_settings
    from heddle.models.errors import ModelsError
    from heddle.optimizer import POLICY_NAMES, OptimizerError
    from heddle.sim import SimError
    from heddle.sim.whatif import safe_dir_name, what_if
    from heddle.traces import TraceError

    try:
        settings = load_settings({"trace": trace, "seed": seed})
        fleets = fleet or [settings.fleet]
        policies = policy or [settings.policy]
        for p in policies:
            if p not in POLICY_NAMES:
                raise typer.BadParameter(f"unknown policy {p!r}; expected one of {', '.join(POLICY_NAMES)}", param_hint="--policy")
        n_runs = len(fleets) * len(policies)
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=err, transient=True, disable=as_json) as bar:
            if n_runs == 1:
                job = bar.add_task("simulating arrivals", total=None)
                runs = what_if(fleets, settings.trace, policies, scenario=scenario, seed=settings.seed,
                               batch_window_s=batch_window, horizon_s=horizon,
                               progress=lambda done, total: bar.update(job, completed=done, total=total))
            else:
                job = bar.add_task(f"{n_runs} runs in parallel", total=n_runs)
                runs = what_if(fleets, settings.trace, policies, scenario=scenario, seed=settings.seed,
                               batch_window_s=batch_window, horizon_s=horizon,
                               on_done=lambda k, n, label: bar.advance(job))
    except (SimError, ModelsError, TraceError, OptimizerError) as exc:
        err.print(f"[red]heddle sim: {exc}[/red]")
        raise typer.Exit(2) from None

    if out_dir is not None:
        for run in runs:
            target = out_dir if len(runs) == 1 else out_dir / safe_dir_name(run.label)
            run.result.write(target)
    if as_json:
        payload = {run.label: run.result.metrics() for run in runs}
        out.print_json(json.dumps(payload if len(runs) > 1 else next(iter(payload.values()))))
        return
    if len(runs) == 1:
        out.print(_summary_table(runs[0]))
        out.print(_class_table(runs[0]))
    else:
        out.print(_comparison(runs))
    if out_dir is not None:
        out.print(f"wrote metrics.json, records.csv and plots to {out_dir}")
