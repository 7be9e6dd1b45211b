"""Fleet dynamics: failures, leaving, draining, joining, throttling; scenario file errors."""

from __future__ import annotations

import numpy as np
import pytest

from heddle.sim import (
    Scenario,
    ScenarioError,
    TwinSettings,
    load_scenario,
    shipped_scenario_path,
    simulate,
)
from tests.sim.conftest import make_fleet, processor_trace


def _steady(n: int = 40, gap_s: float = 1.0, work_s: float = 3.0):
    return processor_trace(np.arange(n) * gap_s, np.full(n, work_s))


def _scenario(*events, **extra) -> Scenario:
    return Scenario.model_validate({"events": list(events), **extra})


def test_failed_node_work_is_retried_elsewhere_and_counted() -> None:
    df = _steady()
    result = simulate(make_fleet(2), df, "fast",
                      _scenario({"at_s": 10.5, "node": "n0", "action": "fail"}))
    rec = result.records
    assert (rec["status"] == "completed").all()
    retried = rec[rec["retries"] > 0]
    assert len(retried) >= 1
    assert (retried["target"] == "n1").all()  # n0 never came back
    assert result.summary.retry_reasons == {"node n0 failed": len(retried)}
    assert (rec.loc[rec["start"] > 10.5, "target"] == "n1").all()


def test_retries_run_out_and_the_task_fails_with_the_reason() -> None:
    df = _steady(n=1, work_s=100.0)
    result = simulate(make_fleet(2), df, "fast", _scenario(
        {"at_s": 1, "node": "n0", "action": "fail"}, {"at_s": 1.5, "node": "n0", "action": "join"},
        {"at_s": 2, "node": "n1", "action": "fail"},
    ), settings=TwinSettings(max_retries=1))
    row = result.records.iloc[0]
    assert row["status"] == "failed"
    assert "node n1 failed" in row["reason"] and row["retries"] == 2


def test_drained_node_finishes_its_work_but_gets_nothing_new() -> None:
    df = _steady(n=30)
    result = simulate(make_fleet(2, slots=1), df, "fast", _scenario({"at_s": 5.0, "node": "n0", "action": "drain"}))
    rec = result.records
    assert (rec["status"] == "completed").all()
    on_n0 = rec[rec["target"] == "n0"]
    assert len(on_n0) > 0 and (on_n0["release"] <= 5.0).all()
    assert (on_n0["retries"] == 0).all()


def test_absent_node_gets_work_only_after_it_joins() -> None:
    df = _steady(n=30)
    result = simulate(make_fleet(2), df, "fast", _scenario({"at_s": 12.0, "node": "n1", "action": "join"},
                                                           absent_at_start=["n1"]))
    on_n1 = result.records[result.records["target"] == "n1"]
    assert len(on_n1) > 0 and (on_n1["start"] >= 12.0).all()
    assert result.summary.utilization["n1"] > 0


def test_throttled_node_runs_slower() -> None:
    df = _steady(n=10, gap_s=10.0, work_s=2.0)
    result = simulate(make_fleet(1), df, "fast", _scenario({"at_s": 45.0, "node": "n0", "action": "throttle", "speed_factor": 0.5}))
    rec = result.records
    before, after = rec[rec["start"] < 45.0], rec[rec["start"] > 45.0]
    assert np.allclose(after["service"], 2 * before["service"].iloc[0])


def test_shipped_demo_scenario_loads_and_runs_on_the_demo_fleet() -> None:
    from heddle.models.fleet import load_fleet, shipped_fleet_path

    scenario = load_scenario(shipped_scenario_path("demo"))
    scenario.check_against(load_fleet(shipped_fleet_path("demo")))


def test_scenario_errors_name_file_and_field(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("events:\n  - {at_s: 5, node: n0, action: throttle}\n")
    with pytest.raises(ScenarioError, match=r"bad\.yaml.*events\.0.*speed_factor"):
        load_scenario(bad)
    bad.write_text("events:\n  - {at_s: -1, node: n0, action: fail}\n")
    with pytest.raises(ScenarioError, match=r"bad\.yaml: field events\.0\.at_s"):
        load_scenario(bad)
    bad.write_text("events:\n  - {at_s: 1, node: ghost, action: fail}\n")
    with pytest.raises(ScenarioError, match=r"events\.0\.node is 'ghost'"):
        simulate(make_fleet(1), _steady(n=2), "fast", bad)
    bad.write_text("events: [\n")
    with pytest.raises(ScenarioError, match=r"bad\.yaml: line \d+"):
        load_scenario(bad)


def test_models_stay_resident_and_the_least_recently_used_is_evicted() -> None:
    from heddle.models import perf
    from heddle.models.catalog_stub import model_spec
    from tests.sim.conftest import llm_trace, make_device

    # room for the 8B model and one 7B model at q4_k_m, not for all three at once
    spec_8b, spec_7b = model_spec("llama-3.1-8b"), model_spec("mistral-7b")
    memory = spec_8b.weights_gb("q4_k_m") + spec_7b.weights_gb("q4_k_m") + 1.0
    models = ["llama-3.1-8b", "llama-3.1-8b", "mistral-7b", "llama-3.1-8b", "qwen2.5-7b", "mistral-7b"]
    n = len(models)
    df = llm_trace(np.arange(n) * 100.0, np.full(n, 100), np.full(n, 10), model=models)
    result = simulate(make_fleet(1, memory_gb=memory), df, "fast")
    rec = result.records
    assert (rec["status"] == "completed").all()
    # 8b (miss), 8b (hit), mistral (miss), 8b (hit), qwen (miss: evicts mistral, least recently
    # used), mistral (miss again: evicts 8b). Evicting 8b for qwen would make the last one a hit.
    assert result.summary.model_loads == {"n0": 4} and result.summary.evictions == {"n0": 2}
    misses = rec["service"] > 2 * rec["service"].min()
    assert list(misses) == [True, False, True, False, True, True]
    dev = make_device()
    load_8b = perf.load_seconds(dev, spec_8b, "q4_k_m")
    assert rec["service"].iloc[0] - rec["service"].iloc[1] == pytest.approx(load_8b, rel=1e-3)
    assert rec["ttft"].iloc[0] > load_8b > rec["ttft"].iloc[1]


@pytest.mark.parametrize("policy", ["fast", "optimal"])
def test_batch_windows_place_everything_that_arrived_in_one_call(policy) -> None:
    df = processor_trace(np.array([0.3, 1.1, 1.7, 9.0]), np.full(4, 1.0))
    result = simulate(make_fleet(3), df, policy, batch_window_s=2.0)
    rec = result.records
    assert (rec["status"] == "completed").all()
    # a window opens when work arrives: the first three share the window ending at 2.3
    assert list(rec["start"]) == pytest.approx([2.3, 2.3, 2.3, 11.0])
    assert result.summary.place_calls == 2


def test_a_new_catalog_device_can_join_mid_run() -> None:
    df = _steady(n=30, gap_s=0.5, work_s=4.0)
    result = simulate(make_fleet(1), df, "fast", _scenario(
        {"at_s": 5.0, "node": "new-mini", "action": "join", "device": "m4-pro-20", "memory_gb": 64,
         "owner": "alice", "slots": 2}))
    rec = result.records
    assert (rec["status"] == "completed").all()
    on_new = rec[rec["target"] == "new-mini"]
    assert len(on_new) > 0 and (on_new["start"] >= 5.0).all()
    assert set(result.summary.utilization) == {"n0", "new-mini"}
