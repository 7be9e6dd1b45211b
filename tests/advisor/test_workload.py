"""Workload analysis on traces whose shape is known by construction."""

import numpy as np
import pandas as pd
import pytest

from heddle.advisor import WorkloadError, analyze
from tests.advisor.conftest import DAY_S, steady_trace


def _poisson_trace(rng, days: int, per_day, hour_weights=None) -> pd.DataFrame:
    rows = []
    for d in range(days):
        n = rng.poisson(per_day(d))
        if hour_weights is None:
            t = rng.uniform(0, DAY_S, n)
        else:
            h = rng.choice(24, size=n, p=hour_weights / hour_weights.sum())
            t = h * 3600 + rng.uniform(0, 3600, n)
        rows.append(d * DAY_S + np.sort(t))
    arr = np.concatenate(rows)
    n = arr.size
    return pd.DataFrame({
        "arrival_s": arr, "kind": "llm", "model": rng.choice(["llama-3.1-8b", "qwen2.5-7b"], n, p=[0.75, 0.25]),
        "quant": "q4_k_m", "prompt_tokens": rng.integers(100, 1000, n), "output_tokens": rng.integers(50, 300, n),
        "privacy": rng.choice(["public", "personal"], n, p=[0.6, 0.4]), "owner": "alice",
        "deadline_s": np.where(rng.random(n) < 0.5, 60.0, np.nan),
    })


def test_growth_trend_is_recovered_from_a_growing_trace():
    rng = np.random.default_rng(7)
    weekly = 0.03  # +3% a week (+367% a year: under the cap)
    df = _poisson_trace(rng, 56, lambda d: 2_000 * (1 + weekly) ** (d / 7))
    p = analyze(df)
    per_week = (1 + p.growth_per_month) ** (7 / 30.4375) - 1
    assert per_week == pytest.approx(weekly, abs=0.005)


def test_flat_trace_reads_as_flat_and_says_so():
    rng = np.random.default_rng(3)
    p = analyze(_poisson_trace(rng, 21, lambda d: 1_000))
    assert p.growth_per_month == 0.0
    assert any("within noise" in n for n in p.notes)


def test_short_trace_has_no_trend():
    t = steady_trace([{"every_s": 60, "model": "llama-3.1-8b", "quant": "q4_k_m", "prompt": 100, "output": 50,
                           "privacy": "public", "owner": "a"}], days=2)
    p = analyze(t.df)
    assert p.growth_per_year == 0.0 and "too short" in p.notes[0]


def test_diurnal_shape_mix_and_token_percentiles():
    rng = np.random.default_rng(5)
    hours = np.ones(24)
    hours[14] = 10.0  # a busy 2 pm
    df = _poisson_trace(rng, 7, lambda d: 3_000, hours)
    p = analyze(df)
    assert int(np.argmax(p.diurnal_share)) == 14
    assert p.diurnal_share.sum() == pytest.approx(1.0)
    assert p.privacy_mix["personal"] == pytest.approx(0.4, abs=0.02)
    assert p.model_mix["llama-3.1-8b:q4_k_m"] == pytest.approx(0.75, abs=0.02)
    assert 500 < p.prompt_tokens_pct["p50"] < 600
    assert p.deadline_share == pytest.approx(0.5, abs=0.02)
    assert p.personal_owners == ("alice",)
    assert p.requests_per_day == pytest.approx(3_000, rel=0.05)


def test_bad_traces_are_refused_with_the_problem_named():
    with pytest.raises(WorkloadError, match="deadline_s"):
        analyze(pd.DataFrame({"arrival_s": [0.0], "kind": ["llm"]}))
    empty = steady_trace([{"every_s": 60, "model": "m", "quant": "q", "prompt": 1, "output": 1,
                               "privacy": "public", "owner": "a"}], days=1).df.iloc[:0]
    with pytest.raises(WorkloadError, match="empty"):
        analyze(empty)


def test_an_explosive_ramp_is_capped_and_reported():
    rng = np.random.default_rng(11)
    df = _poisson_trace(rng, 21, lambda d: 50 * 1.2 ** d)  # +20% a day
    p = analyze(df)
    assert p.growth_per_year == pytest.approx(10.0, rel=1e-6)
    assert any("capped" in n for n in p.notes)


@pytest.mark.parametrize("last_arrival_s", [0.0, 3599.0])
def test_a_trace_spanning_under_an_hour_is_refused_not_scaled_up(last_arrival_s):
    # work that all arrives at 0 s (a workload file without arrival_s) holds no rate: read as
    # an hour of demand it made monthly figures up
    df = _poisson_trace(np.random.default_rng(1), 1, lambda d: 50)
    df["arrival_s"] = np.linspace(0.0, last_arrival_s, len(df))
    with pytest.raises(WorkloadError, match=rf"arrival_s: the last arrival is at {last_arrival_s:g} s; "
                                            r"expected arrivals over at least 3600 s"):
        analyze(df)
    df["arrival_s"] = np.linspace(0.0, 3600.0, len(df))
    assert analyze(df).requests_per_day == pytest.approx(len(df) * 24)
