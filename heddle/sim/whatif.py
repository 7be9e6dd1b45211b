"""What-if comparisons: resolve fleet, trace and scenario names, run every (fleet, policy)
combination side by side, and tabulate the results (what `heddle sim` calls).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from heddle.sim.executors import RunExecutor
from heddle.sim.metrics import SimSummary
from heddle.sim.result import SimResult
from heddle.sim.runner import RunSpec, run_many
from heddle.sim.scenario import shipped_scenario_path

__all__ = ["Run", "comparison_table", "resolve_fleet", "resolve_scenario", "resolve_trace", "summary_row", "what_if"]


def resolve_fleet(name_or_path: str | Path) -> Path:
    """An existing fleet file as given, else the shipped fleet of that name."""
    from heddle.models.fleet import shipped_fleet_path

    path = Path(name_or_path)
    return path if path.exists() else shipped_fleet_path(str(name_or_path))


def resolve_trace(name_or_path: str | Path) -> Path:
    """An existing trace file as given, else the shipped trace of that name."""
    from heddle.traces.samples import resolve_trace as resolve

    return resolve(name_or_path)


def resolve_scenario(name_or_path: str | Path) -> Path:
    """An existing scenario file as given, else the shipped scenario of that name."""
    path = Path(name_or_path)
    return path if path.exists() else shipped_scenario_path(str(name_or_path))


@dataclass(frozen=True, slots=True)
class Run:
    label: str
    result: SimResult


def _label(fleet: str, policy: str, several_fleets: bool, several_policies: bool) -> str:
    stem = Path(fleet).stem
    if several_fleets and several_policies:
        return f"{stem}/{policy}"
    return stem if several_fleets else policy


def what_if(
    fleets: Sequence[str],
    trace: str | Sequence[object],
    policies: Sequence[str],
    *,
    scenario: str | None = None,
    seed: int = 0,
    batch_window_s: float | None = None,
    horizon_s: float | None = None,
    on_done: Callable[[int, int, str], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
    executor: RunExecutor | None = None,
) -> list[Run]:
    """Run every (fleet, policy) pair on one trace; parallel processes when there are several.

    `progress(done, total)` reports arrivals of a single run; `on_done(k, n, label)` reports
    finished runs of a comparison. `executor`: where several runs execute (default: local
    processes; `heddle.sim.executors`).
    """
    trace_path = resolve_trace(trace) if isinstance(trace, str | Path) else trace  # or Tasks
    scenario_path = resolve_scenario(scenario) if scenario else None
    pairs = [(f, p) for f in fleets for p in policies]
    labels = [_label(f, p, len(fleets) > 1, len(policies) > 1) for f, p in pairs]
    specs = [
        RunSpec(fleet=resolve_fleet(f), trace=trace_path, policy=p, scenario=scenario_path,
                seed=seed, horizon_s=horizon_s, batch_window_s=batch_window_s, label=label)
        for (f, p), label in zip(pairs, labels)
    ]
    if len(specs) == 1:
        from heddle.sim.runner import simulate

        s = specs[0]
        result = simulate(s.fleet, s.trace, s.policy, s.scenario, s.seed, s.horizon_s,
                          batch_window_s=s.batch_window_s, progress=progress)
        return [Run(labels[0], result)]
    done = (lambda k, _r: on_done(k, len(specs), labels[k])) if on_done else None
    results = run_many(specs, on_done=done, executor=executor)
    return [Run(label, r) for label, r in zip(labels, results)]


def summary_row(s: SimSummary) -> dict[str, Any]:
    """The numbers a what-if comparison is read by, from one run's summary."""
    util = s.utilization
    return {
        "completed": s.completed,
        "rejected": s.rejected,
        "failed": s.failed,
        "latency_p50_s": s.latency_s["p50"],
        "latency_p95_s": s.latency_s["p95"],
        "latency_p99_s": s.latency_s["p99"],
        "ttft_p95_s": s.ttft_s["p95"],
        "deadline_miss_rate": s.deadline_miss_rate,
        "cloud_spend_usd": s.cloud_spend_usd,
        "energy_kwh": s.energy_kwh,
        "energy_cost_usd": s.energy_cost_usd,
        "mean_utilization": sum(util.values()) / len(util) if util else 0.0,
        "retries": s.retries,
        "privacy_violations": s.privacy_violations,
        "wall_s": s.wall_s,
    }


def comparison_table(runs: Sequence[Run]) -> pd.DataFrame:
    """One row per run: the numbers a what-if comparison is read by."""
    return pd.DataFrame([{"run": run.label, **summary_row(run.result.summary)} for run in runs])


def safe_dir_name(label: str) -> str:
    """A label as a directory name (runs of a comparison each get their own output folder)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label)
