"""Large batches: solve the LP relaxation (HiGHS), round it through the ledger, keep its bound.

CP-SAT on a 2,000 x 50 batch spends seconds just in model building and presolve. The
assignment structure (each task once, slots per target, budgets per account) is nearly
integral as an LP, so: drop the pairs dominated by deferring, relax memory (a relaxation,
so the LP value stays a valid lower bound), solve with HiGHS, then hand each task to the
target the LP gave most of it, through the same Ledger that enforces every hard constraint
(memory included), and let the regret greedy finish whatever does not fit.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linprog
from scipy.sparse import coo_matrix, vstack

from heddle.optimizer.assign import Assignment, Ledger
from heddle.optimizer.fast import regret_order
from heddle.optimizer.policy import Policy
from heddle.optimizer.scoring import Scored

__all__ = ["lp_round"]


def lp_round(sc: Scored, policy: Policy) -> tuple[Assignment, int | None]:
    """(assignment, LP lower bound in micro-USD or None if the LP failed)."""
    base, defer = sc.base_int(), sc.defer_int()
    t_n, j_n = base.shape
    tt, jj = np.nonzero(sc.ok & (base < defer[:, None]))
    n_var = tt.size
    bound = None
    preferred = np.full(t_n, -1)
    if n_var:
        cols = np.arange(n_var)
        spend = sc.spend_int()[tt, jj].astype(float)
        acc = sc.account[tt]
        charged = acc >= 0
        a_ub = vstack([
            coo_matrix((np.ones(n_var), (tt, cols)), shape=(t_n, n_var)),
            coo_matrix((np.ones(n_var), (jj, cols)), shape=(j_n, n_var)),
            coo_matrix((spend[charged], (acc[charged], cols[charged])), shape=(len(sc.accounts), n_var)),
        ]).tocsr()
        b_ub = np.concatenate([np.ones(t_n), np.minimum(sc.view.free_slots, t_n).astype(float),
                               sc.remaining_int().astype(float)])
        res = linprog((base[tt, jj] - defer[tt]).astype(float), A_ub=a_ub, b_ub=b_ub, bounds=(0, 1),
                      method="highs", options={"time_limit": max(policy.time_limit_s, 0.1)})
        if res.status == 0:
            bound = int(np.floor(res.fun + defer.sum() + 1e-6))
            share = np.zeros((t_n, j_n))
            share[tt, jj] = res.x
            best = share.argmax(axis=1)
            preferred = np.where(share[np.arange(t_n), best] > 0.5, best, -1)
    ledger = Ledger(sc, policy)
    target = np.full(t_n, -1, dtype=np.int64)
    evicted_by = np.zeros(t_n, dtype=bool)
    big = np.iinfo(np.int64).max
    # the LP's (nearly integral) choices first, then everyone else by regret
    order = np.concatenate([np.flatnonzero(preferred >= 0), regret_order(sc)])
    for t in order:
        if target[t] >= 0:
            continue
        feasible, cost, needs = ledger.options(int(t))
        j = int(preferred[t])
        if j < 0 or not feasible[j]:
            masked = np.where(feasible, cost, big)
            j = int(masked.argmin())
            if masked[j] >= defer[t]:
                continue
        ledger.take(int(t), j, bool(needs[j]))
        target[t] = j
        evicted_by[t] = bool(needs[j])
    return Assignment(target, ledger.evicted, evicted_by), bound
