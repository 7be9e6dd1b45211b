"""A Lagrangian lower bound for large batches (slots and budgets relaxed with multipliers).

Dropping the memory constraints and evictions (costs >= 0) and pricing slot and budget
capacity with multipliers lambda_j, mu_a >= 0 gives, for any multipliers,

    L(lambda, mu) = sum_t min(defer_t, min_j c_tj + lambda_j + mu_a(t) * spend_tj)
                    - sum_j lambda_j cap_j - sum_a mu_a remaining_a   <=   optimum.

Subgradient steps (Polyak's rule against the incumbent) raise it; for this assignment
structure it approaches the LP bound in a few hundred vectorized steps. The final
multipliers also price contested capacity for the fast path's repair step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from heddle.optimizer.scoring import INFEASIBLE, Scored

__all__ = ["LagrangeBound", "lagrangian_bound"]

DEFAULT_ITERATIONS = 300
"""Subgradient steps; the bound of a 2,000 x 54 batch stops moving well before this."""


@dataclass(slots=True)
class LagrangeBound:
    bound_int: int
    lam: np.ndarray  # [J] price of one slot (micro-USD)
    mu: np.ndarray  # [A] price of one micro-USD of budget


def lagrangian_bound(sc: Scored, upper_int: int, iterations: int = DEFAULT_ITERATIONS) -> LagrangeBound:
    cost = sc.base_int().astype(float)
    cost[cost >= INFEASIBLE] = np.inf
    defer = sc.defer_int().astype(float)
    cap = sc.view.free_slots.astype(float)
    spend = sc.spend_int().astype(float)
    remaining = sc.remaining_int().astype(float)
    account = sc.account
    has_acc = account >= 0
    t_idx = np.arange(len(sc.tasks))
    lam = np.zeros(cost.shape[1])
    mu = np.zeros(len(remaining))
    best, best_lam, best_mu = -np.inf, lam.copy(), mu.copy()
    theta = 1.0
    since_best = 0
    finite_cap = cap < (1 << 29)
    for _ in range(iterations):
        adj = cost + lam
        if mu.size:
            adj = adj + np.where(has_acc, mu[np.maximum(account, 0)], 0.0)[:, None] * spend
        j = adj.argmin(axis=1) if adj.shape[1] else np.zeros(len(defer), dtype=int)
        v = adj[t_idx, j] if adj.shape[1] else np.full(len(defer), np.inf)
        use = v < defer
        value = np.minimum(v, defer).sum() - lam @ cap - mu @ remaining
        if value > best + 1e-9:
            best, best_lam, best_mu, since_best = value, lam.copy(), mu.copy(), 0
        else:
            since_best += 1
            if since_best >= 20:
                theta, since_best = theta / 2, 0
        g_lam = np.bincount(j[use], minlength=cost.shape[1]) - cap
        g_lam[~finite_cap] = 0.0
        g_mu = (np.bincount(account[use & has_acc], weights=spend[t_idx, j][use & has_acc], minlength=mu.size)
                - remaining) if mu.size else np.zeros(0)
        g_lam = np.where((lam <= 0) & (g_lam < 0), 0.0, g_lam)
        g_mu = np.where((mu <= 0) & (g_mu < 0), 0.0, g_mu)
        norm = g_lam @ g_lam + g_mu @ g_mu
        if norm <= 0 or theta < 1e-4:
            break
        step = theta * max(upper_int - value, 1.0) / norm
        lam = np.maximum(lam + step * g_lam, 0.0)
        mu = np.maximum(mu + step * g_mu, 0.0)
    return LagrangeBound(int(np.floor(best + 1e-6)) if np.isfinite(best) else 0, best_lam, best_mu)
