"""Summary metrics of a run, computed once from the per-task records (vectorized).

Latency is finish - arrival of completed tasks (pipeline stages include the wait for the
stages they depend on); time to first token is measured from arrival too. Deadline-miss rate
counts, among tasks that have a deadline, those not completed by it (a rejected task with a
deadline missed it). Utilization is busy slot-seconds over slot-seconds present.

Each metric reads only the columns it needs (a boolean mask applied to the whole records frame
copies every column), and a class that covers every task reuses the run-wide numbers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

__all__ = ["SimSummary", "class_table", "queue_series", "summarize", "utilization_series"]

PERCENTILES = (50, 95, 99)
"""Percentiles reported for latency and time to first token."""

_PCT_KEYS = (*(f"p{p}" for p in PERCENTILES), "mean")
"""The keys of `_pct`'s result, in order."""

SERIES_POINTS = 200
"""Samples in the queue-length and utilization time series."""


def _pct(values: np.ndarray) -> dict[str, float]:
    values = values[~np.isnan(values)]  # a copy, so the percentile may reorder it in place
    if len(values) == 0:
        return {f"p{p}": float("nan") for p in PERCENTILES} | {"mean": float("nan")}
    mean = float(values.mean())  # before the partition reorders the values (summation order)
    qs = np.percentile(values, PERCENTILES, overwrite_input=True)
    return {f"p{p}": float(q) for p, q in zip(PERCENTILES, qs)} | {"mean": mean}


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


_CLASS_COLUMNS = ("status", "deadline_met", "latency", "ttft", "wait")
"""The records columns a per-class row is computed from."""


def _class_row(g: pd.DataFrame) -> dict[str, float]:
    """Counts, deadline-miss rate and latency/ttft/wait percentiles of the rows in `g`
    (which holds `_CLASS_COLUMNS`)."""
    completed = (g["status"] == "completed").to_numpy()
    has_deadline = g["deadline_met"].notna()
    misses = int((~g.loc[has_deadline, "deadline_met"].astype(bool)).sum())
    row = {
        "arrived": len(g), "completed": int(completed.sum()),
        "rejected": int((g["status"] == "rejected").sum()),
        "failed": int((g["status"] == "failed").sum()),
        "in_flight": int((g["status"] == "in_flight").sum()),
        "deadline_miss_rate": misses / int(has_deadline.sum()) if has_deadline.any() else 0.0,
    }
    for name in ("latency", "ttft", "wait"):
        for k, v in _pct(g[name].to_numpy(dtype=float)[completed]).items():
            row[f"{name}_{k}_s"] = v
    return row


def _one_class(keys: pd.Series) -> bool:
    """Whether every row has the same (present) value, read off a categorical's codes; False
    for other columns, which go through the groupby."""
    if not isinstance(keys.dtype, pd.CategoricalDtype) or len(keys) == 0:
        return False
    codes = keys.cat.codes.to_numpy()
    return bool(codes[0] >= 0 and (codes == codes[0]).all())


def _class_rows(df: pd.DataFrame, run: dict[str, float]) -> dict[str, dict[str, float]]:
    """Rows per privacy class and per task kind; `run` is `_class_row` of the whole frame,
    which is also the row of a class that every task belongs to (all public, all LLM)."""
    out: dict[str, dict[str, float]] = {}
    for column in ("privacy", "kind"):
        keys = df[column]
        if _one_class(keys):
            out[f"{column}={keys.iloc[0]}"] = dict(run)
            continue
        for value, g in df[[column, *_CLASS_COLUMNS]].groupby(column, sort=True):
            out[f"{column}={value}"] = _class_row(g)
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
    run = _class_row(df)  # counts, deadline misses and percentiles over every task
    done = (df["status"] == "completed").to_numpy()
    cloud = (df["target_kind"] == "cloud").to_numpy()
    start = float(df["arrival"].min()) if len(df) else 0.0
    finish = df["finish"][done]
    end = float(finish.max()) if len(finish) else start
    makespan = max(end - start, 0.0)
    task_kwh = float(df["energy_kwh"].sum())
    cost = df["cost_usd"]
    cloud_spend = df.loc[cloud, ["target", "cost_usd"]]
    return SimSummary(
        fleet=fleet, policy=policy, arrived=len(df), completed=run["completed"],
        rejected=run["rejected"], failed=run["failed"], in_flight=run["in_flight"],
        latency_s={k: run[f"latency_{k}_s"] for k in _PCT_KEYS},
        ttft_s={k: run[f"ttft_{k}_s"] for k in _PCT_KEYS},
        wait_s={k: run[f"wait_{k}_s"] for k in _PCT_KEYS},
        deadline_miss_rate=run["deadline_miss_rate"],
        throughput_per_s=run["completed"] / makespan if makespan > 0 else 0.0,
        makespan_s=makespan,
        cloud_spend_usd=float(cost[cloud].sum()),
        cloud_spend_by_offer={str(k): float(v) for k, v in cloud_spend.groupby("target")["cost_usd"].sum().items()},
        cloud_spend_by_account={},
        energy_kwh=task_kwh + idle_energy_kwh,
        energy_cost_usd=float(cost[(df["target_kind"] != "cloud").to_numpy()].sum()) + idle_energy_usd,
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
        by_class=_class_rows(df, run),
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
    # The times come nearly sorted (rows are in arrival order), which a stable sort (timsort)
    # handles in a few linear passes; the sorted values are the same whatever the algorithm.
    t = _grid(df)
    release = np.sort(df["release"].dropna().to_numpy(dtype=float), kind="stable")
    started = df["start"].to_numpy(dtype=float)
    left_queue = np.sort(np.where(np.isnan(started), df["finish"].to_numpy(dtype=float), started), kind="stable")
    left_queue = left_queue[~np.isnan(left_queue)]
    done = (df["status"] == "completed").to_numpy()
    starts = np.sort(started[done], kind="stable")
    finishes = np.sort(df["finish"].to_numpy(dtype=float)[done], kind="stable")
    queued = np.searchsorted(release, t, "right") - np.searchsorted(left_queue, t, "right")
    running = np.searchsorted(starts, t, "right") - np.searchsorted(finishes, t, "right")
    return pd.DataFrame({"t": t, "queued": np.maximum(queued, 0), "running": running})


def utilization_series(df: pd.DataFrame, slots: dict[str, int]) -> pd.DataFrame:
    """Per-node busy fraction in each interval of the grid (completed work only)."""
    t = _grid(df)
    out = {"t": t[1:]}
    done = ((df["status"] == "completed") & (df["target_kind"] == "node")).to_numpy()
    # the completed node rows' targets as integers: one integer compare per node below
    target, names = pd.factorize(df["target"][done])
    code = {name: k for k, name in enumerate(names)}
    start, finish = df["start"].to_numpy(dtype=float)[done], df["finish"].to_numpy(dtype=float)[done]
    width = np.diff(t)
    for node, n_slots in slots.items():
        mine = np.flatnonzero(target == code[node]) if node in code else np.zeros(0, dtype=np.intp)
        times = np.concatenate([start[mine], finish[mine]])
        steps = np.concatenate([np.ones(len(mine)), -np.ones(len(mine))])
        order = np.argsort(times, kind="stable")
        times, level = times[order], np.cumsum(steps[order])
        # area under the running-count step function, sampled at the grid
        area = np.concatenate([[0.0], np.cumsum(level[:-1] * np.diff(times))]) if len(times) else np.zeros(0)
        at = np.interp(t, times, area, left=0.0, right=area[-1] if len(area) else 0.0) if len(times) else np.zeros_like(t)
        out[node] = np.clip(np.diff(at) / (width * max(n_slots, 1)), 0.0, 1.0)
    return pd.DataFrame(out)
