"""Cheapest-feasible greedy: tasks in arrival order, each takes the cheapest target still
feasible (local or, where the burst rule allows, cloud) and is placed whenever one exists;
it never weighs waiting against placing and never reorders contested tasks."""

from __future__ import annotations

import numpy as np

from heddle.optimizer.assign import Assignment, Ledger, greedy
from heddle.optimizer.policy import Policy
from heddle.optimizer.scoring import Scored

__all__ = ["assign"]


def assign(sc: Scored, policy: Policy) -> Assignment:
    def pick(_t: int, feasible: np.ndarray, cost: np.ndarray, _ledger: Ledger) -> int:
        return int(np.where(feasible, cost, np.iinfo(np.int64).max).argmin())

    return greedy(sc, policy, range(len(sc.tasks)), pick)
