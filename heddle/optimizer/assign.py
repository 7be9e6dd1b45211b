"""Sequential assignment with capacity bookkeeping, shared by the fast path and the baselines.

A `Ledger` tracks what a batch has used so far (slots, memory with shared model loads,
evictions, budget left), so every greedy policy sees exactly the same hard constraints as
the CP-SAT model. An assignment is an int array [T]: target index, or -1 for not placed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from heddle.optimizer.policy import Policy
from heddle.optimizer.scoring import Scored

__all__ = ["Assignment", "Ledger", "Picker", "cheapest_cloud", "complete", "fill", "greedy", "memory_may_bind",
           "objective_int"]


@dataclass(slots=True)
class Assignment:
    target: np.ndarray  # [T] int, -1 = not placed
    evicted: np.ndarray  # [J] bool, node evicts resident models
    evicted_by: np.ndarray  # [T] bool, this task's placement forced the eviction


class Ledger:
    """Capacity left while a batch is assigned one task at a time."""

    __slots__ = (
        "base",
        "evict_cost",
        "evictable",
        "evicted",
        "free",
        "kv",
        "loaded",
        "remaining",
        "sc",
        "slots",
        "spend",
        "used",
        "w",
    )

    def __init__(self, sc: Scored, policy: Policy) -> None:
        self.sc = sc
        self.base = sc.base_int()
        self.spend = sc.spend_int()
        self.kv, self.w, self.free, self.evictable = sc.memory_mb()
        self.used = np.zeros(sc.fa.n_targets, dtype=np.int64)
        self.slots = sc.view.free_slots.copy()
        self.loaded = np.zeros((sc.n_groups, sc.fa.n_targets), dtype=bool)
        self.evicted = np.zeros(sc.fa.n_targets, dtype=bool)
        self.remaining = sc.remaining_int()
        self.evict_cost = sc.eviction_int(policy)

    def _add_mb(self, t: int) -> np.ndarray:
        shared = self.sc.resident[t] | self.loaded[self.sc.group[t]]
        return self.kv[t] + np.where(shared, 0, self.w[t])

    def options(self, t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(feasible [J], cost [J] micro-USD, needs_eviction [J]) for task t now."""
        total = self.used + self._add_mb(t)
        fits_free = total <= self.free
        fits = fits_free | (total <= self.free + self.evictable)
        feasible = self.sc.ok[t] & (self.slots > 0) & fits
        a = self.sc.account[t]
        if a >= 0:
            feasible &= self.spend[t] <= self.remaining[a]
        needs = ~fits_free & ~self.evicted
        return feasible, self.base[t] + needs * self.evict_cost, needs

    def take(self, t: int, j: int, needs_eviction: bool) -> None:
        self.used[j] += self._add_mb(t)[j]
        self.slots[j] -= 1
        if not self.sc.resident[t, j]:
            self.loaded[self.sc.group[t], j] = True
        self.evicted[j] |= needs_eviction
        a = self.sc.account[t]
        if a >= 0:
            self.remaining[a] -= self.spend[t, j]


Picker = Callable[[int, np.ndarray, np.ndarray, Ledger], int]
"""(task, feasible [J], cost [J], ledger) -> chosen target index, or -1 to leave it unplaced."""


def greedy(sc: Scored, policy: Policy, order: Sequence[int], pick: Picker) -> Assignment:
    """Visit tasks in `order`; `pick` chooses among the targets still feasible for each."""
    ledger = Ledger(sc, policy)
    t_n = len(sc.tasks)
    target = np.full(t_n, -1, dtype=np.int64)
    evicted_by = np.zeros(t_n, dtype=bool)
    for t in order:
        feasible, cost, needs = ledger.options(t)
        if not feasible.any():
            continue
        j = pick(t, feasible, cost, ledger)
        if j < 0:
            continue
        ledger.take(t, j, bool(needs[j]))
        target[t] = j
        evicted_by[t] = bool(needs[j])
    return Assignment(target, ledger.evicted, evicted_by)


def complete(ledger: Ledger, target: np.ndarray, evicted_by: np.ndarray, order: Sequence[int]) -> None:
    """Visit the tasks still unplaced (`target` -1) in `order`; give each its cheapest target
    still feasible in `ledger` if that beats deferring it (updates the arrays in place)."""
    defer = ledger.sc.defer_int()
    big = np.iinfo(np.int64).max
    for t in order:
        if target[t] >= 0:
            continue
        feasible, cost, needs = ledger.options(int(t))
        masked = np.where(feasible, cost, big)
        j = int(masked.argmin())
        if masked[j] < defer[t]:
            ledger.take(int(t), j, bool(needs[j]))
            target[t], evicted_by[t] = j, bool(needs[j])


def fill(sc: Scored, policy: Policy, assignment: Assignment, order: Sequence[int]) -> Assignment:
    """`assignment` with every task it leaves out that still has a feasible target cheaper
    than deferring placed there (visited in `order`): a search stopped within a gap may leave
    such a task waiting beside a free slot, and a scheduler must not idle a usable slot.
    Never worse: it only adds placements that beat their deferral."""
    ledger = Ledger(sc, policy)
    target = np.full(len(sc.tasks), -1, dtype=np.int64)
    evicted_by = np.zeros(len(sc.tasks), dtype=bool)
    for t in np.flatnonzero(assignment.target >= 0):  # replay: the same hard constraints
        j = int(assignment.target[t])
        feasible, _, needs = ledger.options(int(t))
        if not feasible[j]:
            return assignment  # not replayable in this order: keep the solver's answer
        ledger.take(int(t), j, bool(needs[j]))
        target[t], evicted_by[t] = j, bool(needs[j])
    complete(ledger, target, evicted_by, order)
    filled = Assignment(target, ledger.evicted, evicted_by)
    return filled if objective_int(sc, policy, filled) <= objective_int(sc, policy, assignment) else assignment


def objective_int(sc: Scored, policy: Policy, assignment: Assignment) -> int:
    """Objective of an assignment in micro-dollars (placed costs + deferrals + evictions)."""
    placed = assignment.target >= 0
    rows = np.flatnonzero(placed)
    base = sc.base_int()[rows, assignment.target[rows]].sum()
    defer = sc.defer_int()[~placed].sum()
    return int(base + defer + assignment.evicted.sum() * sc.eviction_int(policy))


def cheapest_cloud(sc: Scored, feasible: np.ndarray, cost: np.ndarray) -> int:
    """Cheapest feasible cloud target (the burst rule already shaped `feasible`), or -1."""
    n = sc.fa.n_nodes
    cloud = feasible[n:]
    if not cloud.any():
        return -1
    return n + int(np.where(cloud, cost[n:], np.iinfo(np.int64).max).argmin())


def memory_may_bind(sc: Scored, ok: np.ndarray, kv: np.ndarray, w: np.ndarray, free: np.ndarray,
                    cap: np.ndarray) -> np.ndarray:
    """[J] nodes whose memory a batch may exhaust: as many of the node's candidate tasks as it
    has slots, each at the largest need among them, would not fit its free memory. Elsewhere
    the memory constraint is implied by the slots (the CP-SAT model and the LP leave it out)."""
    binding = np.zeros(sc.fa.n_targets, dtype=bool)
    for j in range(sc.fa.n_nodes):
        users = np.flatnonzero(ok[:, j])
        if users.size == 0:
            continue
        worst = (kv[users] + np.where(sc.resident[users, j], 0, w[users])).max()
        binding[j] = min(int(cap[j]), users.size) * worst > free[j]
    return binding
