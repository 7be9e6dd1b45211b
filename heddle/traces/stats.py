"""Trace statistics: rates, token percentiles, the diurnal profile, mixes, growth, burstiness.

Workflow-level figures count each single call once and each pipeline or council once (at its
first row), so they estimate the parameters `synthesize` was given. The estimators:
  diurnal amplitude A and peak hour: first Fourier coefficient of the arrival hour-of-day;
    for an intensity 1 + A cos(theta - peak) over whole days, E[exp(i theta)] = (A/2) e^(i peak).
  week-over-week growth: least squares of log(daily workflow count) on the day, needs >= 3
    whole days; growth = exp(7 * slope) - 1.
  dispersion: variance / mean of per-minute workflow counts (1 for a Poisson process).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from heddle.traces.schema import PRIVACIES
from heddle.traces.trace import Trace

__all__ = ["TraceStats", "trace_stats", "write_plots"]

PERCENTILES = (50, 90, 99)
"""Token percentiles reported."""


@dataclass(slots=True)
class TraceStats:
    rows: int
    workflows: int
    duration_h: float
    rows_per_h: float
    workflows_per_h: float
    kind_mix: dict[str, float]
    shape_mix: dict[str, float]  # single / pipeline / council (by workflow)
    privacy_rows: dict[str, float]
    privacy_workflows: dict[str, float]
    model_mix: dict[str, float]
    owners: dict[str, int]
    prompt_percentiles: dict[int, float]
    output_percentiles: dict[int, float]
    prompt_log_mean: float
    output_log_mean: float
    hourly_profile: list[float] = field(default_factory=list)  # 24 values, mean 1; [] if < 1 day
    diurnal_amplitude: float | None = None  # None: shorter than one day
    diurnal_peak_hour: float | None = None
    growth_per_week: float | None = None
    dispersion_per_min: float = float("nan")
    deadline_share: float = 0.0
    peak_rows_per_h: int = 0  # rows in the busiest clock hour since the start


def _mix(values: pd.Series) -> dict[str, float]:
    if not len(values):
        return {}
    counts = values.astype(str).value_counts(normalize=True, sort=True)
    return {str(k): float(v) for k, v in counts.items()}


def _shape(first: pd.DataFrame) -> pd.Series:
    stage = first["stage"].astype(str)
    shape = np.where(first["pipeline_id"].astype(str) == "", "single",
                     np.where(stage.str.startswith("r0-"), "council", "pipeline"))
    return pd.Series(shape)


def trace_stats(trace: Trace) -> TraceStats:
    df = trace.df
    first = df[(df["pipeline_id"] == "") | ~df["pipeline_id"].astype(str).duplicated()]
    arrival = first["arrival_s"].to_numpy()
    duration_h = max(trace.duration_s, 1e-9) / 3600.0
    llm = df[df["kind"] == "llm"]
    generative = llm[llm["output_tokens"] > 0]
    prompt = llm["prompt_tokens"].to_numpy()
    output = generative["output_tokens"].to_numpy()

    def pct(x: np.ndarray) -> dict[int, float]:
        return {p: float(np.percentile(x, p)) if len(x) else float("nan") for p in PERCENTILES}

    def log_mean(x: np.ndarray) -> float:
        x = x[x > 0]
        return float(np.log(x).mean()) if len(x) else float("nan")

    whole_days = int(trace.duration_s // 86_400)
    # a partial day would alias into the profile: use whole days only, none if under a day
    in_days = arrival[arrival < whole_days * 86_400]
    theta = 2 * np.pi * ((in_days / 3600.0) % 24.0) / 24.0
    coef = np.exp(1j * theta).mean() if len(theta) else None
    hours = np.bincount((in_days // 3600).astype(int) % 24, minlength=24)
    profile = (hours / hours.mean()).tolist() if hours.sum() else []

    growth = None
    if whole_days >= 3:
        daily = np.bincount((arrival // 86_400).astype(int), minlength=whole_days)[:whole_days]
        if (daily > 0).all():
            slope = np.polyfit(np.arange(whole_days), np.log(daily), 1)[0]
            growth = float(np.exp(7 * slope) - 1)

    minutes = np.bincount((arrival // 60).astype(int)) if len(arrival) else np.zeros(1)
    dispersion = float(minutes.var() / minutes.mean()) if minutes.mean() > 0 else float("nan")
    privacy_rows = {p: 0.0 for p in PRIVACIES} | _mix(df["privacy"])
    privacy_wf = {p: 0.0 for p in PRIVACIES} | _mix(first["privacy"])
    return TraceStats(
        rows=len(df),
        workflows=len(first),
        duration_h=duration_h,
        rows_per_h=len(df) / duration_h,
        workflows_per_h=len(first) / duration_h,
        kind_mix=_mix(df["kind"]),
        shape_mix=_mix(_shape(first)),
        privacy_rows=privacy_rows,
        privacy_workflows=privacy_wf,
        model_mix=_mix(df.loc[df["model"] != "", "model"]),
        owners={str(k): int(v) for k, v in df["owner"].astype(str).value_counts().items()},
        prompt_percentiles=pct(prompt),
        output_percentiles=pct(output),
        prompt_log_mean=log_mean(prompt),
        output_log_mean=log_mean(output),
        hourly_profile=profile,
        diurnal_amplitude=None if coef is None else float(2 * abs(coef)),
        diurnal_peak_hour=None if coef is None else float((np.angle(coef) / (2 * np.pi) * 24) % 24),
        growth_per_week=growth,
        dispersion_per_min=dispersion,
        deadline_share=float(df["deadline_s"].notna().mean()) if len(df) else 0.0,
        peak_rows_per_h=int(np.bincount((df["arrival_s"].to_numpy() // 3600).astype(int)).max())
        if len(df) else 0,
    )


def write_plots(trace: Trace, stats: TraceStats, directory: str | Path) -> list[Path]:
    """PNG plots (matplotlib, Agg backend): arrivals over time, hourly profile, tokens, privacy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    df = trace.df
    written: list[Path] = []

    def save(fig, name: str) -> None:
        path = out / name
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)

    fig, ax = plt.subplots(figsize=(9, 3.5))
    hours = df["arrival_s"].to_numpy() / 3600.0
    bins = max(1, min(500, int(np.ceil(stats.duration_h * 4))))
    ax.hist(hours, bins=bins, color="#3b6ea8")
    ax.set(xlabel="hours from trace start", ylabel="rows per bin",
           title=f"Arrivals ({stats.rows:,} rows, {stats.duration_h / bins * 60:.0f}-min bins)")
    save(fig, "arrivals.png")

    if stats.hourly_profile:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.bar(range(24), stats.hourly_profile, color="#e08a3c")
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.set(xlabel="hour of day", ylabel="workflows / mean",
               title=f"Diurnal profile (amplitude {stats.diurnal_amplitude:.2f})")
        save(fig, "diurnal.png")

    fig, ax = plt.subplots(figsize=(6, 3.5))
    llm = df[df["kind"] == "llm"]
    for name, color in (("prompt_tokens", "#3b6ea8"), ("output_tokens", "#c0392b")):
        values = llm[name].to_numpy()
        values = values[values > 0]
        if len(values):
            ax.hist(values, bins=np.logspace(0, np.log10(values.max() + 1), 60), alpha=0.6,
                    label=name, color=color)
    ax.set_xscale("log")
    ax.set(xlabel="tokens", ylabel="LLM rows", title="Token lengths")
    ax.legend()
    save(fig, "tokens.png")

    fig, ax = plt.subplots(figsize=(5, 3.5))
    keys = list(PRIVACIES)
    ax.bar(keys, [stats.privacy_rows.get(k, 0.0) for k in keys],
           color=["#27ae60", "#f39c12", "#c0392b"])
    ax.set(ylabel="share of rows", title="Privacy mix")
    save(fig, "privacy.png")
    return written
