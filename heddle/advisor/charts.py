"""The report's charts as PNG bytes (matplotlib, Agg backend: no display needed).

cost over time per candidate, payback distribution, utilization before/after, workload shape.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np

from heddle.advisor.advise import AdvisorReport
from heddle.advisor.roi import Evaluation
from heddle.advisor.uncertainty import PAYBACK_CEILING_MONTHS

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
        cum = e.candidate.net_usd + e.operating_usd_per_month["total"] * months
        rec = e is r.recommended
        ax.plot(months, cum, lw=3 if rec else 1.5, zorder=3 if rec else 2,
                label=e.candidate.name[:48] + (" (recommended)" if rec else ""))
    ax.set_xlabel("months from purchase")
    ax.set_ylabel("USD: net price + cloud + energy\n+ value of work not done in time")
    ax.yaxis.set_major_formatter(matplotlib.ticker.StrMethodFormatter("{x:,.0f}"))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    return _png(fig)


PAYBACK_BINS = 30
"""Bars in the payback histogram (shared by every candidate drawn, so their bars line up)."""


def _payback(r: AdvisorReport) -> bytes:
    """The recommended candidate as solid bars, up to two runners-up as outlines, on the same
    bins; paybacks beyond the axis are gathered in one labelled bar at its right end."""
    fig, ax = plt.subplots(figsize=(8, 4))
    shown: list[Evaluation] = []
    for e in ([r.recommended] if r.recommended else []) + r.evaluations:
        if e is not None and e.uncertainty is not None and not any(e is x for x in shown):
            shown.append(e)
    shown = shown[:3]
    never = all(float(np.min(e.uncertainty.samples)) >= PAYBACK_CEILING_MONTHS for e in shown)
    if not shown or never:
        what = ("no purchase candidate replayed" if not shown else
                f"no candidate replayed pays back within {PAYBACK_CEILING_MONTHS:.0f} months\n"
                "in any bootstrapped month or growth scenario")
        ax.text(0.5, 0.5, what, ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return _png(fig)
    p90 = max(float(np.percentile(e.uncertainty.samples, 90)) for e in shown)
    # the axis fits the candidates drawn (not the horizon: a 1-month payback would be one sliver)
    hi = float(np.clip(1.3 * p90, 1.0, PAYBACK_CEILING_MONTHS))
    edges = np.linspace(0.0, hi, PAYBACK_BINS + 1)
    width = edges[1] - edges[0]
    over_x = hi + width
    for k, e in enumerate(shown):
        x = np.asarray(e.uncertainty.samples, dtype=np.float64)
        counts, _ = np.histogram(np.minimum(x, hi), bins=edges)
        counts[-1] -= int((x >= hi).sum())  # those go to the overflow bar instead
        share = 100.0 / x.size
        rec = e is r.recommended
        name = e.candidate.name[:48] + (" (recommended)" if rec else "")
        if rec or k == 0:
            ax.bar(edges[:-1], counts * share, width, align="edge", color="#2a7a2a" if rec else "#4a6fa5",
                   alpha=0.85, label=name, zorder=3)
            ax.bar([over_x], [(x >= hi).sum() * share], width, align="edge",
                   color="#2a7a2a" if rec else "#4a6fa5", alpha=0.85, zorder=3)
        else:
            step = ax.stairs(counts * share, edges, lw=1.8, label=name, zorder=4)
            ax.stairs([(x >= hi).sum() * share], [over_x, over_x + width], lw=1.8, zorder=4,
                      color=step.get_edgecolor())
    if r.settings.horizon_months < hi:
        ax.axvline(r.settings.horizon_months, color="#888", ls="--", lw=1,
                   label=f"{r.settings.horizon_months}-month horizon")
    ticks = [t for t in ax.get_xticks() if 0 <= t <= hi]
    ax.set_xticks(ticks + [over_x + width / 2], [f"{t:g}" for t in ticks] + [f">{hi:.0f}"])
    ax.set_xlim(0, over_x + width)
    ax.set_xlabel("payback months")
    ax.set_ylabel("% of bootstrap samples")
    ax.grid(alpha=0.3, zorder=0)
    handles, labels = ax.get_legend_handles_labels()
    first = sorted(range(len(labels)), key=lambda i: "(recommended)" not in labels[i])
    ax.legend([handles[i] for i in first], [labels[i] for i in first], fontsize=7, loc="best")
    return _png(fig)


def _utilization(r: AdvisorReport) -> bytes:
    after = r.recommended or (r.evaluations[0] if r.evaluations else r.baseline)
    before_u, after_u = r.baseline.replay.utilization, after.replay.utilization
    names = sorted(set(before_u) | set(after_u))
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(names)), 4))
    after_label = after.candidate.name[:48] + ("" if after is r.recommended or after is r.baseline
                                                 else " (best replayed, not recommended)")
    for dx, u, label in ((-0.2, before_u, "current fleet"), (0.2, after_u, after_label)):
        bars = ax.bar(x + dx, [u.get(n, 0.0) * 100 if n in u else np.nan for n in names], 0.4, label=label)
        ax.bar_label(bars, fmt="%.0f%%", fontsize=7)
    nodes = {n.id: n for n in after.candidate.fleet.nodes}
    ticks = [f"new {nodes[n].device.id} ({nodes[n].memory_gb:g} GB)" if n.startswith("buy-") and n in nodes
             else n for n in names]
    ax.set_xticks(x, ticks, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("busy share of slot time (%)")
    ax.grid(alpha=0.3, axis="y")
    # above the plot: inside it the legend would hide the tallest bars' labels
    ax.legend(fontsize=7, loc="lower left", bbox_to_anchor=(0.0, 1.01), ncol=2, frameon=False)
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
