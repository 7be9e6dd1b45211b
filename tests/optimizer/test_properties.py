"""Property tests: every policy obeys every hard constraint; the same input gives the same
placement; the fast path's one-task answers match the full model's."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings

from heddle.models import FleetState
from heddle.optimizer import POLICY_NAMES, Policy, place
from heddle.optimizer.engine import place_table
from tests.optimizer.checks import check_placement
from tests.optimizer.conftest import problems

HEURISTICS = ("fast", "round-robin", "least-loaded", "ray-hybrid", "cheapest")


def _signature(placement):
    return [(d.task_id, d.status, d.target) for d in placement.decisions]


@pytest.mark.parametrize("policy", HEURISTICS)
@settings(max_examples=150, deadline=None)
@given(problem=problems())
def test_heuristic_policies_never_break_a_hard_constraint(policy, problem):
    state, tasks = problem
    check_placement(state, tasks, place(state, tasks, policy))


@settings(max_examples=120, deadline=None)
@given(problem=problems())
def test_optimal_policy_never_breaks_a_hard_constraint(problem):
    state, tasks = problem
    placement = place(state, tasks, "optimal")
    check_placement(state, tasks, placement)
    assert placement.objective >= placement.best_bound - 1e-6


@settings(max_examples=150, deadline=None)
@given(problem=problems(max_tasks=1))
def test_one_task_calls_never_break_a_hard_constraint(problem):
    state, tasks = problem
    for name in POLICY_NAMES:
        check_placement(state, tasks, place(state, tasks, name))


@settings(max_examples=60, deadline=None)
@given(problem=problems())
def test_same_input_gives_the_same_placement(problem):
    state, tasks = problem
    twin_state = copy.deepcopy(state)  # equal content, different objects (no identity caching leaks)
    for name in POLICY_NAMES:
        first = place(state, tasks, name)
        again = place(twin_state, list(tasks), name)
        assert _signature(first) == _signature(again), name
        assert first.objective == again.objective


@settings(max_examples=150, deadline=None)
@given(problem=problems(max_nodes=24, max_tasks=1))
def test_the_one_task_path_equals_the_table_path(problem):
    """place() answers one task in plain Python; place_table() through the numpy table and
    the policy's solver. Same decision, costs, reasons and explanations."""
    original, tasks = problem
    for name in ("optimal", "fast"):
        state = _copy_state(original)
        table = place_table(state, tasks, Policy(name=name))
        expected_alternatives = dict(table.decisions[0].rejected_alternatives)
        lean = place(state, tasks, Policy(name=name))
        quiet = place(state, tasks, Policy(name=name, explain=False))
        for node_state in state.nodes.values():  # the caller moves on; explanations must not
            node_state.free_slots = 0
        for other in (lean, quiet):
            assert _signature(other) == _signature(table)
            a, b = table.decisions[0], other.decisions[0]
            assert (a.reason, a.est_start_s) == (b.reason, pytest.approx(b.est_start_s))
            assert a.est_seconds == pytest.approx(b.est_seconds)
            assert a.cost_usd == pytest.approx(b.cost_usd)
            assert (table.objective, table.status) == (pytest.approx(other.objective), other.status)
        assert dict(lean.decisions[0].rejected_alternatives) == expected_alternatives
        assert dict(quiet.decisions[0].rejected_alternatives) == {}


def _copy_state(state):
    nodes = {k: copy.copy(v) for k, v in state.nodes.items()}
    return FleetState(state.time_s, state.fleet, nodes, dict(state.cloud_spend_usd), dict(state.instance_ready_at_s))


@pytest.mark.parametrize("seed", [1, 2])
def test_large_batches_through_lp_rounding_obey_every_hard_constraint(seed, monkeypatch):
    import numpy as np

    from heddle.optimizer import engine
    from heddle.optimizer.instances import random_fleet, random_state, random_tasks

    rng = np.random.default_rng(seed)
    monkeypatch.setattr(engine, "LARGE_BATCH_PAIRS", 1000)  # the 2,000-task path, on 600 tasks
    fleet = random_fleet(rng, 12, budget_usd=(0.05, 0.5))
    state = random_state(fleet, rng, busy=0.4, trouble=0.2)
    tasks = random_tasks(rng, 600, fleet)
    placement = place(state, tasks, "optimal")
    assert placement.solver == "lp-round"
    check_placement(state, tasks, placement)
    assert placement.best_bound <= placement.objective + 1e-6
    assert _signature(place(state, tasks, "optimal")) == _signature(placement)


def test_cpsat_stopped_by_its_limit_still_gives_the_same_answer_twice():
    """A batch CP-SAT cannot finish within the limit: deterministic time keeps it reproducible."""
    import numpy as np

    from heddle.optimizer.cpsat import solve_cpsat
    from heddle.optimizer.engine import scored
    from heddle.optimizer.instances import random_fleet, random_state, random_tasks

    rng = np.random.default_rng(3)
    fleet = random_fleet(rng, 12)
    state = random_state(fleet, rng, busy=0.3, trouble=0.05)
    tasks = random_tasks(rng, 150, fleet)
    policy = Policy(time_limit_s=0.05)
    sc = scored(state, tasks, policy)
    first, again = (solve_cpsat(sc, policy, None, aggregate=False, pools=False, prune=False) for _ in range(2))
    assert (first.status, first.objective_int) == (again.status, again.objective_int)
    assert first.assignment.target.tolist() == again.assignment.target.tolist()
