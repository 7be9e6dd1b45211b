"""`heddle sweep SPEC.yaml`: many what-if runs from one spec, on local processes or Ray."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from heddle.cli.common import LazyConsole, new_table

out = LazyConsole()  # tables are not cut at 80 columns when piped
err = LazyConsole(stderr=True)


def sweep(
    spec_file: Annotated[Path, typer.Argument(metavar="SPEC", help="Sweep spec YAML (fleets, traces, policies, scenarios, growth, electricity_price, seeds).")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder for results.csv (and .parquet), failures.csv, comparison.png and per-run results (reused on re-runs).")] = Path("sweep-out"),
    ray: Annotated[str | None, typer.Option("--ray", help="Run on Ray: 'auto' (a running cluster, else a local one), 'local', or a cluster address. Needs the `ray` extra.")] = None,
    workers: Annotated[int | None, typer.Option("--workers", "-w", help="Local worker processes (default: one per core); CPUs of a local Ray cluster.", min=1)] = None,
    serial: Annotated[bool, typer.Option("--serial", help="Run in this process, one run after another.")] = False,
) -> None:
    """Run a grid (or list) of twin runs and collect their summaries into one table."""
    from rich.progress import (  # here, not at the top: `heddle --help` need not import it
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from heddle.sim import SimError
    from heddle.sim.executors import make_executor
    from heddle.sim.sweep import expand, load_sweep_spec, run_sweep

    try:
        spec = load_sweep_spec(spec_file)
        total = len(expand(spec))
        executor = make_executor("serial" if serial else "local", workers=workers, ray_address=ray)
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.fields[failed]} failed"), TimeElapsedColumn(), TimeRemainingColumn(),
                      console=err.real(), transient=True) as bar:
            job = bar.add_task(f"{spec.name} on {executor.name}", total=total, failed=0)
            result = run_sweep(spec, out_dir, executor=executor,
                               on_progress=lambda done, failed, n: bar.update(job, completed=done + failed, failed=failed))
    except SimError as exc:
        err.print(f"[red]heddle sweep: {exc}[/red]")
        raise typer.Exit(2) from None

    t = new_table(title=f"{spec.name}: {len(result.table)} runs ({result.ran} run now, {result.reused} reused)")
    params = ["fleet", "trace", "policy", "scenario", "growth", "electricity_price", "seed"]
    varying = [c for c in params if len(result.table) and result.table[c].nunique() > 1] or params[:1]
    metrics = {"completed": "done", "rejected": "rejected", "latency_p95_s": "p95 s",
               "deadline_miss_rate": "missed", "cloud_spend_usd": "cloud $", "energy_cost_usd": "energy $"}
    for c in varying:
        t.add_column("price x" if c == "electricity_price" else c, no_wrap=True)
    for head in metrics.values():
        t.add_column(head, justify="right", no_wrap=True)
    for row in result.table.to_dict("records"):
        cells = [f"{row[c]:g}" if isinstance(row[c], float) else str(row[c]) for c in varying]
        cells += [f"{row['completed']:,}", f"{row['rejected']:,}", f"{row['latency_p95_s']:,.1f}",
                  f"{row['deadline_miss_rate']:.1%}", f"{row['cloud_spend_usd']:,.2f}", f"{row['energy_cost_usd']:,.2f}"]
        t.add_row(*cells)
    out.print(t)
    for row in result.failures.to_dict("records"):
        err.print(f"[red]failed[/red] {row['fleet']}/{row['policy']}/{row['trace']} seed {row['seed']}: {row['error']}")
    out.print(f"wrote results.csv, results.parquet, failures.csv and comparison.png to {out_dir}")
    if len(result.failures):
        raise typer.Exit(1)
