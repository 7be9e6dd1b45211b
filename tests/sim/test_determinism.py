"""Same inputs and seed give identical per-task records; the seed drives random failures."""

from __future__ import annotations

import numpy as np
import pandas as pd

from heddle.sim import Scenario, TwinSettings, simulate
from tests.sim.conftest import api_offer, llm_trace, make_fleet


def _case(rng: np.random.Generator):
    n = 400
    arrival = np.cumsum(rng.exponential(2.0, n))
    df = llm_trace(arrival, rng.integers(50, 2000, n), rng.integers(10, 300, n),
                   privacy=rng.choice(["public", "sensitive"], n), account="acct",
                   deadline_s=rng.uniform(5, 60, n))
    fleet = make_fleet(3, slots=2, offers=(api_offer(),))
    scenario = Scenario.model_validate({"random_failures": {"mtbf_s": 150.0, "mttr_s": 30.0}})
    return fleet, df, scenario


def test_same_seed_gives_identical_records(rng) -> None:
    fleet, df, scenario = _case(rng)
    settings = TwinSettings(service_cv=0.3)
    a = simulate(fleet, df, "fast", scenario, seed=3, settings=settings)
    b = simulate(fleet, df, "fast", scenario, seed=3, settings=settings)
    pd.testing.assert_frame_equal(a.records, b.records)
    assert a.summary.retries > 0  # the failures really happened
    c = simulate(fleet, df, "fast", scenario, seed=4, settings=settings)
    assert not a.records[["start", "finish"]].equals(c.records[["start", "finish"]])
