"""Days of a trace: representative-day sampling for long traces and day subsets for the twin.

A long trace is cut into `k` chronological blocks of whole days; from each block the day
closest to the block's mean (requests, tokens, private share; standardized) is replayed and
stands for its block. The block's total is estimated with a ratio estimator (the day's
figure per request times the block's requests), which removes most of the error that comes
from the sampled day being busier or quieter than its block.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from heddle.advisor.workload import SECONDS_PER_DAY

__all__ = ["DayPlan", "period_of", "plan_days", "row_days", "subset_days"]


@dataclass(slots=True)
class DayPlan:
    """Which trace days the twin replays and what each stands for."""

    days: np.ndarray  # trace day replayed, in replay order
    weight_requests: np.ndarray  # requests of the block the day stands for
    day_requests: np.ndarray  # requests on the day itself
    weight_days: np.ndarray  # days of the block the day stands for (a partial last day < 1)
    n_days: int  # periods in the whole trace
    sampled: bool
    period_s: float = SECONDS_PER_DAY  # one replay slot: a day (an hour for traces < 2 days)

    @property
    def periods(self) -> int:
        """Periods the trace covers: the size of one bootstrap resample."""
        return max(1, round(float(self.weight_days.sum()) * SECONDS_PER_DAY / self.period_s))

    @property
    def scale(self) -> np.ndarray:
        """Per replayed day: multiply its totals by this to estimate its block's totals."""
        return self.weight_requests / np.maximum(self.day_requests, 1)


SHORT_TRACE_DAYS = 2.0
"""Traces shorter than two days are cut into hours, not days: one or two days would give the
bootstrap nothing to resample."""


def period_of(df: pd.DataFrame) -> float:
    """The replay slot length for a trace: a day, or an hour for a short trace."""
    span_s = float(df["arrival_s"].max())
    return SECONDS_PER_DAY if span_s >= SHORT_TRACE_DAYS * SECONDS_PER_DAY else 3600.0


def row_days(df: pd.DataFrame, period_s: float = SECONDS_PER_DAY) -> np.ndarray:
    """Trace period (day) of each row; a pipeline belongs wholly to the period its first stage
    arrived in, so a sampled day never holds half a pipeline."""
    day = (df["arrival_s"].to_numpy(np.float64) // period_s).astype(np.int64)
    if "pipeline_id" in df.columns:
        pid = df["pipeline_id"].astype(str).to_numpy()
        inpipe = pid != ""
        if inpipe.any():
            first = pd.Series(day[inpipe]).groupby(pid[inpipe]).transform("min").to_numpy()
            day = day.copy()
            day[inpipe] = first
    return day


def _features(df: pd.DataFrame, day: np.ndarray, n_days: int) -> np.ndarray:
    count = np.bincount(day, minlength=n_days).astype(np.float64)
    tokens = np.bincount(day, weights=(df["prompt_tokens"].to_numpy(np.float64)
                                       + df["output_tokens"].to_numpy(np.float64)), minlength=n_days)
    private = np.bincount(day, weights=(df["privacy"].astype(str).to_numpy() != "public")
                          .astype(np.float64), minlength=n_days)
    f = np.column_stack([count, tokens / np.maximum(count, 1), private / np.maximum(count, 1)])
    sd = f.std(axis=0)
    return (f - f.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


def plan_days(df: pd.DataFrame, k: int) -> DayPlan:
    """All days when the trace has at most `k` (or k == 0); else one medoid day per block.
    A trace shorter than two days is replayed whole and cut into hours."""
    period = period_of(df)
    day = row_days(df, period)
    n_days = int(day.max()) + 1
    count = np.bincount(day, minlength=n_days).astype(np.float64)
    # the last period is usually partial: it counts for the fraction of it the trace covers
    end_s = max(float(df["arrival_s"].max()), 1.0)
    length = np.clip(end_s / period - np.arange(n_days), 1.0 / 24, 1.0) * period / SECONDS_PER_DAY
    if k <= 0 or n_days <= k or period < SECONDS_PER_DAY:
        days = np.flatnonzero(count > 0)
        return DayPlan(days, count[days], count[days], length[days], n_days, False, period)
    feats = _features(df, day, n_days)
    blocks = np.array_split(np.arange(n_days), k)
    chosen, w_req, d_req, w_days = [], [], [], []
    for b in blocks:
        b = b[count[b] > 0]
        if b.size == 0:
            continue
        centre = feats[b].mean(axis=0)
        pick = int(b[np.argmin(((feats[b] - centre) ** 2).sum(axis=1))])
        chosen.append(pick)
        w_req.append(count[b].sum())
        d_req.append(count[pick])
        w_days.append(float(length[b].sum()))
    return DayPlan(np.array(chosen), np.array(w_req), np.array(d_req), np.array(w_days), n_days, True)


def subset_days(df: pd.DataFrame, days: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    """The rows of `days`, laid back to back (replay slot s starts at s * 86400 s).

    Returns the frame (sorted by arrival) and, for each of its rows, the replay slot.
    """
    day = row_days(df)
    slot_of = np.full(int(day.max()) + 1, -1, dtype=np.int64)
    slot_of[days] = np.arange(days.size)
    slot = slot_of[day]
    keep = slot >= 0
    out = df.loc[keep].copy()
    shift = (slot[keep] - day[keep]) * SECONDS_PER_DAY
    out["arrival_s"] = out["arrival_s"].to_numpy(np.float64) + shift
    order = np.argsort(out["arrival_s"].to_numpy(), kind="stable")
    out = out.iloc[order].reset_index(drop=True)
    return out, slot[keep][order]
