"""PNG charts of a run: latency CDF per privacy class, utilization over time, cost breakdown.

Every chart names the fleet and the policy in its title. Utilization is drawn as one small
panel per node (a heat map beyond MAX_PANELS nodes), averaged over bins chosen so a run of any
length shows about TARGET_BINS of them, on an hours or days axis, with the scenario's events
(joins, drains, failures...) marked on the node they happened to.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from heddle.sim.result import SimResult

__all__ = ["utilization_bins", "write_plots"]

TARGET_BINS = 120
"""About this many time bins on the utilization chart: enough to show a daily rhythm in a
week, few enough that each bin averages many samples (1-minute samples of a week are 10,080
points per node, which draws as noise)."""
NICE_BINS_S = (60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
"""Bin widths a reader recognises: 1, 5, 10, 15, 30 minutes, 1, 2, 3, 6, 12 hours, 1 day."""
MAX_PANELS = 8
"""Up to this many nodes get a panel each; more are drawn as one heat map (rows = nodes)."""
DAYS_AXIS_AFTER_S = 2 * 86400
"""Runs longer than this get a days axis; shorter ones an hours axis."""
SPAN_STARTS = {"fail": "down", "leave": "down", "drain": "draining", "battery": "battery"}
"""Scenario events that start a stretch shaded on the utilization chart, and its state."""
SPAN_ENDS = {"join": ("down", "draining"), "ac": ("battery",)}
"""Scenario events that end those stretches (a node rejoins empty: no longer draining)."""
SPAN_COLOURS = {"down": "tab:red", "draining": "tab:orange", "battery": "tab:purple"}
SPAN_LABELS = {"down": "down (failed or left)", "draining": "draining", "battery": "on battery"}
TICK_EVENTS = ("throttle", "thermal")
"""Events drawn as a tick at the top of the node's panel (they change speed, not presence)."""


def _bin_width_s(duration_s: float) -> int:
    for width in NICE_BINS_S:
        if duration_s / width <= TARGET_BINS:
            return width
    return NICE_BINS_S[-1]


def _bin_label(width_s: int) -> str:
    if width_s < 3600:
        return f"{width_s // 60}-minute"
    if width_s < 86400:
        return f"{width_s // 3600}-hour"
    return "1-day"


def utilization_bins(util: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """The busy fraction per node averaged over readable bins; returns (frame, bin width s).

    The frame's `t` is each bin's start in seconds; a bin is the mean of the samples in it."""
    width = _bin_width_s(float(util["t"].max()) if len(util) else 0.0)
    binned = util.assign(t=(util["t"] // width) * width).groupby("t", as_index=False).mean()
    return binned, width


def _time_axis(duration_s: float) -> tuple[float, str]:
    return (86400.0, "days") if duration_s > DAYS_AXIS_AFTER_S else (3600.0, "hours")


def _utilization_chart(result: SimResult, path: Path, title: str) -> None:
    import matplotlib.pyplot as plt

    util = result.utilization
    nodes = list(util.columns[1:])
    binned, width = utilization_bins(util)
    duration = float(util["t"].max()) if len(util) else 0.0
    scale, unit = _time_axis(duration)
    t = binned["t"].to_numpy(dtype=float) / scale
    step = width / scale
    caption = f"busy fraction of slots, {_bin_label(width)} mean"
    if len(nodes) > MAX_PANELS:
        fig, ax = plt.subplots(figsize=(9, 0.3 * len(nodes) + 1.5))
        grid = binned[nodes].to_numpy(dtype=float).T
        im = ax.imshow(grid, aspect="auto", interpolation="nearest", vmin=0, vmax=1, cmap="viridis",
                       extent=(0, (t[-1] + step) if len(t) else 1, len(nodes) - 0.5, -0.5))
        ax.set_yticks(range(len(nodes)), nodes, fontsize=7)
        ax.set_xlabel(f"simulated time ({unit})")
        fig.colorbar(im, ax=ax, label=caption)
        _mark_events(result, [ax], nodes, scale, heat=True)
        ax.set_title(title)
    else:
        fig, axes = plt.subplots(len(nodes), 1, figsize=(9, 1.1 * len(nodes) + 1.3), sharex=True,
                                 squeeze=False)
        axes = list(axes[:, 0])
        for ax, node in zip(axes, nodes):
            busy = binned[node].to_numpy(dtype=float)
            ax.fill_between(t, busy, step="post", alpha=0.35, color="tab:blue", linewidth=0)
            ax.step(t, busy, where="post", color="tab:blue", linewidth=0.9)
            ax.set_ylim(0, 1.05)
            ax.set_yticks([0, 0.5, 1], ["0", "50%", "100%"], fontsize=7)
            ax.set_ylabel(f"{node}\n(mean {result.summary.utilization.get(node, float(util[node].mean())):.0%})",
                          rotation=0, ha="right", va="center", fontsize=8)
            ax.grid(alpha=0.3)
        _mark_events(result, axes, nodes, scale, heat=False)
        axes[-1].set_xlabel(f"simulated time ({unit})")
        axes[0].set_title(f"{title}\n{caption}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _event_spans(events: list[tuple[float, str, str]], end_s: float) -> list[tuple[float, float, str]]:
    """(start, end, state) of each stretch a node spent down, draining or on battery."""
    spans, open_at = [], {}
    for t_s, kind in sorted((t, k) for t, _, k in events):
        state = SPAN_STARTS.get(kind)
        if state is not None:
            open_at.setdefault(state, t_s)
        for closing in SPAN_ENDS.get(kind, ()):
            if closing in open_at:
                spans.append((open_at.pop(closing), t_s, closing))
    spans += [(t0, end_s, state) for state, t0 in open_at.items()]
    return spans


def _mark_events(result: SimResult, axes: list, nodes: list[str], scale: float, *, heat: bool) -> None:
    """Shade the stretches each node spent down, draining or on battery; tick other events.

    Lines per event would bury the data under a flaky scenario's hundreds of failures; a
    shaded span shows the same facts (and how long each lasted) at any density."""
    end_s = float(result.utilization["t"].max()) if len(result.utilization) else 0.0
    seen: set[str] = set()
    for row, node in enumerate(nodes):
        events = [e for e in result.fleet_events if e[1] == node]
        ax = axes[0] if heat else axes[row]
        low, high = (row - 0.5, row + 0.5) if heat else (0.0, 1.05)
        for t0, t1, state in _event_spans(events, end_s):
            label = None if state in seen else SPAN_LABELS[state]
            seen.add(state)
            ax.fill_between([t0 / scale, max(t1, t0 + 1) / scale], low, high, color=SPAN_COLOURS[state],
                            alpha=0.45 if heat else 0.25, linewidth=0, label=label)
        ticks = [t for t, _, kind in events if kind in TICK_EVENTS]
        if ticks:
            label = None if "throttle" in seen else "throttled / thermal change"
            seen.add("throttle")
            y = row - 0.35 if heat else 0.97
            ax.plot(np.array(ticks) / scale, [y] * len(ticks), "v", color="tab:brown", markersize=4, label=label)
    handles = [h for ax in dict.fromkeys(axes) for h in ax.get_legend_handles_labels()[0]]
    if handles:  # one legend for the figure, whichever panel each state first appeared on
        axes[0].legend(handles=handles, loc="upper right", fontsize=7, ncols=len(handles), framealpha=0.9)


def _latency_chart(result: SimResult, path: Path, title: str) -> None:
    import matplotlib.pyplot as plt

    done = result.records[result.records["status"] == "completed"]
    fig, ax = plt.subplots(figsize=(7, 4))
    for privacy, g in done.groupby("privacy", observed=True):
        lat = np.sort(g["latency"].to_numpy(dtype=float))
        if len(lat):
            ax.plot(lat, np.arange(1, len(lat) + 1) / len(lat), label=f"{privacy} (n={len(lat):,})")
    if len(done):
        p95 = float(np.percentile(done["latency"].to_numpy(dtype=float), 95))  # as the summary
        ax.axvline(p95, color="gray", linestyle=":", linewidth=1)
        ax.annotate(f"p95 {p95:.1f} s", (p95, 0.05), xytext=(3, 0), textcoords="offset points", fontsize=8,
                    color="gray")
        ax.legend(title="privacy", fontsize=8)
    else:
        ax.text(0.5, 0.5, "no task completed", transform=ax.transAxes, ha="center", va="center")
    ax.set_xscale("log")  # latencies span 0.1 s to hours; a completed task's is > 0
    ax.set_xlabel("latency, arrival to finish (s, log scale)")
    ax.set_ylabel("share of completed tasks")
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _cost_chart(result: SimResult, path: Path, title: str) -> None:
    import matplotlib.pyplot as plt

    df, s = result.records, result.summary
    parts = {f"cloud: {k}": v for k, v in s.cloud_spend_by_offer.items()}
    parts["local energy: tasks"] = float(df.loc[df["target_kind"] == "node", "cost_usd"].sum())
    parts["local energy: idle"] = max(s.energy_cost_usd - parts["local energy: tasks"], 0.0)
    names = sorted(parts, key=parts.__getitem__)
    values = [parts[n] for n in names]
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(names) + 1.6))
    bars = ax.barh(names, values, color=["tab:orange" if n.startswith("cloud") else "tab:blue" for n in names])
    ax.bar_label(bars, labels=[f"${v:,.2f}" for v in values], padding=3, fontsize=8)
    ax.set_xlim(0, max(values + [0.01]) * 1.2)
    ax.set_xlabel("USD over the run")
    ax.set_title(f"{title} — total ${sum(values):,.2f}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_plots(result: SimResult, out: Path) -> list[Path]:
    """Write latency_cdf.png, utilization.png and cost_breakdown.png into `out`."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and in tests
    who = f"fleet {result.summary.fleet}, policy {result.summary.policy}"
    paths = [out / "latency_cdf.png", out / "utilization.png", out / "cost_breakdown.png"]
    _latency_chart(result, paths[0], f"Latency CDF — {who}")
    _utilization_chart(result, paths[1], f"Utilization — {who}")
    _cost_chart(result, paths[2], f"Cost — {who}")
    return paths
