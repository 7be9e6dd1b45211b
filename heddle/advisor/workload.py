"""Workload analysis: what the trace asks for, over days to months.

Rate and its growth trend, the diurnal and weekly shape, token, model and privacy mix. Pure
pandas/numpy over a trace DataFrame (the `heddle.traces` column schema); what went to the cloud
and why is added from a baseline twin run by `heddle.advisor.baseline`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from heddle.advisor.errors import WorkloadError

__all__ = ["REQUIRED_COLUMNS", "SECONDS_PER_DAY", "WorkloadProfile", "analyze", "day_index"]

SECONDS_PER_DAY = 86_400.0
"""Length of one trace day; day d covers arrival_s in [d * 86400, (d + 1) * 86400)."""

MIN_DAYS_FOR_TREND = 7
"""Fewer full days than a week cannot separate a trend from the weekly cycle: report 0 growth."""

TREND_SIGNIFICANCE = 2.0
"""A fitted daily growth smaller than 2 standard errors (about 95% two-sided) reads as flat."""

MAX_GROWTH_PER_YEAR = 10.0
"""A short trace of a ramp-up can fit absurd yearly growth (+5%/day is x50 million a year);
beyond 11x a year the extrapolation is capped and the report says so."""

MIN_SPAN_S = 3600.0
"""The shortest span of arrivals (the last one's time) the advisor scales to a month: one
replay period (an hour; a day for traces of two days or more). Below it a trace holds no rate
to scale: a workload file whose items all arrive at 0 s would read as one hour of demand."""

REQUIRED_COLUMNS = (
    "arrival_s", "kind", "model", "quant", "prompt_tokens", "output_tokens",
    "privacy", "owner", "deadline_s",
)


@dataclass(slots=True)
class WorkloadProfile:
    """Summary of a trace a person can read: each field is one line of the report."""

    n_requests: int
    duration_days: float
    n_days: int
    requests_per_day: float
    daily_requests: np.ndarray  # count per trace day
    growth_per_month: float  # fitted from daily counts (log-linear), 0 if too short
    growth_per_year: float
    diurnal_share: np.ndarray  # 24 shares of requests per hour of day (sum 1)
    weekly_share: np.ndarray  # 7 shares per day of the trace week (day 0 = the trace's first day)
    peak_hour_requests_per_s: float  # the design percentile of hourly rates
    prompt_tokens_pct: dict[str, float]  # p50/p90/p99
    output_tokens_pct: dict[str, float]
    tokens_per_day: float
    model_mix: dict[str, float]  # "model:quant" (or "processor") -> share
    privacy_mix: dict[str, float]
    owner_mix: dict[str, float]
    deadline_share: float  # share of requests that carry a deadline
    personal_owners: tuple[str, ...] = ()
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "n_requests": self.n_requests,
            "duration_days": round(self.duration_days, 3),
            "requests_per_day": round(self.requests_per_day, 2),
            "growth_per_month": round(self.growth_per_month, 4),
            "growth_per_year": round(self.growth_per_year, 4),
            "daily_requests": self.daily_requests.tolist(),
            "diurnal_share": [round(x, 4) for x in self.diurnal_share],
            "weekly_share": [round(x, 4) for x in self.weekly_share],
            "peak_hour_requests_per_s": round(self.peak_hour_requests_per_s, 4),
            "prompt_tokens_pct": self.prompt_tokens_pct,
            "output_tokens_pct": self.output_tokens_pct,
            "tokens_per_day": round(self.tokens_per_day, 1),
            "model_mix": self.model_mix,
            "privacy_mix": self.privacy_mix,
            "owner_mix": self.owner_mix,
            "deadline_share": round(self.deadline_share, 4),
            "personal_owners": list(self.personal_owners),
            "notes": self.notes,
        }


def day_index(df: pd.DataFrame) -> np.ndarray:
    """Trace day of every row (0-based)."""
    return (df["arrival_s"].to_numpy(np.float64) // SECONDS_PER_DAY).astype(np.int64)


def _check(df: pd.DataFrame) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise WorkloadError(f"trace lacks column(s) {missing}; expected the heddle.traces schema")
    if len(df) == 0:
        raise WorkloadError("trace is empty: nothing to advise on")
    arr = df["arrival_s"].to_numpy(np.float64)
    if not np.all(np.isfinite(arr)) or arr.min() < 0:
        raise WorkloadError("trace column arrival_s: expected finite seconds >= 0")
    if arr.max() < MIN_SPAN_S:
        raise WorkloadError(
            f"column arrival_s: the last arrival is at {arr.max():g} s; expected arrivals over "
            f"at least {MIN_SPAN_S:g} s (monthly figures are scaled from their span): give the "
            "items arrival_s over the time they stand for, or use a recorded or synthetic trace")


def _shares(series: pd.Series) -> dict[str, float]:
    counts = series.value_counts(normalize=True, sort=True)
    return {str(k): round(float(v), 4) for k, v in counts.items()}


def _pct(values: np.ndarray) -> dict[str, float]:
    if values.size == 0:
        return {"p50": 0.0, "p90": 0.0, "p99": 0.0}
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99)}


def _growth_per_day(daily: np.ndarray) -> tuple[float, float]:
    """Daily compound growth and its standard error, from least squares on log(count + 1).

    Only whole days count (the last, partial day would read as a drop). With two weeks or
    more, day-of-week dummies absorb the weekly cycle, which would otherwise masquerade as a
    trend.
    """
    n = daily.size
    if n < MIN_DAYS_FOR_TREND:
        return 0.0, math.inf
    t = np.arange(n, dtype=np.float64)
    cols = [np.ones(n), t - t.mean()]
    if n >= 2 * 7:
        cols += [(np.arange(n) % 7 == k).astype(np.float64) for k in range(1, 7)]
    x = np.column_stack(cols)
    yv = np.log(daily.astype(np.float64) + 1.0)
    coef, *_ = np.linalg.lstsq(x, yv, rcond=None)
    dof = n - x.shape[1]
    if dof <= 0:
        return 0.0, math.inf
    resid = yv - x @ coef
    sigma2 = float(resid @ resid) / dof
    se = math.sqrt(sigma2 / float(((t - t.mean()) ** 2).sum()))
    return float(math.expm1(coef[1])), se


def analyze(df: pd.DataFrame, design_percentile: float = 90.0) -> WorkloadProfile:
    """Profile a trace (a `Trace.df`): raises `WorkloadError` if it cannot be read."""
    _check(df)
    arr = df["arrival_s"].to_numpy(np.float64)
    duration_s = max(float(arr.max()), 1.0)
    days = day_index(df)
    n_days = int(days.max()) + 1
    daily = np.bincount(days, minlength=n_days)
    full_days = int(duration_s // SECONDS_PER_DAY)
    notes: list[str] = []
    g_day, se = _growth_per_day(daily[:full_days])
    if full_days < MIN_DAYS_FOR_TREND:
        notes.append(f"trace covers {duration_s / SECONDS_PER_DAY:.2f} days: too short for a trend")
    elif abs(math.log1p(g_day)) < TREND_SIGNIFICANCE * se:
        notes.append(f"fitted trend {g_day * 100:+.2f}%/day is within noise (SE {se * 100:.2f}%/day): "
                     "treated as flat")
        g_day = 0.0
    g_year = (1 + g_day) ** 365.25 - 1
    if g_year > MAX_GROWTH_PER_YEAR:
        notes.append(f"fitted trend {g_year:+.0%}/year is not a rate to plan on: capped at "
                     f"{MAX_GROWTH_PER_YEAR:+.0%}/year")
        g_day = (1 + MAX_GROWTH_PER_YEAR) ** (1 / 365.25) - 1

    hour_of_day = ((arr % SECONDS_PER_DAY) // 3600).astype(np.int64)
    diurnal = np.bincount(hour_of_day, minlength=24)[:24].astype(np.float64)
    weekly = np.bincount(days % 7, minlength=7)[:7].astype(np.float64)
    hourly = np.bincount((arr // 3600).astype(np.int64)).astype(np.float64) / 3600.0

    kind = df["kind"].astype(str)
    mix_key = np.where(kind == "llm", df["model"].astype(str) + ":" + df["quant"].astype(str), "processor")
    prompt = df["prompt_tokens"].to_numpy(np.float64)
    output = df["output_tokens"].to_numpy(np.float64)
    llm = (kind == "llm").to_numpy()
    privacy = df["privacy"].astype(str)
    personal_owners = tuple(sorted(set(df.loc[privacy == "personal", "owner"].astype(str))))
    span_days = duration_s / SECONDS_PER_DAY
    return WorkloadProfile(
        n_requests=len(df),
        duration_days=span_days,
        n_days=n_days,
        requests_per_day=len(df) / max(span_days, 1.0 / 24),
        daily_requests=daily,
        growth_per_month=float((1 + g_day) ** (365.25 / 12) - 1),
        growth_per_year=float((1 + g_day) ** 365.25 - 1),
        diurnal_share=diurnal / diurnal.sum(),
        weekly_share=weekly / weekly.sum(),
        peak_hour_requests_per_s=float(np.percentile(hourly, design_percentile)),
        prompt_tokens_pct=_pct(prompt[llm]),
        output_tokens_pct=_pct(output[llm]),
        tokens_per_day=float((prompt[llm].sum() + output[llm].sum()) / max(span_days, 1.0 / 24)),
        model_mix=_shares(pd.Series(mix_key)),
        privacy_mix=_shares(privacy),
        owner_mix=_shares(df["owner"].astype(str)),
        deadline_share=float(np.isfinite(df["deadline_s"].to_numpy(np.float64)).mean()),
        personal_owners=personal_owners,
        notes=notes,
    )
