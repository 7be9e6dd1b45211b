"""The report's charts as PNG bytes (matplotlib, Agg backend: no display needed).

cost over time per candidate, payback distribution, utilization before/after, workload shape.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from heddle.advisor.advise import AdvisorReport
from heddle.advisor.roi import Evaluation

__all__ = ["CHART_TITLES", "render_charts"]

CHART_TITLES = {
    "cost_over_time": "Cumulative cost over time per candidate",
    "payback_distribution": "Payback distribution (bootstrapped days x growth scenarios)",
    "utilization": "Utilization before / after",
    "workload": "Workload: requests per day and hour-of-day shape",
}
MAX_LINES = 6
"""More lines than this make the cost chart unreadable; the best-ranked ones are drawn."""


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _cost_over_time(r: AdvisorReport) -> bytes:
    months = np.arange(r.settings.horizon_months + 1)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for e in [r.baseline, *r.evaluations[: MAX_LINES - 1]]:
        cum = e.candidate.purchase_usd + e.operating_usd_per_month["total"] * months
        ax.plot(months, cum, lw=3 if e is r.recommended else 1.5, label=e.candidate.name[:48])
    ax.set_xlabel("months from purchase")
    ax.set_ylabel("USD (purchase + cloud + energy + missed deadlines)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    return _png(fig)


def _payback(r: AdvisorReport) -> bytes:
    fig, ax = plt.subplots(figsize=(8, 4))
    shown = [e for e in ([r.recommended] if r.recommended else []) + r.evaluations
             if e is not None and e.uncertainty is not None]
    seen: list[Evaluation] = []
    for e in shown:
        if e in seen or len(seen) == 3:
            continue
        seen.append(e)
        ax.hist(e.uncertainty.samples, bins=40, alpha=0.5, label=e.candidate.name[:48])
    if not seen:
        ax.text(0.5, 0.5, "no purchase candidate replayed", ha="center", transform=ax.transAxes)
    ax.set_xlabel("payback months")
    ax.set_ylabel("bootstrap samples")
    ax.grid(alpha=0.3)
    if seen:
        ax.legend(fontsize=7)
    return _png(fig)


def _utilization(r: AdvisorReport) -> bytes:
    after = r.recommended or (r.evaluations[0] if r.evaluations else r.baseline)
    before_u, after_u = r.baseline.replay.utilization, after.replay.utilization
    names = sorted(set(before_u) | set(after_u))
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(names)), 4))
    ax.bar(x - 0.2, [before_u.get(n, 0.0) * 100 for n in names], 0.4, label="current fleet")
    ax.bar(x + 0.2, [after_u.get(n, 0.0) * 100 for n in names], 0.4, label=after.candidate.name[:48])
    ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("busy share of slot time (%)")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7)
    return _png(fig)


def _workload(r: AdvisorReport) -> bytes:
    p = r.profile
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.5))
    a1.bar(np.arange(p.daily_requests.size), p.daily_requests)
    a1.set_xlabel("trace day")
    a1.set_ylabel("requests")
    growth = "flat" if p.growth_per_year == 0 else f"{p.growth_per_year:+.0%}/yr"
    a1.set_title(f"requests per day (trend: {growth})", fontsize=9)
    a2.plot(np.arange(24), p.diurnal_share * 100, marker="o")
    a2.set_xlabel("hour of day")
    a2.set_ylabel("% of requests")
    a2.set_title("diurnal shape", fontsize=9)
    for a in (a1, a2):
        a.grid(alpha=0.3)
    return _png(fig)


def render_charts(report: AdvisorReport) -> dict[str, bytes]:
    """Every chart of the report, by name (see CHART_TITLES)."""
    charts = {
        "cost_over_time": _cost_over_time(report),
        "payback_distribution": _payback(report),
        "utilization": _utilization(report),
        "workload": _workload(report),
    }
    return charts
