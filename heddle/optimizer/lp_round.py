"""The LP relaxation of a batch (HiGHS): a lower bound, a rounded assignment, and the pairs
that can still matter.

The assignment structure (each task once, slots per target, budgets per account) is nearly
integral as an LP, so: drop the pairs dominated by deferring, relax memory (a relaxation,
so the LP value stays a valid lower bound), solve with HiGHS, then hand each task to the
target the LP gave most of it, through the same Ledger that enforces every hard constraint
(memory included), and let the regret greedy finish whatever does not fit.

The LP's reduced costs also prune the exact model: for any feasible assignment,
objective >= LP value + sum of the reduced costs of the pairs it uses (weak duality), so a
pair whose reduced cost exceeds (incumbent - LP value) is in no assignment better than the
incumbent, and CP-SAT need not see it (`LpResult.candidates`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from heddle.optimizer.assign import Assignment, Ledger, complete, objective_int
from heddle.optimizer.fast import regret_order
from heddle.optimizer.policy import Policy
from heddle.optimizer.scoring import Scored

__all__ = ["LpResult", "lp_round"]

INTEGRAL = 1.0 - 1e-6
"""An LP value at least this is taken as 1 (HiGHS returns vertex solutions up to its tolerance)."""

DUAL_SLACK_MICRO = 10.0
"""Reduced costs are trusted to this many micro-dollars (plus 1e-6 relative) before a pair is
pruned: HiGHS's dual feasibility tolerance is 1e-7 on costs of up to a few million."""


@dataclass(slots=True)
class LpResult:
    assignment: Assignment  # the rounded LP (every hard constraint holds)
    bound_int: int | None  # LP value in micro-USD (None: the LP failed)
    reduced: np.ndarray | None  # [T, J] reduced cost of each candidate pair (inf elsewhere)

    def candidates(self, sc: Scored, policy: Policy, incumbent: Assignment) -> np.ndarray:
        """[T, J] pairs that may appear in an assignment cheaper than `incumbent`."""
        base = sc.base_int()
        pairs = sc.ok & (base < sc.defer_int()[:, None])
        if self.reduced is None or self.bound_int is None:
            return pairs
        room = objective_int(sc, policy, incumbent) - self.bound_int
        slack = DUAL_SLACK_MICRO + 1e-6 * float(np.abs(base[pairs]).max(initial=0))
        return pairs & (self.reduced <= room + slack)


def lp_round(sc: Scored, policy: Policy) -> LpResult:
    """Solve the batch's LP relaxation and round it (see the module docstring)."""
    # scipy is imported here, not at the top: `heddle sim` and `--help` load the optimizer
    # package and most runs never solve an LP (scipy.optimize costs ~0.4 s to import)
    from scipy.optimize import linprog
    from scipy.sparse import coo_matrix, vstack

    base, defer = sc.base_int(), sc.defer_int()
    t_n, j_n = base.shape
    tt, jj = np.nonzero(sc.ok & (base < defer[:, None]))
    n_var = tt.size
    bound = reduced = None
    preferred = np.full(t_n, -1)
    top = np.zeros(t_n)
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
        # no time limit: a wall-clock limit would make the answer depend on the machine's load
        res = linprog((base[tt, jj] - defer[tt]).astype(float), A_ub=a_ub, b_ub=b_ub, bounds=(0, 1),
                      method="highs-ds")
        if res.status == 0:
            bound = int(np.floor(res.fun + defer.sum() + 1e-6))
            share = np.zeros((t_n, j_n))
            share[tt, jj] = res.x
            best = share.argmax(axis=1)
            top = share[np.arange(t_n), best]
            preferred = np.where(top > 0.5, best, -1)
            reduced = np.full((t_n, j_n), np.inf)
            reduced[tt, jj] = np.maximum(res.lower.marginals, 0.0)
    return LpResult(_round(sc, policy, preferred, top), bound, reduced)


def _round(sc: Scored, policy: Policy, preferred: np.ndarray, top: np.ndarray) -> Assignment:
    """The LP's choices first, each on its own target only (a task whose target is full must
    not take another task's LP target or budget before that task runs): the integral ones,
    then the rounded-up ones, each most valuable first (budgets are knapsacks); then everyone
    else by regret, to the cheapest target still feasible if that beats deferring."""
    base, defer = sc.base_int(), sc.defer_int()
    t_n = base.shape[0]
    ledger = Ledger(sc, policy)
    target = np.full(t_n, -1, dtype=np.int64)
    evicted_by = np.zeros(t_n, dtype=bool)
    chosen = np.flatnonzero(preferred >= 0)
    value = defer[chosen] - base[chosen, preferred[chosen]]  # what placing it saves
    for t in chosen[np.lexsort((chosen, -value, top[chosen] < INTEGRAL))]:
        j = int(preferred[t])
        feasible, _, needs = ledger.options(int(t))
        if feasible[j]:
            ledger.take(int(t), j, bool(needs[j]))
            target[t], evicted_by[t] = j, bool(needs[j])
    complete(ledger, target, evicted_by, regret_order(sc))
    return Assignment(target, ledger.evicted, evicted_by)
