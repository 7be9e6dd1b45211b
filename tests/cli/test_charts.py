"""The run charts: readable bins, a time axis in hours or days, scenario stretches shaded."""

from __future__ import annotations

import numpy as np
import pandas as pd
from conftest import heddle

from heddle.sim.plots import _event_spans, utilization_bins


def _series(duration_s: float, samples: int = 200) -> pd.DataFrame:
    t = np.linspace(duration_s / samples, duration_s, samples)
    return pd.DataFrame({"t": t, "a": np.ones(samples) * 0.5, "b": np.zeros(samples)})


def test_a_week_is_binned_in_hours_and_three_hours_in_minutes():
    week, width = utilization_bins(_series(7 * 86400))
    assert width == 7200 and len(week) <= 120  # 2-hour means, not 10,080 one-minute points
    assert np.allclose(week["a"], 0.5) and np.allclose(week["b"], 0.0)  # a mean keeps the level
    _, width = utilization_bins(_series(3 * 3600))
    assert width == 300


def test_event_spans_pair_starts_with_their_ends():
    events = [(100.0, "n", "fail"), (160.0, "n", "join"), (200.0, "n", "battery"), (300.0, "n", "drain"),
              (400.0, "n", "ac"), (450.0, "n", "throttle")]
    assert _event_spans(events, 1000.0) == [(100.0, 160.0, "down"), (200.0, 400.0, "battery"),
                                            (300.0, 1000.0, "draining")]


def test_sim_out_writes_the_three_charts(tmp_path):
    result = heddle("sim", "--scenario", "demo", "--policy", "fast", "--out", str(tmp_path))
    assert result.exit_code == 0, result.stderr
    for name in ("latency_cdf.png", "utilization.png", "cost_breakdown.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
