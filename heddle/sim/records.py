"""Per-task records kept in preallocated numpy arrays during a run, a DataFrame at the end.

Status codes are small integers in the loop and strings in the DataFrame. Every task that
arrived ends the run with exactly one of `completed`, `rejected`, `failed` (retries exhausted)
or, when the run stops at a horizon, `in_flight`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from heddle.sim.workload import Workload

__all__ = ["STATUS_NAMES", "ST_COMPLETED", "ST_FAILED", "ST_IN_FLIGHT", "ST_REJECTED", "Records"]

ST_PENDING, ST_COMPLETED, ST_REJECTED, ST_FAILED, ST_IN_FLIGHT = 0, 1, 2, 3, 4
STATUS_NAMES = ("pending", "completed", "rejected", "failed", "in_flight")
KIND_NONE, KIND_NODE, KIND_CLOUD = 0, 1, 2
_KIND_NAMES = np.array(["", "node", "cloud"], dtype=object)
_PRIVACY_NAMES = np.array(["public", "sensitive", "personal"], dtype=object)
_TASK_KIND_NAMES = np.array(["llm", "processor"], dtype=object)


@dataclass(slots=True)
class Records:
    """Column arrays indexed by the workload's row (task) index."""

    release_s: np.ndarray
    start_s: np.ndarray
    finish_s: np.ndarray  # completion, or the time the task reached its terminal state
    service_s: np.ndarray
    ttft_s: np.ndarray
    cost_usd: np.ndarray
    energy_kwh: np.ndarray
    target: np.ndarray  # int32 target index (nodes, then offers), -1 none
    target_kind: np.ndarray  # int8 KIND_*
    status: np.ndarray  # int8 ST_*
    retries: np.ndarray  # int16
    defers: np.ndarray  # int32
    reason: np.ndarray  # int32 into `reasons`: why rejected/failed, else the last deferral
    retry_reason: np.ndarray  # int32 into `reasons`: why the last attempt was lost
    reasons: list[str]
    _reason_code: dict[str, int]

    @classmethod
    def empty(cls, n: int) -> Records:
        nan = np.full(n, np.nan)
        return cls(
            release_s=nan.copy(), start_s=nan.copy(), finish_s=nan.copy(), service_s=nan.copy(),
            ttft_s=nan.copy(), cost_usd=np.zeros(n), energy_kwh=np.zeros(n),
            target=np.full(n, -1, dtype=np.int32), target_kind=np.zeros(n, dtype=np.int8),
            status=np.zeros(n, dtype=np.int8), retries=np.zeros(n, dtype=np.int16),
            defers=np.zeros(n, dtype=np.int32), reason=np.zeros(n, dtype=np.int32),
            retry_reason=np.zeros(n, dtype=np.int32),
            reasons=[""], _reason_code={"": 0},
        )

    def code(self, text: str) -> int:
        code = self._reason_code.get(text)
        if code is None:
            code = len(self.reasons)
            self.reasons.append(text)
            self._reason_code[text] = code
        return code

    def set_reason(self, i: int, text: str) -> None:
        self.reason[i] = self.code(text)

    def frame(self, w: Workload, target_names: list[str], arrived: np.ndarray) -> pd.DataFrame:
        """The per-task DataFrame, one row per task that arrived (in arrival order)."""
        idx = np.flatnonzero(arrived)
        arrival = w.arrival_s[idx]
        start, finish = self.start_s[idx], self.finish_s[idx]
        release = self.release_s[idx]
        status = self.status[idx]
        deadline_abs = arrival + w.deadline_rel_s[idx]
        has_deadline = ~np.isnan(deadline_abs)
        done = status == ST_COMPLETED
        met = np.where(done, finish <= deadline_abs + 1e-9, False)
        deadline_met = pd.array(np.where(has_deadline, met, False), dtype="boolean")
        deadline_met[~has_deadline] = pd.NA
        names = np.array(list(target_names) + [""], dtype=object)
        tgt = self.target[idx]
        owners = np.array(w.owners, dtype=object)[w.owner_code[idx]] if w.owners else ""
        return pd.DataFrame({
            "task_id": np.array(w.task_id, dtype=object)[idx],
            "kind": _TASK_KIND_NAMES[w.kind[idx]],
            "arrival": arrival,
            "release": release,
            "start": start,
            "finish": finish,
            "target": names[np.where(tgt < 0, len(names) - 1, tgt)],
            "target_kind": _KIND_NAMES[self.target_kind[idx]],
            "wait": start - release,
            "service": self.service_s[idx],
            "latency": finish - arrival,
            "ttft": self.ttft_s[idx],
            "cost_usd": self.cost_usd[idx],
            "energy_kwh": self.energy_kwh[idx],
            "deadline_s": deadline_abs,
            "deadline_met": deadline_met,
            "privacy": _PRIVACY_NAMES[w.privacy[idx]],
            "owner": owners,
            "pipeline_id": np.array(w.pipelines, dtype=object)[w.pipeline_code[idx]] if w.pipelines else "",
            "status": np.array(STATUS_NAMES, dtype=object)[status],
            "retries": self.retries[idx],
            "defers": self.defers[idx],
            "reason": np.array(self.reasons, dtype=object)[self.reason[idx]],
            "retry_reason": np.array(self.reasons, dtype=object)[self.retry_reason[idx]],
        })
