"""The twin's own node model and the paths rarely taken in a normal run: a node's local queue,
a task waiting on its node for memory that running tasks hold, a decision gone stale before
the twin could act on it, and a budget period rolling over. Both engines, same records."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from heddle.models import Budget
from heddle.optimizer import Decision, DecisionStatus, Placement, TargetKind, core_queue
from heddle.sim import Scenario, TwinSettings, simulate
from tests.sim.conftest import api_offer, llm_trace, make_fleet, processor_trace


def _everything_on(monkeypatch, node: str) -> None:
    """place() answers: every task goes to `node` (capacity or not)."""
    def on_node(state, pending, policy):
        return Placement([Decision(t.id, DecisionStatus.PLACED, node, TargetKind.NODE, est_seconds=1.0)
                          for t in pending])

    monkeypatch.setattr(core_queue, "place", on_node)


def _both(fleet, df, scenario=None, settings=None) -> list[pd.DataFrame]:
    runs = [simulate(fleet, df, "fast", scenario, settings=TwinSettings(express=e, **(settings or {})))
            for e in (False, True)]
    pd.testing.assert_frame_equal(runs[0].records, runs[1].records, check_exact=True)
    return [r.records.set_index("task_id") for r in runs]


def test_work_placed_on_a_busy_node_waits_in_its_queue_in_order(monkeypatch) -> None:
    _everything_on(monkeypatch, "n0")
    df = processor_trace(np.zeros(3), np.full(3, 1.0))
    rec = _both(make_fleet(1), df)[1]
    assert (rec["status"] == "completed").all() and (rec["target"] == "n0").all()
    assert (rec["defers"] == 0).all()  # placed, not deferred: they waited on the node
    assert list(rec["start"]) == [0.0, rec.loc["p0", "finish"], rec.loc["p1", "finish"]]


def test_a_task_waits_on_its_node_for_memory_running_work_holds(monkeypatch) -> None:
    _everything_on(monkeypatch, "n0")
    # 10 GB, three slots: one 6 GB task runs, the next 6 GB task waits for its memory although
    # slots are free, and a small task behind it keeps the node's order
    df = processor_trace(np.array([0.0, 0.0, 0.5]), np.full(3, 4.0), memory_gb=[6.0, 6.0, 0.5])
    rec = _both(make_fleet(1, slots=3, memory_gb=10.0), df)[1]
    assert (rec["status"] == "completed").all()
    assert rec.loc["p1", "start"] == rec.loc["p0", "finish"]
    assert rec.loc["p2", "start"] == rec.loc["p0", "finish"]  # behind p1 in the node's queue
    assert rec.loc["p2", "start"] < rec.loc["p1", "finish"]  # ... and it fits beside it


def test_a_task_that_cannot_fit_its_node_is_lost_and_retried(monkeypatch) -> None:
    _everything_on(monkeypatch, "n0")
    df = processor_trace(np.zeros(1), np.full(1, 1.0), memory_gb=20.0)
    rec = _both(make_fleet(1, memory_gb=8.0), df, settings={"max_retries": 1})[1]
    assert rec.loc["p0", "status"] == "failed" and rec.loc["p0", "retries"] == 2
    assert rec.loc["p0", "reason"] == "failed after 1 retries: does not fit in the memory of node n0"


def test_a_stale_decision_goes_back_to_the_core(monkeypatch) -> None:
    _everything_on(monkeypatch, "n0")  # even after n0 starts draining (place() would not)
    drain = Scenario.model_validate({"events": [{"at_s": 0.0, "node": "n0", "action": "drain"}]})
    df = processor_trace(np.array([1.0]), np.array([1.0]))
    rec = _both(make_fleet(1), df, scenario=drain, settings={"max_defer_s": 12.0})[1]
    assert rec.loc["p0", "status"] == "rejected" and rec.loc["p0", "defers"] >= 2
    assert rec.loc["p0", "reason"] == "deferred for over 12 s: node n0 is draining"


def test_a_budget_period_rolls_over_and_deferred_cloud_work_runs() -> None:
    # no local node can run it; the day's budget pays for one request only
    offer = api_offer(price_usd_per_m_input_tokens=500.0)  # 1,000 prompt tokens: $0.50
    fleet = make_fleet(1, memory_gb=2.0, offers=(offer,), budgets={"acct": Budget("acct", 0.8, "day")})
    df = llm_trace(np.array([0.0, 10.0]), [1000, 1000], [10, 10], account="acct")
    day = 86_400.0
    rec = _both(fleet, df, settings={"max_defer_s": 2 * day, "defer_retry_s": 3600.0})[1]
    assert (rec["status"] == "completed").all() and (rec["target"] == "test-api").all()
    assert rec.loc["l0", "start"] == 0.0
    assert rec.loc["l1", "start"] == pytest.approx(day + 10.0)  # the first tick after the roll
    assert rec.loc["l1", "defers"] == 24
