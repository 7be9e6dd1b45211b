"""`SimResult`: the per-task records, the summary, the time series, and writing them to disk."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from heddle.sim.metrics import SimSummary

__all__ = ["SimResult"]


def _clean(value):
    """JSON has no NaN: write null instead."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


@dataclass(slots=True)
class SimResult:
    """What one twin run produced.

    `records` has one row per task that arrived: task_id, kind, arrival, release, start,
    finish, target, target_kind, wait, service, latency, ttft, cost_usd, energy_kwh,
    deadline_s, deadline_met, privacy, owner, pipeline_id, status, retries, defers, reason,
    retry_reason.
    """

    summary: SimSummary
    records: pd.DataFrame
    queue: pd.DataFrame  # t, queued, running
    utilization: pd.DataFrame  # t, one column per node (busy fraction)
    fleet_events: list[tuple[float, str, str]] = field(default_factory=list)
    seed: int = 0

    @property
    def cloud_spend_usd(self) -> float:
        return self.summary.cloud_spend_usd

    def metrics(self) -> dict:
        """The summary plus the queue-length series, JSON-ready."""
        data = self.summary.to_dict()
        data["seed"] = self.seed
        data["queue_length"] = {c: self.queue[c].tolist() for c in self.queue.columns}
        data["fleet_events"] = [list(e) for e in self.fleet_events]
        return _clean(data)

    def write(self, out_dir: str | Path, *, plots: bool = True) -> list[Path]:
        """Write metrics.json, records.csv, queue.csv, utilization.csv and PNG plots."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        written = [out / "metrics.json", out / "records.csv", out / "queue.csv", out / "utilization.csv"]
        written[0].write_text(json.dumps(self.metrics(), indent=2, sort_keys=True))
        self.records.to_csv(written[1], index=False)
        self.queue.to_csv(written[2], index=False)
        self.utilization.to_csv(written[3], index=False)
        if plots:
            from heddle.sim.plots import write_plots

            written += write_plots(self, out)
        return written
