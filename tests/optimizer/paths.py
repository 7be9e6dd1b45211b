"""Every placement path called directly on one problem, for the rules that must hold on all of
them (`RULES`: privacy, features, installed models): the one-task path, the express path, the
numpy table under every policy, LP rounding, CP-SAT (with and without its tricks) and the
completion of a gap-stopped answer. Each yields (path, task, target) for every task it places."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from heddle.models import FleetState, Privacy, Task
from heddle.optimizer import POLICY_NAMES, DecisionStatus, Policy, TargetKind, place
from heddle.optimizer.assign import Assignment, fill
from heddle.optimizer.cpsat import solve_cpsat
from heddle.optimizer.engine import place_table, scored
from heddle.optimizer.express import place_row, task_row
from heddle.optimizer.fast import regret_order
from heddle.optimizer.fleet_cache import fleet_arrays
from heddle.optimizer.lean import place_one
from heddle.optimizer.lp_round import lp_round
from tests.optimizer.checks import has_model, offers_needs

__all__ = ["RULES", "batch_placements", "core_starts", "one_task_placements"]


def keeps_privacy(state: FleetState, task: Task, target: str) -> bool:
    """The privacy rule from the fleet itself (not the optimizer's masks)."""
    if target not in {n.id for n in state.fleet.nodes}:
        return task.privacy is Privacy.PUBLIC
    if task.privacy is Privacy.PERSONAL:
        return state.fleet.node(target).may_hold_personal_of(task.owner)
    return True


def offers_what_it_needs(state: FleetState, task: Task, target: str) -> bool:
    """The features rule from the fleet itself (checks.offers_needs)."""
    if target in {n.id for n in state.fleet.nodes}:
        return offers_needs(state, task, state.fleet.node(target))
    return offers_needs(state, task, offer=state.fleet.offer(target))


def has_its_model(state: FleetState, task: Task, target: str) -> bool:
    """The installed-models rule from the fleet itself (checks.has_model): cloud targets have none."""
    return target not in {n.id for n in state.fleet.nodes} or has_model(task, state.fleet.node(target))


RULES = {"privacy": keeps_privacy, "features": offers_what_it_needs, "installed": has_its_model}
"""The rules every placement path must keep: (state, task, target) -> kept."""


def _decided(state: FleetState, tasks: list[Task], placement, path: str) -> Iterator[tuple[str, Task, str]]:
    nodes = {n.id for n in state.fleet.nodes}
    for task, d in zip(tasks, placement.decisions, strict=True):
        if d.status is DecisionStatus.PLACED:
            assert (d.target_kind is TargetKind.CLOUD) == (d.target not in nodes), f"{path}: {d.target}"
            yield path, task, d.target


def _assigned(sc, assignment: Assignment, path: str) -> Iterator[tuple[str, Task, str]]:
    for t, j in enumerate(assignment.target):
        if j >= 0:
            yield path, sc.tasks[t], sc.fa.target_names[j]


def one_task_placements(state: FleetState, task: Task) -> Iterator[tuple[str, Task, str]]:
    """The one-task path (`place_one`) and the express path (`place_row`), where they answer."""
    quiet = Policy(explain=False)
    one = place_one(fleet_arrays(state.fleet), state, task, quiet)
    if one is not None:
        yield from _decided(state, [task], one, "lean")
    express = place_row(state, task_row(task), quiet)
    if express is not None:
        yield "express", task, fleet_arrays(state.fleet).node_ids[express[0]]


def batch_placements(state: FleetState, tasks: list[Task]) -> Iterator[tuple[str, Task, str]]:
    """`place` and the numpy table under every policy, LP rounding, CP-SAT with and without
    its tricks, and the completion of an empty answer."""
    for name in POLICY_NAMES:
        yield from _decided(state, tasks, place(state, tasks, name), name)
        yield from _decided(state, tasks, place_table(state, tasks, name), f"{name} (table)")
    policy = Policy(relative_gap=0.0)
    sc = scored(state, tasks, policy)
    yield from _assigned(sc, lp_round(sc, policy).assignment, "lp-round")
    for tricks in (True, False):
        result = solve_cpsat(sc, policy, None, aggregate=tricks, pools=tricks, prune=tricks)
        yield from _assigned(sc, result.assignment, f"cp-sat (tricks {tricks})")
    empty = Assignment(np.full(len(tasks), -1), np.zeros(sc.fa.n_targets, bool), np.zeros(len(tasks), bool))
    yield from _assigned(sc, fill(sc, policy, empty, regret_order(sc)), "completion")



def core_starts(state: FleetState, tasks: list[Task]) -> Iterator[tuple[FleetState, Task, str]]:
    """The scheduling core's waiting queue: the tasks arrive at once, then each start's slot
    frees in turn (the re-offers go by constraint class); (the core's state, task, node) of
    every start."""
    from tests.optimizer.test_scheduling import Body

    body = Body(state.fleet)
    for task in tasks:
        body.core.submit(0.0, task.id, task)
    finished = 0
    while (running := sorted(body.on)):
        finished += 1
        body.finish(float(finished), running[0])
    by_id = {t.id: t for t in tasks}
    for _, key, target in (entry for entry in body.log if entry[0] == "start"):
        yield body.state, by_id[key], target
