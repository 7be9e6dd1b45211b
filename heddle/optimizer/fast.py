"""The fast path: regret-ordered greedy on the scored table (vectorized numpy per task).

For one task it is exact (the cheapest feasible option or deferral, which is the optimum of
a one-task problem). For a batch it visits the tasks whose best option is most valuable
compared with their second best first, so contested capacity goes where it saves most. It
answers trivial batches by itself, seeds CP-SAT's hint, and is the fallback at the limit.
"""

from __future__ import annotations

import numpy as np

from heddle.optimizer.assign import Assignment, greedy
from heddle.optimizer.policy import Policy
from heddle.optimizer.scoring import Scored

__all__ = ["fast_assign", "regret_order"]


def regret_order(sc: Scored) -> np.ndarray:
    """Task indices, largest regret (second-best minus best option cost) first."""
    t_n = len(sc.tasks)
    if t_n <= 1:
        return np.arange(t_n)
    options = np.concatenate([sc.base_int(), sc.defer_int()[:, None]], axis=1)
    two = np.partition(options, 1, axis=1)[:, :2] if options.shape[1] > 1 else np.repeat(options, 2, axis=1)
    regret = two[:, 1] - two[:, 0]
    priority = np.array([t.priority for t in sc.tasks])
    return np.lexsort((np.arange(t_n), -priority, -regret))


def fast_assign(sc: Scored, policy: Policy) -> Assignment:
    defer = sc.defer_int()

    def pick(t: int, feasible: np.ndarray, cost: np.ndarray, _ledger: object) -> int:
        masked = np.where(feasible, cost, np.iinfo(np.int64).max)
        j = int(masked.argmin())
        return j if masked[j] < defer[t] else -1

    return greedy(sc, policy, regret_order(sc), pick)
