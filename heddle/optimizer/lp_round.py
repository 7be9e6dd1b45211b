"""The LP relaxation of a batch (HiGHS): a lower bound, a rounded assignment, and the pairs
that can still matter.

The assignment structure (each task once, slots per target, budgets per account) is nearly
integral as an LP, so: drop the pairs dominated by deferring, keep memory on the nodes where
it may bind in its relaxed form (fractional model loads and evictions: a relaxation, so the
LP value stays a valid lower bound, and a memory-tight batch gets a bound and a rounding
that know what fits), solve with HiGHS, then hand each task to the
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

from heddle.optimizer.assign import Assignment, Ledger, complete, memory_may_bind, objective_int
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
    if not n_var:  # nothing can be placed: deferring everything is the optimum
        bound = int(defer.sum())
    else:
        cols = np.arange(n_var)
        spend = sc.spend_int()[tt, jj].astype(float)
        acc = sc.account[tt]
        charged = acc >= 0
        memory = _memory_rows(sc, policy, tt, jj)
        n_all = n_var + memory.n_extra
        a_ub = vstack([
            coo_matrix((np.ones(n_var), (tt, cols)), shape=(t_n, n_all)),
            coo_matrix((np.ones(n_var), (jj, cols)), shape=(j_n, n_all)),
            coo_matrix((spend[charged], (acc[charged], cols[charged])), shape=(len(sc.accounts), n_all)),
            memory.rows,
        ]).tocsr()
        b_ub = np.concatenate([np.ones(t_n), np.minimum(sc.view.free_slots, t_n).astype(float),
                               sc.remaining_int().astype(float), memory.rhs])
        cost = np.concatenate([(base[tt, jj] - defer[tt]).astype(float), memory.cost])
        # no time limit: a wall-clock limit would make the answer depend on the machine's load
        res = linprog(cost, A_ub=a_ub, b_ub=b_ub, bounds=(0, 1), method="highs-ds")
        if res.status == 0:
            bound = int(np.floor(res.fun + defer.sum() + 1e-6))
            share = np.zeros((t_n, j_n))
            share[tt, jj] = res.x[:n_var]
            best = share.argmax(axis=1)
            top = share[np.arange(t_n), best]
            preferred = np.where(top > 0.5, best, -1)
            reduced = np.full((t_n, j_n), np.inf)
            reduced[tt, jj] = np.maximum(res.lower.marginals[:n_var], 0.0)
    return LpResult(_round(sc, policy, preferred, top), bound, reduced)


@dataclass(slots=True)
class _MemoryRows:
    """The LP's memory relaxation: extra columns (model loads y[g, j], evictions e[j]) after
    the pair columns, their costs, and the rows that bind them (see `_memory_rows`)."""

    rows: object  # scipy sparse [R, n_var + n_extra]
    rhs: np.ndarray  # [R]
    cost: np.ndarray  # [n_extra]
    n_extra: int


def _memory_rows(sc: Scored, policy: Policy, tt: np.ndarray, jj: np.ndarray) -> _MemoryRows:
    """Memory on the nodes where it may bind, relaxed like the CP-SAT model's constraint:
    sum kv[t] x[t,j] + sum w[g] y[g,j] <= free[j] + evictable[j] e[j], with x[t,j] <= y[g,j]
    for a model not resident on j, y and e in [0, 1] and e charged the eviction cost. Any
    assignment the Ledger accepts satisfies it, so the LP value stays a lower bound; without
    it a memory-tight batch has a weak bound and its rounding overfills nodes."""
    from scipy.sparse import coo_matrix

    n_var = tt.size
    kv, w, free, evictable = sc.memory_mb()
    pairs = np.zeros(sc.ok.shape, dtype=bool)
    pairs[tt, jj] = True
    binding = memory_may_bind(sc, pairs, kv, w, free, sc.view.free_slots)
    on = np.flatnonzero(binding[jj])  # pair columns on nodes where memory may bind
    if on.size == 0:
        return _MemoryRows(coo_matrix((0, n_var)), np.zeros(0), np.zeros(0), 0)
    nodes = np.flatnonzero(binding)
    node_row = np.full(sc.fa.n_targets, -1)
    node_row[nodes] = np.arange(nodes.size)
    loads = on[~sc.resident[tt[on], jj[on]] & (w[tt[on]] > 0)]  # pairs that load their model
    keys = sc.group[tt[loads]] * sc.fa.n_targets + jj[loads]
    load_keys, load_of = np.unique(keys, return_inverse=True)
    n_load = load_keys.size
    load_node = load_keys % sc.fa.n_targets
    load_w = w[tt[loads]][np.unique(load_of, return_index=True)[1]]  # one model per key: same w
    ev_nodes = nodes[evictable[nodes] > 0]
    n_ev = ev_nodes.size
    y0, e0 = n_var, n_var + n_load  # first load column, first eviction column
    r, c, v = [], [], []
    # memory rows: one per binding node
    r += [node_row[jj[on]], node_row[load_node], node_row[ev_nodes]]
    c += [on, y0 + np.arange(n_load), e0 + np.arange(n_ev)]
    v += [kv[tt[on]].astype(float), load_w.astype(float), -evictable[ev_nodes].astype(float)]
    # link rows: x[t, j] - y[g, j] <= 0, one per pair that loads its model
    link = nodes.size + np.arange(loads.size)
    r += [link, link]
    c += [loads, y0 + load_of]
    v += [np.ones(loads.size), -np.ones(loads.size)]
    n_rows = nodes.size + loads.size
    rows = coo_matrix((np.concatenate(v), (np.concatenate(r), np.concatenate(c))),
                      shape=(n_rows, n_var + n_load + n_ev))
    rhs = np.concatenate([free[nodes].astype(float), np.zeros(loads.size)])
    cost = np.concatenate([np.zeros(n_load), np.full(n_ev, float(sc.eviction_int(policy)))])
    return _MemoryRows(rows, rhs, cost, n_load + n_ev)


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
