"""Privacy and the features rule hold on every placement path, each called directly on drawn
problems (tests/optimizer/paths.py): the one-task path, the express path, the numpy table
under every policy, LP rounding, CP-SAT (with and without its tricks) and the completion of
a gap-stopped answer. Personal work only on its owner's or a trusting node, sensitive work
never in the cloud; a task needing a feature (tool calls, embeddings, ...) only on a target
offering it.

Also: a batch answer never leaves a task waiting that a free target would take for less
than its deferral (what a search stopped within its gap is completed to)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from heddle.optimizer import DecisionStatus, Policy, place
from heddle.optimizer.assign import Ledger
from heddle.optimizer.engine import scored
from tests.optimizer.conftest import problems
from tests.optimizer.paths import RULES, batch_placements, one_task_placements


@pytest.mark.parametrize("rule", sorted(RULES))
@settings(max_examples=150, deadline=None)
@given(problem=problems(max_nodes=5, max_tasks=1))
def test_one_task_paths_keep_the_rule(rule, problem):
    state, tasks = problem
    for path, task, target in one_task_placements(state, tasks[0]):
        assert RULES[rule](state, task, target), f"{path}: {task} on {target}"


@pytest.mark.parametrize("rule", sorted(RULES))
@settings(max_examples=120, deadline=None)
@given(problem=problems(max_nodes=5, max_tasks=6))
def test_batch_paths_keep_the_rule(rule, problem):
    state, tasks = problem
    for path, task, target in batch_placements(state, tasks):
        assert RULES[rule](state, task, target), f"{path}: {task} on {target}"


@settings(max_examples=100, deadline=None)
@given(problem=problems(max_nodes=4, max_tasks=8))
def test_an_optimal_batch_leaves_no_task_waiting_beside_a_target_it_could_use(problem):
    state, tasks = problem
    policy = Policy()
    placement = place(state, tasks, policy)
    sc = scored(state, tasks, policy)
    by_name = {name: j for j, name in enumerate(sc.fa.target_names)}
    ledger = Ledger(sc, policy)
    for t, d in enumerate(placement.decisions):  # replay what the batch took
        if d.status is DecisionStatus.PLACED:
            _, _, needs = ledger.options(t)
            ledger.take(t, by_name[d.target], bool(needs[by_name[d.target]]))
    defer = sc.defer_int()
    for t, d in enumerate(placement.decisions):
        if d.status is not DecisionStatus.PLACED:
            feasible, cost, _ = ledger.options(t)
            cheaper = feasible & (cost < defer[t])
            assert not cheaper.any(), f"{d.task_id} waits although {sc.fa.target_names[int(cheaper.argmax())]} takes it"
