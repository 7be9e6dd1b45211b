"""Round-robin: each task starts its rotation at a node derived from its id (crc32), then takes
the first feasible node; no hidden counter, so the same input gives the same answer.
Cloud only when no node is feasible (and the burst rule allows it)."""

from __future__ import annotations

import zlib

import numpy as np

from heddle.optimizer.assign import Assignment, Ledger, cheapest_cloud, greedy
from heddle.optimizer.policy import Policy
from heddle.optimizer.scoring import Scored

__all__ = ["assign"]


def assign(sc: Scored, policy: Policy) -> Assignment:
    n = sc.fa.n_nodes

    def pick(t: int, feasible: np.ndarray, cost: np.ndarray, _ledger: Ledger) -> int:
        if n and feasible[:n].any():
            start = zlib.crc32(str(sc.tasks[t].id).encode()) % n
            rotated = np.roll(np.arange(n), -start)
            return int(rotated[feasible[rotated]][0])
        return cheapest_cloud(sc, feasible, cost)

    return greedy(sc, policy, range(len(sc.tasks)), pick)
