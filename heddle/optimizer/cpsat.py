"""The CP-SAT model for a batch, written like an OR-Tools sample.

Sections: data, variables, constraints, objective, solve, read back. The speed tricks are
switchable so the benchmark can compare with the plain model on the same problem:
  * aggregate identical tasks into classes with integer counts;
  * merge identical nodes whose memory cannot bind into pools (capacity = summed slots);
  * warm-start from the fast path's assignment (AddHint).
Always: a time limit, a fixed seed, and a status check (the fast path answers otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ortools.sat.python import cp_model

from heddle.optimizer.assign import Assignment, memory_may_bind, objective_int
from heddle.optimizer.policy import Policy
from heddle.optimizer.scoring import Scored

__all__ = ["CpResult", "GapGoal", "solve_cpsat"]


@dataclass(slots=True)
class CpResult:
    assignment: Assignment
    status: str  # OPTIMAL / FEASIBLE / FAST_PATH (solver found nothing better or failed)
    objective_int: int
    bound_int: int
    wall_s: float
    n_classes: int
    n_pools: int


def _classes(sc: Scored, ok, base, spend, kv, w, aggregate: bool) -> list[list[int]]:
    if not aggregate:
        return [[t] for t in range(len(sc.tasks))]
    groups: dict[bytes, list[int]] = {}
    defer = sc.defer_int()
    for t in range(len(sc.tasks)):
        key = b"|".join((
            np.array([sc.group[t], sc.account[t], defer[t], kv[t], w[t]], dtype=np.int64).tobytes(),
            ok[t].tobytes(), base[t].tobytes(), spend[t].tobytes(), sc.resident[t].tobytes(),
        ))
        groups.setdefault(key, []).append(t)
    return list(groups.values())


def _pools(sc: Scored, ok, base, kv, w, free, cap, pools: bool) -> tuple[list[list[int]], np.ndarray]:
    """Target pools and a [J] flag 'memory may bind on this node'."""
    j_n, n_nodes = sc.fa.n_targets, sc.fa.n_nodes
    binding = memory_may_bind(sc, ok, kv, w, free, cap)
    if not pools:
        return [[j] for j in range(j_n)], binding
    merged: dict[bytes, list[int]] = {}
    out: list[list[int]] = []
    for j in range(j_n):
        if j >= n_nodes or binding[j]:
            out.append([j])
            continue
        key = ok[:, j].tobytes() + base[:, j].tobytes()
        if key in merged:
            merged[key].append(j)
        else:
            merged[key] = [j]
            out.append(merged[key])
    return out, binding


class _StopWithin(cp_model.CpSolverSolutionCallback):
    """Stops the search at the first solution within a relative gap of the better of CP-SAT's
    bound and an outside bound, the gap measured on the objective less its fixed part."""

    def __init__(self, goal: GapGoal, offset: int) -> None:
        super().__init__()
        self.goal, self.offset = goal, offset  # offset: the model leaves out fixed_total

    def on_solution_callback(self) -> None:
        objective = self.ObjectiveValue() + self.offset
        bound = max(self.BestObjectiveBound() + self.offset, self.goal.bound_int)
        if objective - bound <= self.goal.relative_gap * (objective - self.goal.fixed_int):
            self.StopSearch()


@dataclass(frozen=True, slots=True)
class GapGoal:
    """When a solution is good enough: (objective - bound) <= relative_gap x (objective -
    fixed), all in micro-USD, with `bound_int` a valid lower bound found outside CP-SAT."""

    relative_gap: float
    bound_int: int
    fixed_int: int


def solve_cpsat(sc: Scored, policy: Policy, hint: Assignment | None, *, aggregate: bool = True,
                pools: bool = True, prune: bool = True, time_limit_s: float | None = None,
                candidates: np.ndarray | None = None, goal: GapGoal | None = None) -> CpResult:
    """Solve the batch exactly (up to the policy's gap and deterministic limit).

    `candidates` [T, J]: the pairs the model may use (default: every feasible pair); the
    caller passes the LP's reduced-cost survivors, which keeps every assignment better than
    the hint. `goal`: stop at the first solution within that gap (with one worker the
    solutions come in the same order on every run, so stopping there is reproducible)."""
    # --- data ------------------------------------------------------------------------------
    base, spend, defer = sc.base_int(), sc.spend_int(), sc.defer_int()
    kv, w, free, evictable = sc.memory_mb()
    cap = sc.view.free_slots
    ok = sc.ok if candidates is None else candidates & sc.ok
    classes = _classes(sc, ok, base, spend, kv, w, aggregate)
    target_pools, binding = _pools(sc, ok, base, kv, w, free, cap, pools)
    evict_cost = sc.eviction_int(policy)
    model = cp_model.CpModel()

    # --- variables: x[c, p] = how many tasks of class c go to pool p -----------------------
    x: dict[tuple[int, int], cp_model.IntVar] = {}
    ub: dict[tuple[int, int], int] = {}
    pool_cap = [int(sum(max(int(cap[j]), 0) for j in pool)) for pool in target_pools]
    for c, members in enumerate(classes):
        rep = members[0]
        for p, pool in enumerate(target_pools):
            # a pair costing at least the deferral is dominated (deferring uses no capacity)
            if ok[rep, pool[0]] and pool_cap[p] > 0 and (not prune or base[rep, pool[0]] < defer[rep]):
                ub[c, p] = min(len(members), pool_cap[p])
                x[c, p] = model.NewIntVar(0, ub[c, p], f"x[{c},{p}]")
    load: dict[tuple[int, int], cp_model.IntVar] = {}
    evict: dict[int, cp_model.IntVar] = {}

    # --- constraints ---------------------------------------------------------------------------
    by_class: dict[int, list] = {}
    by_pool: dict[int, list] = {}
    for (c, p), var in x.items():
        by_class.setdefault(c, []).append(var)
        by_pool.setdefault(p, []).append((c, var, ub[c, p]))
    for c, vars_ in by_class.items():  # each task placed at most once (the rest is deferred)
        model.Add(sum(vars_) <= len(classes[c]))
    for p, items in by_pool.items():  # slots / per-call capacity
        if sum(u for _, _, u in items) > pool_cap[p]:
            model.Add(sum(v for _, v, _ in items) <= pool_cap[p])
    for p, items in by_pool.items():  # memory on nodes where it may bind (pools never bind)
        j = target_pools[p][0]
        if not binding[j]:
            continue
        mem_terms = []
        for c, var, upper in items:
            rep = classes[c][0]
            mem_terms.append(int(kv[rep]) * var)
            if not sc.resident[rep, j]:
                g = int(sc.group[rep])
                if (g, j) not in load:
                    load[g, j] = model.NewBoolVar(f"load[{g},{j}]")
                    mem_terms.append(int(w[rep]) * load[g, j])
                model.Add(var <= upper * load[g, j])
        capacity = int(free[j])
        if evictable[j] > 0:
            evict[j] = model.NewBoolVar(f"evict[{j}]")
            model.Add(sum(mem_terms) <= capacity + int(evictable[j]) * evict[j])
        else:
            model.Add(sum(mem_terms) <= capacity)
    for a, limit in enumerate(sc.remaining_int()):  # budgets, including this batch's spend
        terms = [int(spend[classes[c][0], target_pools[p][0]]) * v for (c, p), v in x.items()
                 if sc.account[classes[c][0]] == a and spend[classes[c][0], target_pools[p][0]] > 0]
        if terms:
            model.Add(sum(terms) <= int(limit))

    # --- objective: placed costs + deferrals + evictions --------------------------------------
    # tasks with no candidate pair are deferred whatever happens: their cost stays out of the
    # model's objective, so CP-SAT's relative gap is measured on the part a solver can change
    fixed_total = int(sum(int(defer[m[0]]) * len(m) for c, m in enumerate(classes) if c not in by_class))
    deferred_total = int(sum(int(defer[m[0]]) * len(m) for m in classes)) - fixed_total
    objective = (
        sum((int(base[classes[c][0], target_pools[p][0]]) - int(defer[classes[c][0]])) * v
            for (c, p), v in x.items())
        + sum(evict_cost * e for e in evict.values())
        + deferred_total
    )
    model.Minimize(objective)

    # --- warm start from the fast path ---------------------------------------------------------
    if hint is not None:
        pool_of = {j: p for p, pool in enumerate(target_pools) for j in pool}
        class_of = {t: c for c, m in enumerate(classes) for t in m}
        counts: dict[tuple[int, int], int] = {}
        for t, j in enumerate(hint.target):
            if j >= 0:
                key = (class_of[t], pool_of[int(j)])
                counts[key] = counts.get(key, 0) + 1
        for key, var in x.items():
            model.AddHint(var, counts.get(key, 0))
        loaded = {(int(sc.group[t]), int(j)) for t, j in enumerate(hint.target) if j >= 0}
        for key, var in load.items():
            model.AddHint(var, int(key in loaded))
        for j, var in evict.items():
            model.AddHint(var, int(hint.evicted[j]))

    # --- solve -----------------------------------------------------------------------------
    solver = cp_model.CpSolver()
    limit = policy.time_limit_s if time_limit_s is None else time_limit_s
    if policy.deterministic:  # same input, same answer, however loaded the machine is
        solver.parameters.max_deterministic_time = limit
        solver.parameters.num_workers = 1
    else:
        solver.parameters.max_time_in_seconds = limit
        solver.parameters.num_workers = policy.num_workers
    solver.parameters.random_seed = policy.random_seed
    stop = None
    if goal is not None:
        # the model's objective is the changeable part (fixed_total left out), so CP-SAT's own
        # relative gap is the goal's: it stops as soon as its bound, not only a solution, closes it
        solver.parameters.relative_gap_limit = goal.relative_gap
        stop = _StopWithin(goal, fixed_total)
    status = solver.Solve(model, stop)
    name = solver.StatusName(status)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        fallback = hint if hint is not None else Assignment(
            np.full(len(sc.tasks), -1), np.zeros(sc.fa.n_targets, bool), np.zeros(len(sc.tasks), bool))
        obj = objective_int(sc, policy, fallback)
        return CpResult(fallback, f"FAST_PATH ({name})", obj, 0, solver.WallTime(),  # no bound: 0
                        len(classes), len(target_pools))

    # --- read back: hand each class's tasks to its pools, each pool's slots node by node -----
    target = np.full(len(sc.tasks), -1, dtype=np.int64)
    left = cap.astype(np.int64).copy()
    for (c, p), var in sorted(x.items()):
        n = int(solver.Value(var))
        queue = [t for t in classes[c] if target[t] < 0]
        for t in queue[:n]:
            j = next(j for j in target_pools[p] if left[j] > 0)
            target[t] = j
            left[j] -= 1
    evicted = np.zeros(sc.fa.n_targets, dtype=bool)
    evicted_by = np.zeros(len(sc.tasks), dtype=bool)
    for j, var in evict.items():
        if solver.Value(var):
            evicted[j] = True
            on_j = np.flatnonzero(target == j)
            if on_j.size:
                evicted_by[on_j[0]] = True
    result = Assignment(target, evicted, evicted_by)
    obj = objective_int(sc, policy, result)
    bound = round(solver.BestObjectiveBound()) + fixed_total
    if hint is not None and objective_int(sc, policy, hint) < obj:  # never worse than the hint
        result, obj = hint, objective_int(sc, policy, hint)
    if name == "OPTIMAL" and obj > bound:
        name = "FEASIBLE"
    return CpResult(result, name, obj, min(bound, obj), solver.WallTime(), len(classes), len(target_pools))
