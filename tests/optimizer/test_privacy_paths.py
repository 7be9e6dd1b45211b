"""Privacy holds on every placement path, each called directly on drawn problems: the
one-task path, the express path, the numpy table under every policy, LP rounding, CP-SAT
(with and without its tricks) and the completion of a gap-stopped answer. Personal work
only on its owner's or a trusting node, sensitive work never in the cloud.

Also: a batch answer never leaves a task waiting that a free target would take for less
than its deferral (what a search stopped within its gap is completed to)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings

from heddle.models import Privacy
from heddle.optimizer import POLICY_NAMES, DecisionStatus, Policy, TargetKind, place
from heddle.optimizer.assign import Assignment, Ledger, fill
from heddle.optimizer.cpsat import solve_cpsat
from heddle.optimizer.engine import place_table, scored
from heddle.optimizer.express import place_row, task_row
from heddle.optimizer.fast import regret_order
from heddle.optimizer.fleet_cache import fleet_arrays
from heddle.optimizer.lean import place_one
from heddle.optimizer.lp_round import lp_round
from tests.optimizer.conftest import problems


def _allowed(state, task, target: str) -> bool:
    """The privacy rule from the fleet itself (not the optimizer's masks)."""
    node_ids = {n.id for n in state.fleet.nodes}
    if target not in node_ids:
        return task.privacy is Privacy.PUBLIC
    if task.privacy is Privacy.PERSONAL:
        return state.fleet.node(target).may_hold_personal_of(task.owner)
    return True


def _check_decisions(state, tasks, placement, path: str) -> None:
    for task, d in zip(tasks, placement.decisions, strict=True):
        if d.status is DecisionStatus.PLACED:
            assert _allowed(state, task, d.target), f"{path}: {task.privacy.value} {task.id} on {d.target}"
            assert (d.target_kind is TargetKind.CLOUD) == (d.target not in {n.id for n in state.fleet.nodes})


def _check_assignment(state, sc, assignment: Assignment, path: str) -> None:
    for t, j in enumerate(assignment.target):
        if j >= 0:
            task = sc.tasks[t]
            target = sc.fa.target_names[j]
            assert _allowed(state, task, target), f"{path}: {task.privacy.value} {task.id} on {target}"


@settings(max_examples=150, deadline=None)
@given(problem=problems(max_nodes=5, max_tasks=1))
def test_one_task_paths_keep_privacy(problem):
    state, tasks = problem
    task = tasks[0]
    quiet = Policy(explain=False)
    one = place_one(fleet_arrays(state.fleet), state, task, quiet)
    if one is not None:
        _check_decisions(state, tasks, one, "lean")
    express = place_row(state, task_row(task), quiet)
    if express is not None:
        assert _allowed(state, task, fleet_arrays(state.fleet).node_ids[express[0]]), "express"


@settings(max_examples=120, deadline=None)
@given(problem=problems(max_nodes=5, max_tasks=6))
def test_batch_paths_keep_privacy(problem):
    state, tasks = problem
    for name in POLICY_NAMES:
        _check_decisions(state, tasks, place(state, tasks, name), name)
        _check_decisions(state, tasks, place_table(state, tasks, name), f"{name} (table)")
    policy = Policy(relative_gap=0.0)
    sc = scored(state, tasks, policy)
    rounded = lp_round(sc, policy).assignment
    _check_assignment(state, sc, rounded, "lp-round")
    for tricks in (True, False):
        result = solve_cpsat(sc, policy, None, aggregate=tricks, pools=tricks, prune=tricks)
        _check_assignment(state, sc, result.assignment, f"cp-sat (tricks {tricks})")
    empty = Assignment(np.full(len(tasks), -1), np.zeros(sc.fa.n_targets, bool), np.zeros(len(tasks), bool))
    _check_assignment(state, sc, fill(sc, policy, empty, regret_order(sc)), "completion")


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
