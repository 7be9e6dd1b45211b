"""How faithful the twin is: replay what a live cluster recorded on the fleet it ran on, and
compare the two side by side (`heddle twin check`).

The twin learns nothing from the live run but the recorded trace (what arrived, when, with
what work) and the exported fleet (devices, slots, owners, trust, the per-core speed each
agent measured, over the window and second by second, and per node the spread of its steps'
service times and its start delay as the control plane measured them: aggregates, never a
task's own time). A node's speed over time is replayed as `pace` events of the twin's
scenario (`measured_speeds`): a machine shared with other work has slow spells of seconds
that queue a busy node up, and a twin at the window's mean speed misses them. Both sides are measured by the same code: the live records are put in the
twin's record columns and summarised by `heddle.sim.metrics.summarize`, utilization comes
from each side's own busy times by one rule. The error of a figure is twin / live - 1.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from heddle.models import Fleet
from heddle.sim.metrics import PERCENTILES, SimSummary, summarize
from heddle.sim.result import SimResult
from heddle.sim.runner import simulate
from heddle.sim.scenario import Action, FleetEvent, Scenario
from heddle.traces.recorded import Recorded

__all__ = ["FidelityReport", "Row", "compare", "live_records", "measured_speeds", "utilization", "write_chart"]

LIVE_STATUS = {"completed": "completed", "rejected": "rejected", "failed": "failed", "cancelled": "failed"}
"""Recorded statuses as the twin's (a cancelled task is a failed one to the twin's counters)."""
_STAT_KEYS = tuple(f"p{p}" for p in PERCENTILES)
SPEED_FACTOR_BOUNDS = (0.05, 4.0)
"""A measured speed over the node's mean is kept within these (a scenario's speed factor
is at most 4; a stall reads as a speed near 0)."""
REPLAYS = 8
"""Replays whose median is the twin's figure when its service times are draws (measured
spread): one draw's p95 moves by ~3% from seed to seed at 700 tasks."""


@dataclass(slots=True)
class Row:
    """One figure, live and twin; `error` = twin / live - 1 (None when live is 0 or missing)."""

    metric: str
    live: float
    twin: float
    error: float | None


@dataclass(slots=True)
class FidelityReport:
    rows: list[Row]
    per_task: pd.DataFrame  # task_id, class, live and twin latency, error
    error_distribution: dict[str, float]  # percentiles of the per-task latency error
    live: SimSummary
    twin: SimSummary
    tasks: int
    window_s: float
    twin_result: SimResult = field(repr=False)

    def row(self, metric: str) -> Row:
        return next(r for r in self.rows if r.metric == metric)

    def to_dict(self) -> dict[str, Any]:
        return {"tasks": self.tasks, "window_s": self.window_s,
                "rows": [asdict(r) for r in self.rows],
                "per_task_latency_error": self.error_distribution}


def _error(live: float, twin: float) -> float | None:
    if not (math.isfinite(live) and math.isfinite(twin)) or live == 0:
        return None
    return twin / live - 1.0


def live_records(recorded: Recorded) -> pd.DataFrame:
    """The recorded tasks in the twin's record columns (heddle.sim.records.Records.frame)."""
    df, out = recorded.trace.df, recorded.outcomes
    arrival = df["arrival_s"].to_numpy(dtype=float)
    start = out["start_s"].to_numpy(dtype=float)
    finish = out["finish_s"].to_numpy(dtype=float)
    first = out["first_token_s"].to_numpy(dtype=float)
    status = out["status"].map(LIVE_STATUS).fillna("failed").astype(str).to_numpy()
    # the twin's time to first token of a processor step is its latency (no tokens)
    ttft = np.where(np.isnan(first), finish, first) - arrival
    deadline_abs = arrival + df["deadline_s"].to_numpy(dtype=float)
    has_deadline = ~np.isnan(deadline_abs)
    met = np.where(status == "completed", finish <= deadline_abs + 1e-9, False)
    return pd.DataFrame({
        "task_id": df["task_id"].astype(str).to_numpy(),
        "kind": pd.Categorical(df["kind"].astype(str)),
        "arrival": arrival, "release": arrival, "start": start, "finish": finish,
        "target": out["target"].astype(str).to_numpy(),
        "target_kind": pd.Categorical(np.where(out["target"].astype(str) != "", "node", "")),
        "wait": start - arrival, "service": finish - start, "latency": finish - arrival,
        "ttft": ttft, "cost_usd": out["cost_usd"].to_numpy(dtype=float),
        "energy_kwh": np.zeros(len(df)),
        "deadline_s": deadline_abs,
        "deadline_met": pd.arrays.BooleanArray(np.where(has_deadline, met, False), ~has_deadline),
        "privacy": pd.Categorical(df["privacy"].astype(str)),
        "owner": df["owner"].astype(str).to_numpy(),
        "pipeline_id": df["pipeline_id"].astype(str).to_numpy(),
        "status": pd.Categorical(status),
        "retries": np.maximum(out["attempts"].to_numpy(dtype=int) - 1, 0),
        "defers": np.zeros(len(df), dtype=int),
        "reason": out["reason"].astype(str).to_numpy(),
        "retry_reason": np.full(len(df), "", dtype=object),
    })


def utilization(records: pd.DataFrame, slots: dict[str, int]) -> dict[str, float]:
    """Busy slot-seconds over slot-seconds from the first arrival to the last finish, per node
    (the same rule for both sides)."""
    done = records[records["status"] == "completed"]
    span = float(done["finish"].max() - records["arrival"].min()) if len(done) else 0.0
    busy = (done["finish"] - done["start"]).groupby(done["target"].astype(str)).sum()
    return {node: (float(busy.get(node, 0.0)) / (n * span) if span > 0 else 0.0)
            for node, n in slots.items()}


def _summary(records: pd.DataFrame, fleet: Fleet, label: str) -> SimSummary:
    return summarize(records, fleet=fleet.name, policy=label,
                     utilization=utilization(records, {n.id: n.slots for n in fleet.nodes}),
                     idle_energy_kwh=0.0, idle_energy_usd=0.0, privacy_violations=0,
                     model_loads={}, evictions={})


def _rows(live: SimSummary, twin: SimSummary) -> list[Row]:
    rows = []
    classes = sorted(set(live.by_class) | set(twin.by_class))
    for name in ("latency", "ttft"):
        for key in _STAT_KEYS:
            a, b = live.__getattribute__(f"{name}_s")[key], twin.__getattribute__(f"{name}_s")[key]
            rows.append(Row(f"{name} {key} (s)", a, b, _error(a, b)))
        for cls in classes:
            for key in _STAT_KEYS:
                a = live.by_class.get(cls, {}).get(f"{name}_{key}_s", math.nan)
                b = twin.by_class.get(cls, {}).get(f"{name}_{key}_s", math.nan)
                rows.append(Row(f"{name} {key} {cls} (s)", a, b, _error(a, b)))
    for node in sorted(set(live.utilization) | set(twin.utilization)):
        a, b = live.utilization.get(node, 0.0), twin.utilization.get(node, 0.0)
        rows.append(Row(f"utilization {node}", a, b, _error(a, b)))
    for metric, a, b in (
        ("cloud spend (USD)", live.cloud_spend_usd, twin.cloud_spend_usd),
        ("deadline-miss rate", live.deadline_miss_rate, twin.deadline_miss_rate),
        ("completed", live.completed, twin.completed),
        ("rejected", live.rejected, twin.rejected),
        ("failed", live.failed, twin.failed),
    ):
        rows.append(Row(metric, float(a), float(b), _error(float(a), float(b))))
    return rows


def measured_speeds(fleet: Fleet, origin_unix_s: float) -> Scenario | None:
    """The nodes' measured speed over time (`Node.speed_profile`) as `pace` events on the
    twin's clock (0 at `origin_unix_s`): from each entry's time on, the node runs at that
    speed over its `cpu_speed_relative` (the window's mean); the entry in force at 0 counts
    from 0. The scheduler keeps seeing the mean, as the live control plane saw each agent's
    speed over its last minute, not second by second. None when no node has a profile."""
    events = []
    for node in fleet.nodes:
        mean = node.device.cpu_single_core_relative
        factors: dict[float, float] = {}
        for unix_s, speed in node.speed_profile:
            at = max(0.0, unix_s - origin_unix_s)
            factors[at] = min(max(speed / mean, SPEED_FACTOR_BOUNDS[0]), SPEED_FACTOR_BOUNDS[1])
        events += [FleetEvent(at_s=at, node=str(node.id), action=Action.PACE, speed_factor=f)
                   for at, f in factors.items()]
    return Scenario(events=events) if events else None


def compare(recorded: Recorded, fleet: Fleet, policy: str = "fast", seed: int = 0,
            replays: int = REPLAYS) -> FidelityReport:
    """Replay `recorded` on `fleet` with `policy` (the control plane's) and compare; nodes
    with a measured speed over time run at it (`measured_speeds`). When the fleet's nodes
    carry a measured spread (`service_cv`, `service_quantiles`), the twin's service times are draws: it replays
    `replays` times (seeds `seed`, `seed` + 1, ...) and each twin figure is the median of the
    replays' (the per-task comparison is the first replay's)."""
    draws = replays if any(n.measured_spread for n in fleet.nodes) else 1
    scenario = measured_speeds(fleet, recorded.origin_unix_s)
    results = [simulate(fleet, recorded.trace, policy=policy, scenario=scenario, seed=seed + k)
               for k in range(draws)]
    twin_result = results[0]
    live = live_records(recorded)
    twin = twin_result.records
    live_summary = _summary(live, fleet, "live")
    twin_summary = _summary(twin, fleet, policy)
    rows = _rows(live_summary, twin_summary)
    if draws > 1:
        others = [{o.metric: o.twin for o in _rows(live_summary, _summary(r.records, fleet, policy))}
                  for r in results[1:]]
        for row in rows:
            row.twin = float(np.median([row.twin] + [o.get(row.metric, math.nan) for o in others]))
            row.error = _error(row.live, row.twin)
    both = live[["task_id", "privacy", "kind", "latency", "status"]].merge(
        twin[["task_id", "latency", "status"]], on="task_id", suffixes=("_live", "_twin"))
    ok = (both["status_live"] == "completed") & (both["status_twin"] == "completed")
    per_task = both.loc[ok, ["task_id", "privacy", "kind", "latency_live", "latency_twin"]].copy()
    per_task["error"] = per_task["latency_twin"] / per_task["latency_live"] - 1.0
    errors = per_task["error"].to_numpy(dtype=float)
    distribution = ({f"p{p}": float(np.percentile(errors, p)) for p in (5, 25, 50, 75, 95)}
                    | {"mean_abs": float(np.abs(errors).mean())} if len(errors) else {})
    window = float(np.nanmax(live["finish"])) if len(live) and np.isfinite(live["finish"]).any() else 0.0
    return FidelityReport(rows, per_task.reset_index(drop=True), distribution,
                          live_summary, twin_summary, len(live), window, twin_result)


def write_chart(report: FidelityReport, out: Path) -> list[Path]:
    """fidelity.png (latency CDFs, per-task error histogram, utilization per node),
    fidelity.json (every figure) and tasks.csv (per-task latencies) in `out`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    fig, (cdf, hist, util) = plt.subplots(1, 3, figsize=(15, 4.2))
    for label, values in (("live", report.per_task["latency_live"]), ("twin", report.per_task["latency_twin"])):
        v = np.sort(values.to_numpy(dtype=float))
        cdf.plot(v, np.arange(1, len(v) + 1) / max(len(v), 1), label=label)
    cdf.set(xscale="log", xlabel="latency (s)", ylabel="fraction of tasks", title="latency CDF")
    cdf.legend()
    hist.hist(report.per_task["error"].to_numpy(dtype=float) * 100, bins=40, color="tab:gray")
    hist.set(xlabel="twin / live - 1 (%)", ylabel="tasks", title="per-task latency error")
    nodes = sorted(report.live.utilization)
    x = np.arange(len(nodes))
    util.bar(x - 0.2, [report.live.utilization[n] for n in nodes], 0.4, label="live")
    util.bar(x + 0.2, [report.twin.utilization.get(n, 0.0) for n in nodes], 0.4, label="twin")
    util.set_xticks(x, nodes)
    util.set(ylabel="busy fraction", title="utilization per node")
    util.legend()
    p50 = report.row("latency p50 (s)").error
    p95 = report.row("latency p95 (s)").error
    fig.suptitle(f"twin vs live: {report.tasks} tasks; latency error p50 {_pct(p50)}, p95 {_pct(p95)}")
    fig.tight_layout()
    paths = [out / "fidelity.png", out / "fidelity.json", out / "tasks.csv"]
    fig.savefig(paths[0], dpi=110)
    plt.close(fig)
    paths[1].write_text(json.dumps(report.to_dict(), indent=2, allow_nan=True) + "\n", encoding="utf-8")
    report.per_task.to_csv(paths[2], index=False)
    return paths


def _pct(error: float | None) -> str:
    return "-" if error is None else f"{error:+.1%}"
