"""Ray-like hybrid scheduling: pack onto nodes below 50% utilization (score 0, in node order),
then spread by utilization; choose at random among the top k (k = max(1, 20% of the feasible
nodes)). The Generator is seeded from the inputs (task ids, state time, policy seed), so the
same input gives the same answer. Cloud only when no node is feasible."""

from __future__ import annotations

import math
import zlib

import numpy as np

from heddle.optimizer.assign import Assignment, Ledger, cheapest_cloud, greedy
from heddle.optimizer.policy import Policy
from heddle.optimizer.scoring import Scored

__all__ = ["SPREAD_THRESHOLD", "TOP_K_FRACTION", "assign"]

SPREAD_THRESHOLD = 0.5
"""Ray's default `scheduler_spread_threshold`: below it nodes are packed, above it spread."""

TOP_K_FRACTION = 0.2
"""Ray's default `scheduler_top_k_fraction` for choosing randomly among the best nodes."""


def assign(sc: Scored, policy: Policy) -> Assignment:
    n = sc.fa.n_nodes
    ids = ",".join(str(t.id) for t in sc.tasks).encode()
    rng = np.random.default_rng([zlib.crc32(ids), int(sc.view.time_s * 1000) & 0xFFFFFFFF,
                                 policy.random_seed])
    slots = np.maximum(sc.fa.slots, 1)

    def pick(t: int, feasible: np.ndarray, cost: np.ndarray, ledger: Ledger) -> int:
        if n and feasible[:n].any():
            util = 1.0 - np.clip(ledger.slots[:n] / slots, 0.0, 1.0)
            score = np.where(util < SPREAD_THRESHOLD, 0.0, util)
            candidates = np.flatnonzero(feasible[:n])
            ranked = candidates[np.lexsort((candidates, score[candidates]))]
            k = max(1, math.ceil(TOP_K_FRACTION * ranked.size))
            return int(ranked[rng.integers(k)])
        return cheapest_cloud(sc, feasible, cost)

    return greedy(sc, policy, range(len(sc.tasks)), pick)
