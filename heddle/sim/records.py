"""Per-task records kept in preallocated typed arrays during a run, a DataFrame at the end.

`array.array` columns, not numpy arrays, during the run: the twin reads and writes one
element at a time, and an `array` element costs about half a numpy scalar write and a third of
a read (and yields a Python float, whose arithmetic is cheaper than a numpy scalar's); at the
end numpy reads the same buffers without a copy (a list would need a conversion pass).

Status codes are small integers in the loop and labels (categoricals) in the DataFrame. Every task that
arrived ends the run with exactly one of `completed`, `rejected`, `failed` (retries exhausted)
or, when the run stops at a horizon, `in_flight`.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass

import numpy as np
import pandas as pd

from heddle.sim.workload import Workload

__all__ = ["STATUS_NAMES", "ST_COMPLETED", "ST_FAILED", "ST_IN_FLIGHT", "ST_REJECTED", "Records"]

ST_PENDING, ST_COMPLETED, ST_REJECTED, ST_FAILED, ST_IN_FLIGHT = 0, 1, 2, 3, 4
STATUS_NAMES = ("pending", "completed", "rejected", "failed", "in_flight")
KIND_NONE, KIND_NODE, KIND_CLOUD = 0, 1, 2
_KIND_NAMES = ("", "node", "cloud")
_PRIVACY_NAMES = ("public", "sensitive", "personal")
_TASK_KIND_NAMES = ("llm", "processor")


def _labels(codes: np.ndarray, names) -> pd.Categorical | np.ndarray:
    """`names[codes]` as a categorical with the categories in lexical order (so sorting and
    comparing behave as on strings, and `==` compares small integers, not strings)."""
    names = np.asarray(list(names), dtype=object)
    if len(set(names.tolist())) != len(names):  # not a valid category list: plain strings
        return names[codes]
    order = np.argsort(names.astype(str), kind="stable")
    # int8 codes when they fit, as pandas stores them: the gather writes 1 byte a row, not 8
    rank = np.empty(len(names), dtype=np.int8 if len(names) < np.iinfo(np.int8).max else np.int64)
    rank[order] = np.arange(len(names))
    return pd.Categorical.from_codes(rank[codes], categories=names[order].tolist())


def _text(names: list[str], codes: np.ndarray) -> pd.api.extensions.ExtensionArray | np.ndarray | str:
    """`names[codes]` as the column pandas infers from those strings (its "str" dtype), built
    by a take from the small table of names rather than a check and copy of every row. No
    names (an empty workload): "" on every row; no rows: an empty object column (what pandas
    infers from no strings)."""
    if not names:
        return ""
    if len(codes) == 0:
        return np.array(names, dtype=object)[codes]
    return pd.array(np.array(names, dtype=object), dtype="str").take(codes)


@dataclass(slots=True)
class Records:
    """Columns indexed by the workload's row (task) index."""

    release_s: array  # 'd'
    start_s: array
    finish_s: array  # completion, or the time the task reached its terminal state
    service_s: array
    ttft_s: array
    cost_usd: array
    energy_kwh: array
    target: array  # 'i': target index (nodes, then offers), -1 none
    target_kind: array  # 'b': KIND_*
    status: array  # 'b': ST_*
    retries: array  # 'h'
    defers: array  # 'i'
    reason: array  # 'i' into `reasons`: why rejected/failed, else the last deferral
    retry_reason: array  # 'i' into `reasons`: why the last attempt was lost
    reasons: list[str]
    _reason_code: dict[str, int]

    @classmethod
    def empty(cls, n: int) -> Records:
        nan = array("d", [math.nan]) * n
        zeros = array("d", [0.0]) * n

        def ints(code: str, value: int = 0) -> array:
            return array(code, [value]) * n

        return cls(
            release_s=nan, start_s=array("d", nan), finish_s=array("d", nan), service_s=array("d", nan),
            ttft_s=array("d", nan), cost_usd=zeros, energy_kwh=array("d", zeros),
            target=ints("i", -1), target_kind=ints("b"), status=ints("b"), retries=ints("h"),
            defers=ints("i"), reason=ints("i"), retry_reason=ints("i"),
            reasons=[""], _reason_code={"": 0},
        )

    def status_array(self) -> np.ndarray:
        """The status column as numpy (a view: no copy)."""
        return np.asarray(self.status)

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
        """The per-task DataFrame, one row per task that arrived (in arrival order). Every
        column is a fresh array, so the DataFrame takes them as they are (no copy)."""
        idx = np.flatnonzero(arrived)

        def col(values: array) -> np.ndarray:  # numpy reads the array's buffer and type code
            return np.asarray(values)[idx]

        arrival = w.arrival_s[idx]
        start, finish = col(self.start_s), col(self.finish_s)
        release = col(self.release_s)
        status = col(self.status)
        deadline_abs = arrival + w.deadline_rel_s[idx]
        has_deadline = ~np.isnan(deadline_abs)
        done = status == ST_COMPLETED
        met = np.where(done, finish <= deadline_abs + 1e-9, False)
        deadline_met = pd.arrays.BooleanArray(np.where(has_deadline, met, False), ~has_deadline)
        names = list(target_names) + [""]
        tgt = col(self.target)
        task_id = np.array(w.task_id, dtype=object)
        return pd.DataFrame({
            "task_id": task_id if len(idx) == len(task_id) else task_id[idx],
            "kind": _labels(w.kind[idx], _TASK_KIND_NAMES),
            "arrival": arrival,
            "release": release,
            "start": start,
            "finish": finish,
            "target": _labels(np.where(tgt < 0, len(names) - 1, tgt), names),
            "target_kind": _labels(col(self.target_kind), _KIND_NAMES),
            "wait": start - release,
            "service": col(self.service_s),
            "latency": finish - arrival,
            "ttft": col(self.ttft_s),
            "cost_usd": col(self.cost_usd),
            "energy_kwh": col(self.energy_kwh),
            "deadline_s": deadline_abs,
            "deadline_met": deadline_met,
            "privacy": _labels(w.privacy[idx], _PRIVACY_NAMES),
            "owner": _text(w.owners, w.owner_code[idx]),
            "pipeline_id": _text(w.pipelines, w.pipeline_code[idx]),
            "status": _labels(status, STATUS_NAMES),
            "retries": col(self.retries),
            "defers": col(self.defers),
            "reason": _labels(col(self.reason), self.reasons),
            "retry_reason": _labels(col(self.retry_reason), self.reasons),
        }, copy=False)
