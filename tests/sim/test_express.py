"""The express twin gives exactly the reference twin's results: every record field, bit for
bit, on random fleets, traces, policies, scenarios, horizons and settings."""

from __future__ import annotations

import json
from dataclasses import asdict, replace

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heddle.models import Budget, Fleet, Node, NodeId, OwnerId, catalog
from heddle.models.fleet import shipped_fleet_path
from heddle.sim import Scenario, TwinSettings, simulate
from heddle.traces import read_trace, shipped_trace_path
from tests.sim.conftest import chain_pipeline

DEVICES = ("m2-ultra-76", "m3-max-40", "m4-pro-20", "m1-max-32", "m2-pro-19", "rtx-4090", "jetson-agx-orin-64")
MODELS = (("llama-3.1-8b", "q4_k_m"), ("qwen2.5-32b", "q4_k_m"), ("llama-3.1-70b", "q4_k_m"),
          ("gpt-oss-20b", "mxfp4"), ("mistral-7b", "q8_0"))
OWNERS = ("alice", "bob", "carol")
OFFERS = ("claude-haiku-4.5", "claude-sonnet-4.6", "aws-g5.xlarge")
WALL_CLOCK = ("wall_s", "place_wall_s", "requests_per_wall_s")


def _quant(model: str, quant: str) -> str:
    have = catalog.model(model).bytes_per_weight
    return quant if quant in have else min(have)


@st.composite
def cases(draw):
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    n_nodes = draw(st.integers(1, 6))
    nodes = []
    for k in range(n_nodes):
        device = catalog.device(DEVICES[int(rng.integers(len(DEVICES)))])
        memory = float(rng.choice(device.memory_options_gb))
        nodes.append(Node(NodeId(f"n{k}"), device, memory_gb=memory, owner=OwnerId(OWNERS[k % 3]),
                          slots=int(rng.integers(1, 4)),
                          trusted_owners=frozenset({OwnerId(OWNERS[(k + 1) % 3])}) if rng.random() < 0.3 else frozenset()))
    offers = tuple(catalog.offer(o) for o in OFFERS if draw(st.booleans())) if draw(st.booleans()) else ()
    fleet = Fleet("diff", tuple(nodes), cloud_offers=offers,
                  budgets={"acct": Budget("acct", draw(st.sampled_from([0.01, 50.0])))})
    n = draw(st.integers(1, 120))
    load = draw(st.sampled_from([0.2, 1.0, 5.0]))
    arrival = np.sort(rng.uniform(0, 120 / load, n))
    if draw(st.booleans()):
        arrival = np.floor(arrival)  # simultaneous arrivals and completions: SimPy's tie order
    models = [MODELS[k] for k in rng.integers(len(MODELS), size=n)]
    pipeline = np.where(rng.random(n) < 0.2, "pipe", "")
    df = pd.DataFrame({
        "arrival_s": arrival,
        "kind": np.where(rng.random(n) < 0.8, "llm", "processor"),
        "model": [m for m, _ in models],
        "quant": [_quant(m, q) for m, q in models],
        "prompt_tokens": rng.integers(1, 12_000, n),
        "output_tokens": rng.integers(1, 900, n),
        "cpu_seconds": rng.exponential(5.0, n),
        "memory_gb": rng.uniform(0.1, 8.0, n),
        "privacy": rng.choice(["public", "sensitive", "personal"], n, p=[0.5, 0.25, 0.25]),
        "owner": rng.choice(list(OWNERS), n),
        "deadline_s": np.where(rng.random(n) < 0.4, rng.uniform(1, 200, n), np.nan),
        "priority": rng.integers(0, 3, n),
        "tier": rng.choice(["", "", "", "local", "standard"], n),
        "account": "acct",
        "pipeline_id": pipeline,
        "task_id": [f"t{i}" for i in range(n)],
    })
    chain_pipeline(df, pipeline)
    scenario = None
    if draw(st.booleans()):
        events = []
        for _ in range(draw(st.integers(1, 5))):
            action = draw(st.sampled_from(["fail", "join", "drain", "leave", "battery", "ac", "throttle", "thermal"]))
            event = {"at_s": float(rng.uniform(0, 150 / load)), "node": f"n{int(rng.integers(n_nodes))}", "action": action}
            if action == "throttle":
                event["speed_factor"] = float(rng.choice([0.5, 0.8, 1.0]))
            if action == "thermal":
                event["thermal"] = str(rng.choice(["fair", "serious", "nominal"]))
            events.append(event)
        scenario = Scenario.model_validate({"events": events})
    policy = draw(st.sampled_from(["fast", "optimal", "fast", "least-loaded", "cheapest"]))
    horizon = draw(st.sampled_from([None, None, 60.0 / load]))
    window = draw(st.sampled_from([0.0, 0.0, 0.0, 2.0])) if policy != "optimal" else 0.0  # (CP-SAT windows: slow)
    twin = TwinSettings(max_defer_s=draw(st.sampled_from([20.0, 3600.0])), max_retries=draw(st.integers(0, 2)),
                        batch_window_s=window,
                        service_cv=draw(st.sampled_from([0.0, 0.0, 0.3])))
    return fleet, df, policy, scenario, horizon, twin, seed


def _both(fleet, trace, policy, scenario=None, horizon=None, twin=None, seed=0):
    twin = twin or TwinSettings()
    runs = [simulate(fleet, trace, policy, scenario, seed=seed, horizon_s=horizon, settings=replace(twin, express=e))
            for e in (False, True)]
    return runs


def _assert_same(reference, express) -> None:
    pd.testing.assert_frame_equal(reference.records, express.records, check_exact=True)
    a, b = asdict(reference.summary), asdict(express.summary)
    for key in WALL_CLOCK:
        a.pop(key, None), b.pop(key, None)
    assert json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)  # NaN == NaN


@settings(max_examples=60, deadline=None, derandomize=True)  # each example is two whole runs
@given(cases())
def test_express_twin_equals_the_reference_twin(case) -> None:
    fleet, df, policy, scenario, horizon, twin, seed = case
    _assert_same(*_both(fleet, df, policy, scenario, horizon, twin, seed))


@pytest.mark.parametrize("scenario", [None, "demo"])
def test_express_twin_equals_the_reference_on_the_demo(scenario) -> None:
    from heddle.sim.scenario import shipped_scenario_path

    trace = read_trace(shipped_trace_path("demo"))
    path = shipped_scenario_path(scenario) if scenario else None
    reference, express = _both(shipped_fleet_path("demo"), trace, "fast", path)
    _assert_same(reference, express)
    assert express.summary.completed > 2000  # a real run, not an empty one


@settings(max_examples=40, deadline=None)
@given(cases())
def test_rows_with_one_class_code_have_one_express_class(case) -> None:
    """The twin looks a task's class up by its row's code: one code must mean one class."""
    from heddle.optimizer.express import class_key
    from heddle.sim.express import class_codes
    from heddle.sim.workload import as_workload

    w = as_workload(case[1])
    codes, first = class_codes(w)
    assert len(codes) == w.n and sorted(set(codes)) == list(range(len(first)))
    for i in range(w.n):
        assert class_key(w.row_alone(i)) == class_key(w.row_alone(int(first[codes[i]])))
