"""Property tests: every policy obeys every hard constraint; the same input gives the same
placement; the fast path's one-task answers match the full model's."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings

from heddle.optimizer import POLICY_NAMES, Policy, place
from tests.optimizer.checks import check_placement
from tests.optimizer.conftest import problems

HEURISTICS = ("fast", "round-robin", "least-loaded", "ray-hybrid", "cheapest")


def _signature(placement):
    return [(d.task_id, d.status, d.target) for d in placement.decisions]


@pytest.mark.parametrize("policy", HEURISTICS)
@settings(max_examples=300, deadline=None)
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


@settings(max_examples=300, deadline=None)
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


@settings(max_examples=300, deadline=None)
@given(problem=problems(max_nodes=24, max_tasks=1))
def test_explanations_do_not_change_one_task_decisions(problem):
    state, tasks = problem
    for name in ("optimal", "fast"):
        full = place(state, tasks, Policy(name=name, explain=True))
        lean = place(state, tasks, Policy(name=name, explain=False))
        assert _signature(full) == _signature(lean)
        a, b = full.decisions[0], lean.decisions[0]
        assert (a.reason, a.est_start_s) == (b.reason, pytest.approx(b.est_start_s))
        assert a.est_seconds == pytest.approx(b.est_seconds)
        assert a.cost_usd == pytest.approx(b.cost_usd)
        assert (full.objective, full.status) == (pytest.approx(lean.objective), lean.status)


@pytest.mark.parametrize("seed", [1, 2])
def test_large_batches_through_lp_rounding_obey_every_hard_constraint(seed):
    import numpy as np

    from heddle.optimizer.instances import random_fleet, random_state, random_tasks

    rng = np.random.default_rng(seed)
    fleet = random_fleet(rng, 12, budget_usd=(0.05, 0.5))
    state = random_state(fleet, rng, busy=0.4, trouble=0.2)
    tasks = random_tasks(rng, 600, fleet)
    placement = place(state, tasks, "optimal")
    assert placement.solver == "lp-round"
    check_placement(state, tasks, placement)
    assert placement.best_bound <= placement.objective + 1e-6
    assert _signature(place(state, tasks, "optimal")) == _signature(placement)
