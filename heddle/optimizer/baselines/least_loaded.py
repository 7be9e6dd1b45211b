"""Least-loaded, like Kubernetes' LeastAllocated score: the feasible node with the largest mean
free fraction of its resources (slots and memory) wins; ties go to the lower index.
Cloud only when no node is feasible (and the burst rule allows it)."""

from __future__ import annotations

import numpy as np

from heddle.optimizer.assign import Assignment, Ledger, cheapest_cloud, greedy
from heddle.optimizer.policy import Policy
from heddle.optimizer.scoring import Scored

__all__ = ["assign"]


def free_fraction(sc: Scored, ledger: Ledger) -> np.ndarray:
    """[N] mean of free-slot and free-memory fractions (Kubernetes LeastAllocated, 2 resources)."""
    n = sc.fa.n_nodes
    slots = np.maximum(sc.fa.slots, 1)
    slot_free = ledger.slots[:n] / slots
    mem_total = np.maximum(sc.fa.installed_gb[:n] * 1000, 1)
    mem_free = (ledger.free[:n] - ledger.used[:n]) / mem_total
    return (slot_free + mem_free) / 2


def assign(sc: Scored, policy: Policy) -> Assignment:
    n = sc.fa.n_nodes

    def pick(t: int, feasible: np.ndarray, cost: np.ndarray, ledger: Ledger) -> int:
        if n and feasible[:n].any():
            score = np.where(feasible[:n], free_fraction(sc, ledger), -np.inf)
            return int(score.argmax())
        return cheapest_cloud(sc, feasible, cost)

    return greedy(sc, policy, range(len(sc.tasks)), pick)
