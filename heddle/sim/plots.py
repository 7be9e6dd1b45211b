"""PNG plots of a run: latency CDF per class, utilization over time, cost breakdown."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from heddle.sim.result import SimResult

__all__ = ["write_plots"]


def write_plots(result: SimResult, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and in tests
    import matplotlib.pyplot as plt

    df = result.records
    done = df[df["status"] == "completed"]
    paths = [out / "latency_cdf.png", out / "utilization.png", out / "cost_breakdown.png"]

    fig, ax = plt.subplots(figsize=(7, 4))
    for privacy, g in done.groupby("privacy"):
        lat = np.sort(g["latency"].to_numpy(dtype=float))
        ax.plot(lat, np.arange(1, len(lat) + 1) / len(lat), label=f"{privacy} (n={len(lat)})")
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlabel("latency, arrival to finish (s)")
    ax.set_ylabel("fraction of completed tasks")
    ax.set_title(f"Latency CDF — {result.summary.fleet} / {result.summary.policy}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(paths[0], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4))
    util = result.utilization
    for node in util.columns[1:]:
        ax.plot(util["t"] / 60.0, util[node], label=node)
    ax.set_xlabel("simulated time (min)")
    ax.set_ylabel("busy fraction of slots")
    ax.set_ylim(0, 1.05)
    ax.set_title("Utilization over time")
    ax.grid(alpha=0.3)
    if len(util.columns) <= 12:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(paths[1], dpi=110)
    plt.close(fig)

    s = result.summary
    parts = {f"cloud: {k}": v for k, v in s.cloud_spend_by_offer.items()}
    parts["local energy (tasks)"] = float(df.loc[df["target_kind"] == "node", "cost_usd"].sum())
    parts["local energy (idle)"] = s.energy_cost_usd - parts["local energy (tasks)"]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.barh(list(parts), list(parts.values()), color="tab:blue")
    ax.set_xlabel("USD over the run")
    ax.set_title(f"Cost breakdown — total ${sum(parts.values()):.2f}")
    fig.tight_layout()
    fig.savefig(paths[2], dpi=110)
    plt.close(fig)
    return paths
