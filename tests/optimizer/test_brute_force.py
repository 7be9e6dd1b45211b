"""On tiny instances `place(..., "optimal")` reaches the optimum found by enumerating every
assignment (each task to each target or deferred) under the batch constraints."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heddle.optimizer import Policy, place
from heddle.optimizer.cpsat import solve_cpsat
from heddle.optimizer.engine import scored
from heddle.optimizer.instances import memory_tight_problem
from heddle.optimizer.lp_round import lp_round
from heddle.optimizer.scoring import MICRO
from tests.optimizer.conftest import problems


def brute_force_optimum(sc, eviction_cost: int) -> int:
    t_n, j_n = len(sc.tasks), sc.fa.n_targets
    base, spend, defer = sc.base_int(), sc.spend_int(), sc.defer_int()
    kv, w, free, evictable = sc.memory_mb()
    remaining = sc.remaining_int()
    best = None
    for combo in itertools.product(range(-1, j_n), repeat=t_n):
        if any(j >= 0 and not sc.ok[t, j] for t, j in enumerate(combo)):
            continue
        counts = np.bincount([j for j in combo if j >= 0], minlength=j_n)
        if (counts > sc.view.free_slots).any():
            continue
        used = np.zeros(j_n, dtype=np.int64)
        loads = set()
        for t, j in enumerate(combo):
            if j < 0:
                continue
            used[j] += kv[t]
            if not sc.resident[t, j] and (sc.group[t], j) not in loads:
                loads.add((sc.group[t], j))
                used[j] += w[t]
        if (used > free + evictable).any():
            continue
        evictions = int((used > free).sum())
        paid = np.zeros(len(remaining), dtype=np.int64)
        for t, j in enumerate(combo):
            if j >= 0 and sc.account[t] >= 0:
                paid[sc.account[t]] += spend[t, j]
        if (paid > remaining).any():
            continue
        total = sum(int(base[t, j]) if j >= 0 else int(defer[t]) for t, j in enumerate(combo))
        total += evictions * eviction_cost
        best = total if best is None else min(best, total)
    return best


@pytest.mark.parametrize(("nodes", "offers"), [(3, False), (2, True)])
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_optimal_policy_matches_brute_force(nodes, offers, data):
    state, tasks = data.draw(problems(max_nodes=nodes, max_tasks=3, offers=offers))
    placement = place(state, tasks, Policy(relative_gap=0.0))  # prove, do not stop within 1 %
    sc = scored(state, tasks, "optimal")
    assert round(placement.objective * MICRO) == brute_force_optimum(sc, sc.eviction_int(_policy()))
    assert placement.status == "OPTIMAL"


@settings(max_examples=40, deadline=None)
@given(problem=problems(max_nodes=3, max_tasks=4))
def test_cpsat_model_alone_matches_brute_force(problem):
    """The CP-SAT model itself (no fast-path shortcut, no hint), with and without its tricks."""
    state, tasks = problem
    policy = _policy()
    sc = scored(state, tasks, policy)
    optimum = brute_force_optimum(sc, sc.eviction_int(policy))
    for aggregate, pools in ((True, True), (False, False)):
        result = solve_cpsat(sc, policy, None, aggregate=aggregate, pools=pools)
        assert result.status == "OPTIMAL"
        assert result.objective_int == optimum


@settings(max_examples=60, deadline=None)
@given(problem=problems(max_nodes=3, max_tasks=4))
def test_lp_bound_never_exceeds_the_optimum(problem):
    """The LP relaxation (memory rows with shared model loads and evictions included) is a
    relaxation: its value is a valid lower bound, so "optimal" never stops on a false gap."""
    state, tasks = problem
    policy = _policy()
    sc = scored(state, tasks, policy)
    lp = lp_round(sc, policy)
    assert lp.bound_int is not None
    assert lp.bound_int <= brute_force_optimum(sc, sc.eviction_int(policy))


@pytest.mark.parametrize("seed", range(12))
def test_lp_bound_on_memory_tight_batches(seed):
    """Batches where memory binds (the LP's memory rows at work) keep the bound valid."""
    state, tasks = memory_tight_problem(np.random.default_rng(seed), 4, 2)
    policy = _policy()
    sc = scored(state, tasks, policy)
    assert lp_round(sc, policy).bound_int <= brute_force_optimum(sc, sc.eviction_int(policy))


def _policy():
    return Policy()
