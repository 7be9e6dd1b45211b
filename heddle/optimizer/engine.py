"""`place()`: the one entry point the twin and the live runtime call.

Pure and deterministic: decisions read the clock only from `state.time_s` (the wall clock
only times the call for `Placement.wall_s`), it does no I/O, keeps no state between calls
except a memo of per-fleet arrays (see fleet_cache.py), and CP-SAT runs with one worker, a
fixed seed and a deterministic time limit. Policies are chosen by name from `REGISTRY`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

from heddle.models import FleetState, Task
from heddle.optimizer.assign import Assignment, fill, objective_int
from heddle.optimizer.baselines import cheapest, least_loaded, ray_hybrid, round_robin
from heddle.optimizer.decisions import decisions, explain_later
from heddle.optimizer.errors import UnknownPolicyError
from heddle.optimizer.fast import fast_assign, regret_order
from heddle.optimizer.fleet_cache import fleet_arrays
from heddle.optimizer.lean import place_one
from heddle.optimizer.lp_round import lp_round
from heddle.optimizer.placement import Placement
from heddle.optimizer.policy import POLICY_NAMES, Policy
from heddle.optimizer.scoring import MICRO, Scored, score
from heddle.optimizer.view import gather

__all__ = ["REGISTRY", "fixed_int", "lower_bound_int", "place", "place_scored", "place_table", "resolve_policy", "scored"]

Solver = Callable[[Scored, Policy], tuple[Assignment, str, str, int | None]]
"""(scored, policy) -> (assignment, status, solver name, best bound in micro-USD or None)."""


def _heuristic(assign: Callable[[Scored, Policy], Assignment], name: str) -> Solver:
    def run(sc: Scored, policy: Policy):
        return assign(sc, policy), "HEURISTIC", name, None
    return run


def _fast(sc: Scored, policy: Policy):
    assignment = fast_assign(sc, policy)
    bound = lower_bound_int(sc)
    status = "OPTIMAL" if objective_int(sc, policy, assignment) == bound else "FAST_PATH"
    return assignment, status, "fast_path", bound


def _optimal(sc: Scored, policy: Policy):
    """Fast path; if it is not provably optimal, LP rounding (bound + incumbent); then, unless
    the incumbent is within the policy's gap, CP-SAT on the pairs the LP's reduced costs
    leave, warm-started from the better of the two."""
    fast, status, _, bound = _fast(sc, policy)
    if status == "OPTIMAL":  # the capacity-free bound is met: nothing left to search
        return fast, status, "fast_path", bound
    lp = lp_round(sc, policy)
    if lp.bound_int is not None:
        bound = max(bound, lp.bound_int)
    incumbent = min((fast, lp.assignment), key=lambda a: objective_int(sc, policy, a))
    best = objective_int(sc, policy, incumbent)
    if best <= bound:
        return incumbent, "OPTIMAL", "lp-round", bound
    if _within_gap(sc, best, bound, policy.relative_gap):
        return incumbent, "FEASIBLE", "lp-round", bound
    candidates = lp.candidates(sc, policy, incumbent)
    if int(candidates.sum()) > LARGE_BATCH_PAIRS:
        return incumbent, "FEASIBLE", "lp-round", bound
    from heddle.optimizer.cpsat import GapGoal, solve_cpsat  # here: OR-Tools costs ~0.5 s to import

    goal = GapGoal(policy.relative_gap, bound, fixed_int(sc))
    result = solve_cpsat(sc, policy, incumbent, candidates=candidates, goal=goal)
    assignment = fill(sc, policy, result.assignment, regret_order(sc))
    bound = max(result.bound_int, bound)
    status = "OPTIMAL" if objective_int(sc, policy, assignment) <= bound else "FEASIBLE"
    return assignment, status, "cp-sat", bound


LARGE_BATCH_PAIRS = 6_000
"""Above this many candidate (task, target) pairs left after the LP's reduced-cost pruning,
the LP-rounding answer is final: building and presolving a CP-SAT model that size takes
longer than the one-second decision the twin and the live runtime expect."""


def _within_gap(sc: Scored, objective: int, bound: int, gap: float) -> bool:
    """The incumbent is within `gap` of the bound, measured on the part that can change."""
    changeable = objective - fixed_int(sc)
    return changeable <= 0 or (objective - bound) <= gap * changeable


def fixed_int(sc: Scored) -> int:
    """Deferral costs of the tasks no solver can place (no feasible pair cheaper than
    deferring): part of every objective, so not of any gap."""
    defer = sc.defer_int()
    candidate = (sc.ok & (sc.base_int() < defer[:, None])).any(axis=1)
    return int(defer[~candidate].sum())


_LEAN_POLICIES = ("optimal", "fast")
"""Policies whose one-task answer is the exact cheapest option (the plain-Python path)."""

REGISTRY: dict[str, Solver] = {
    "optimal": _optimal,
    "fast": _fast,
    "round-robin": _heuristic(round_robin.assign, "round-robin"),
    "least-loaded": _heuristic(least_loaded.assign, "least-loaded"),
    "ray-hybrid": _heuristic(ray_hybrid.assign, "ray-hybrid"),
    "cheapest": _heuristic(cheapest.assign, "cheapest"),
}
assert tuple(REGISTRY) == POLICY_NAMES, "registry and POLICY_NAMES disagree"


def resolve_policy(policy: Policy | str) -> Policy:
    """A Policy from a name or a Policy (raises UnknownPolicyError naming the valid names)."""
    if isinstance(policy, str):
        policy = Policy(name=policy)
    if policy.name not in REGISTRY:
        raise UnknownPolicyError(f"unknown policy {policy.name!r}; expected one of {', '.join(POLICY_NAMES)}")
    return policy


def scored(state: FleetState, pending: Sequence[Task], policy: Policy | str = "optimal") -> Scored:
    """The scored (task, target) table place() works from (the CLI's --json and tests use it)."""
    policy = resolve_policy(policy)
    fa = fleet_arrays(state.fleet)
    return score(fa, gather(fa, state, policy.instance_slots_per_gpu), list(pending), policy)


def lower_bound_int(sc: Scored) -> int:
    """Each task's cheapest option with all shared capacity ignored: a valid lower bound."""
    base = sc.base_int()
    best = base.min(axis=1) if base.shape[1] else np.full(len(sc.tasks), 1 << 62)
    return int(np.minimum(best, sc.defer_int()).sum())


def place(state: FleetState, pending: Sequence[Task], policy: Policy | str = "optimal") -> Placement:
    """Place `pending` on `state`'s fleet under `policy` (a name or a Policy)."""
    policy = resolve_policy(policy)
    if not pending:
        return Placement([], status="OPTIMAL", solver=policy.name)
    if len(pending) == 1 and policy.name in _LEAN_POLICIES:
        started = time.perf_counter()  # for Placement.wall_s only: no decision reads a clock
        fa = fleet_arrays(state.fleet)
        placement = place_one(fa, state, pending[0], policy)
        if placement is not None:
            if policy.explain:
                explain_later(placement.decisions[0], fa, state, pending[0], policy)
            placement.wall_s = time.perf_counter() - started
            return placement
    return place_scored(state, pending, policy)[0]


def place_table(state: FleetState, pending: Sequence[Task], policy: Policy | str = "optimal") -> Placement:
    """`place()` through the scored numpy table for every batch size (no one-task shortcut).

    place() uses it for batches; tests and benchmarks call it to compare the two paths.
    """
    return place_scored(state, pending, policy)[0]


def place_scored(state: FleetState, pending: Sequence[Task],
                 policy: Policy | str = "optimal") -> tuple[Placement, Scored | None]:
    """`place_table` and the scored table it decided from (None for an empty batch): the
    CLI's --json record reads the same table instead of scoring the batch again."""
    policy = resolve_policy(policy)
    if not pending:
        return Placement([], status="OPTIMAL", solver=policy.name), None
    started = time.perf_counter()  # for Placement.wall_s only: no decision reads a clock
    sc = scored(state, pending, policy)
    assignment, status, solver, bound = REGISTRY[policy.name](sc, policy)
    objective = objective_int(sc, policy, assignment)
    full = _exhausted(sc, assignment) if policy.explain and len(pending) > 1 else None
    placement = Placement(
        decisions(sc, assignment, solver, policy.explain, policy.eviction_usd, full),
        status=status,
        objective=objective / MICRO,
        best_bound=(bound if bound is not None else lower_bound_int(sc)) / MICRO,
        solver=solver,
        fixed_usd=fixed_int(sc) / MICRO,
    )
    placement.wall_s = time.perf_counter() - started
    return placement, sc


def _exhausted(sc: Scored, assignment: Assignment) -> np.ndarray:
    """[J] targets whose free slots this batch used up (for the explanations)."""
    used = np.bincount(assignment.target[assignment.target >= 0], minlength=sc.fa.n_targets)
    return used >= sc.view.free_slots
