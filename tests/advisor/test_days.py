"""Representative-day sampling and day subsets for the twin."""

import numpy as np
import pandas as pd
import pytest

from heddle.advisor.days import plan_days, row_days, subset_days
from tests.advisor.conftest import DAY_S


def _frame(counts, pipelines=()) -> pd.DataFrame:
    arr = np.concatenate([d * DAY_S + np.linspace(0, DAY_S - 1, c) for d, c in enumerate(counts)])
    n = arr.size
    df = pd.DataFrame({"arrival_s": arr, "prompt_tokens": 100, "output_tokens": 50,
                       "privacy": "public", "pipeline_id": "", "task_id": [f"t{i}" for i in range(n)]})
    for pid, rows in pipelines:
        df.loc[list(rows), "pipeline_id"] = pid
    return df


def test_short_traces_are_replayed_whole():
    plan = plan_days(_frame([10, 20, 30]), k=8)
    assert not plan.sampled and plan.days.tolist() == [0, 1, 2]
    assert plan.scale.tolist() == [1.0, 1.0, 1.0]


def test_sampled_days_stand_for_every_day_and_every_request():
    rng = np.random.default_rng(1)
    counts = rng.integers(500, 1500, 30)
    df = _frame(counts)
    plan = plan_days(df, k=6)
    assert plan.sampled and plan.days.size == 6
    assert plan.weight_days.sum() == pytest.approx(30, abs=1.0)  # the last day is partial
    assert plan.weight_requests.sum() == counts.sum()
    # ratio estimator: a per-request quantity summed over the replayed days recovers the total
    assert (plan.day_requests * plan.scale).sum() == pytest.approx(counts.sum())


def test_subset_lays_days_back_to_back_and_keeps_pipelines_whole():
    df = _frame([4, 4, 4], pipelines=[("p1", [3, 4])])  # row 3 is day 0, row 4 day 1
    day = row_days(df)
    assert day[4] == 0  # the pipeline belongs to the day its first stage arrived
    out, slot = subset_days(df, np.array([2, 0]))
    assert set(out["task_id"]) == {f"t{i}" for i in (0, 1, 2, 3, 4, 8, 9, 10, 11)}
    assert np.all(np.diff(out["arrival_s"].to_numpy()) >= 0)
    day2 = out["task_id"].isin({"t8", "t9", "t10", "t11"}).to_numpy()
    assert np.all(slot[day2] == 0) and np.all(out["arrival_s"].to_numpy()[day2] < DAY_S)
    assert np.all(slot[~day2] == 1)
