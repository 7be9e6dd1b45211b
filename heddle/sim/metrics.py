"""Summary metrics of a run, computed once from the per-task records (vectorized).

Latency is finish - arrival of completed tasks (pipeline stages include the wait for the
stages they depend on); time to first token is measured from arrival too. Deadline-miss rate
counts, among tasks that have a deadline, those not completed by it (a rejected task with a
deadline missed it). Utilization is busy slot-seconds over slot-seconds present.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

__all__ = ["SimSummary", "class_table", "queue_series", "summarize", "utilization_series"]

PERCENTILES = (50, 95, 99)
"""Percentiles reported for latency and time to first token."""

SERIES_POINTS = 200
"""Samples in the queue-length and utilization time series."""


def _pct(values: np.ndarray) -> dict[str, float]:
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return {f"p{p}": float("nan") for p in PERCENTILES} | {"mean": float("nan")}
    qs = np.percentile(values, PERCENTILES)
    return {f"p{p}": float(q) for p, q in zip(PERCENTILES, qs)} | {"mean": float(values.mean())}


@dataclass(slots=True)
class SimSummary:
    """The headline numbers of one run (JSON-ready; see docs/twin.md for each field)."""

    fleet: str
    policy: str
    arrived: int
    completed: int
    rejected: int
    failed: int
    in_flight: int
    latency_s: dict[str, float]
    ttft_s: dict[str, float]
    wait_s: dict[str, float]
    deadline_miss_rate: float
    throughput_per_s: float
    makespan_s: float
    cloud_spend_usd: float
    cloud_spend_by_offer: dict[str, float]
    cloud_spend_by_account: dict[str, float]
    energy_kwh: float  # busy (task) + idle energy of local nodes
    energy_cost_usd: float
    task_energy_kwh: float
    idle_energy_kwh: float
    utilization: dict[str, float]  # node -> busy slot-seconds / slot-seconds present
    retried_tasks: int
    retries: int
    retry_reasons: dict[str, int]
    rejected_reasons: dict[str, int]
    failed_reasons: dict[str, int]
    deferrals: int
    privacy_violations: int
    by_class: dict[str, dict[str, float]] = field(default_factory=dict)
    model_loads: dict[str, int] = field(default_factory=dict)
    evictions: dict[str, int] = field(default_factory=dict)
    place_calls: int = 0
    place_wall_s: float = 0.0  # wall-clock seconds inside optimizer.place()
    wall_s: float = 0.0
    requests_per_wall_s: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def _class_rows(df: pd.DataFrame) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for column in ("privacy", "kind"):
        for value, g in df.groupby(column, sort=True):
            done = g[g["status"] == "completed"]
            has_deadline = g["deadline_met"].notna()
            misses = int((~g.loc[has_deadline, "deadline_met"].astype(bool)).sum())
            row = {
                "arrived": len(g), "completed": len(done),
                "rejected": int((g["status"] == "rejected").sum()),
                "failed": int((g["status"] == "failed").sum()),
                "in_flight": int((g["status"] == "in_flight").sum()),
                "deadline_miss_rate": misses / int(has_deadline.sum()) if has_deadline.any() else 0.0,
            }
            for name, col in (("latency", "latency"), ("ttft", "ttft"), ("wait", "wait")):
                for k, v in _pct(done[col].to_numpy(dtype=float)).items():
                    row[f"{name}_{k}_s"] = v
            out[f"{column}={value}"] = row
    return out


def class_table(summary: SimSummary) -> pd.DataFrame:
    """Per-class rows (privacy class and task kind) as a DataFrame."""
    return pd.DataFrame.from_dict(summary.by_class, orient="index")


def _counts(series: pd.Series) -> dict[str, int]:
    counts = series.value_counts()  # a categorical counts its unused categories too (as 0)
    return {str(k): int(v) for k, v in counts[counts > 0].sort_index().items()}


def summarize(df: pd.DataFrame, *, fleet: str, policy: str, utilization: dict[str, float],
              idle_energy_kwh: float, idle_energy_usd: float, privacy_violations: int,
              model_loads: dict[str, int], evictions: dict[str, int]) -> SimSummary:
    done = df[df["status"] == "completed"]
    has_deadline = df["deadline_met"].notna()
    misses = int((~df.loc[has_deadline, "deadline_met"].astype(bool)).sum())
    cloud = df[df["target_kind"] == "cloud"]
    start = float(df["arrival"].min()) if len(df) else 0.0
    end = float(done["finish"].max()) if len(done) else start
    makespan = max(end - start, 0.0)
    local = df[df["target_kind"] != "cloud"]
    task_kwh = float(df["energy_kwh"].sum())
    return SimSummary(
        fleet=fleet, policy=policy, arrived=len(df), completed=len(done),
        rejected=int((df["status"] == "rejected").sum()),
        failed=int((df["status"] == "failed").sum()),
        in_flight=int((df["status"] == "in_flight").sum()),
        latency_s=_pct(done["latency"].to_numpy(dtype=float)),
        ttft_s=_pct(done["ttft"].to_numpy(dtype=float)),
        wait_s=_pct(done["wait"].to_numpy(dtype=float)),
        deadline_miss_rate=misses / int(has_deadline.sum()) if has_deadline.any() else 0.0,
        throughput_per_s=len(done) / makespan if makespan > 0 else 0.0,
        makespan_s=makespan,
        cloud_spend_usd=float(cloud["cost_usd"].sum()),
        cloud_spend_by_offer={str(k): float(v) for k, v in cloud.groupby("target")["cost_usd"].sum().items()},
        cloud_spend_by_account={},
        energy_kwh=task_kwh + idle_energy_kwh,
        energy_cost_usd=float(local["cost_usd"].sum()) + idle_energy_usd,
        task_energy_kwh=task_kwh,
        idle_energy_kwh=idle_energy_kwh,
        utilization=utilization,
        retried_tasks=int((df["retries"] > 0).sum()),
        retries=int(df["retries"].sum()),
        retry_reasons=_counts(df.loc[df["retries"] > 0, "retry_reason"]),
        rejected_reasons=_counts(df.loc[df["status"] == "rejected", "reason"]),
        failed_reasons=_counts(df.loc[df["status"] == "failed", "reason"]),
        deferrals=int(df["defers"].sum()),
        privacy_violations=privacy_violations,
        by_class=_class_rows(df),
        model_loads=model_loads,
        evictions=evictions,
    )


def _grid(df: pd.DataFrame) -> np.ndarray:
    finish = df["finish"].to_numpy(dtype=float)
    finish = finish[~np.isnan(finish)]
    end = float(finish.max()) if len(finish) else 1.0
    return np.linspace(0.0, max(end, 1e-9), SERIES_POINTS)


def queue_series(df: pd.DataFrame) -> pd.DataFrame:
    """Tasks waiting (released, not started) and running, sampled over the run."""
    t = _grid(df)
    release = np.sort(df["release"].dropna().to_numpy(dtype=float))
    started = df["start"].to_numpy(dtype=float)
    left_queue = np.sort(np.where(np.isnan(started), df["finish"].to_numpy(dtype=float), started))
    left_queue = left_queue[~np.isnan(left_queue)]
    done = df[df["status"] == "completed"]
    starts = np.sort(done["start"].to_numpy(dtype=float))
    finishes = np.sort(done["finish"].to_numpy(dtype=float))
    queued = np.searchsorted(release, t, "right") - np.searchsorted(left_queue, t, "right")
    running = np.searchsorted(starts, t, "right") - np.searchsorted(finishes, t, "right")
    return pd.DataFrame({"t": t, "queued": np.maximum(queued, 0), "running": running})


def utilization_series(df: pd.DataFrame, slots: dict[str, int]) -> pd.DataFrame:
    """Per-node busy fraction in each interval of the grid (completed work only)."""
    t = _grid(df)
    out = {"t": t[1:]}
    done = df[(df["status"] == "completed") & (df["target_kind"] == "node")]
    width = np.diff(t)
    for node, n_slots in slots.items():
        g = done[done["target"] == node]
        times = np.concatenate([g["start"].to_numpy(dtype=float), g["finish"].to_numpy(dtype=float)])
        steps = np.concatenate([np.ones(len(g)), -np.ones(len(g))])
        order = np.argsort(times, kind="stable")
        times, level = times[order], np.cumsum(steps[order])
        # area under the running-count step function, sampled at the grid
        area = np.concatenate([[0.0], np.cumsum(level[:-1] * np.diff(times))]) if len(times) else np.zeros(0)
        at = np.interp(t, times, area, left=0.0, right=area[-1] if len(area) else 0.0) if len(times) else np.zeros_like(t)
        out[node] = np.clip(np.diff(at) / (width * max(n_slots, 1)), 0.0, 1.0)
    return pd.DataFrame(out)
