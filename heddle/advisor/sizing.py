"""CP-SAT sizing model in the spirit of Melange (Griggs et al., 2024, "Melange: Cost
Efficient Large Language Model Serving by Exploiting GPU Heterogeneity").

Choose how many units of each purchasable type to buy, and which share of every workload
slice each unit type serves, so that the monthly cost (amortized purchase + energy + cloud
spend + the value of requests left unserved) is least and the purchase fits the budget.
With every count fixed the same model is the analytic pre-screen: the cheapest way a given
fleet can serve the workload, without a simulation.

Layout follows the OR-Tools samples: data, variables, constraints, objective, solve, read back.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
from ortools.sat.python import cp_model
from scipy import sparse
from scipy.optimize import linprog

from heddle.advisor.errors import SizingError
from heddle.advisor.slices import PairTable, Slice, UnitType

__all__ = ["MixResult", "dominated", "fixed_fleet_cost", "solve_mix"]

PARTS = 1000
"""A slice's traffic is split in permille: fine enough that rounding never matters for cost."""

UTIL_SCALE = 10_000
"""Utilization coefficients are integers in 1/10,000 of a unit (rounded up: never optimistic)."""

SOLVER_WORKERS = 8
"""CP-SAT needs its portfolio (LP, core and LNS subsolvers) to close this model's gap: with 2
workers a 70-slice x 30-option model was still FEASIBLE after 10 s, with 8 it is OPTIMAL in
about 1 s on a 2-core machine (the workers time-share). With a fixed seed the optimal cost is
reproducible; among mixes of exactly equal cost the one returned may vary."""

MICRO = 1_000_000
"""Objective in micro-USD per month, so cent-sized terms keep four significant digits."""


@dataclass(slots=True)
class MixResult:
    status: str  # OPTIMAL | FEASIBLE
    counts: dict[str, int]  # unit key -> units in the mix (existing ones included)
    bought: dict[str, int]  # purchase options with a count > 0
    purchase_usd: float
    monthly_usd: dict[str, float]  # amortized, idle, energy, cloud, misses
    local_share: float  # share of requests served locally
    cloud_share: float
    miss_share: float
    utilization: dict[str, float]  # unit key -> design-peak utilization per unit
    wall_s: float
    served: dict[str, dict[str, float]] = field(default_factory=dict)  # slice -> unit -> share

    @property
    def operating_usd_per_month(self) -> float:
        m = self.monthly_usd
        return m["idle"] + m["energy"] + m["cloud"] + m["misses"]


def _demand(slices: list[Slice], units: list[UnitType], table: PairTable) -> np.ndarray:
    """Design-peak utilization of one unit if it served a whole slice [S, U] (0 if infeasible)."""
    rate = np.array([s.design_rate_per_s for s in slices])[:, None]
    slots = np.array([max(u.node.slots, 1) for u in units], dtype=np.float64)[None, :]
    return np.where(table.feasible, rate * np.where(table.feasible, table.seconds, 0.0) / slots, 0.0)


def _read_back(status: str, slices: list[Slice], units: list[UnitType], table: PairTable,
               buyable: list[bool], counts: dict[str, int], share: dict[tuple[int, int], float],
               cloud_share: dict[int, float], miss_share: np.ndarray,
               horizon_months: int, t0: float) -> MixResult:
    per_month = np.array([s.per_month for s in slices])
    miss_usd = np.array([s.miss_usd for s in slices])
    demand = _demand(slices, units, table)
    total = per_month.sum() or 1.0
    local = sum(per_month[i] * f for (i, _), f in share.items())
    monthly = {
        "amortized": sum(u.price_usd * counts[u.key] / horizon_months
                         for j, u in enumerate(units) if buyable[j]),
        "idle": float(sum(table.idle_usd_per_month[j] * counts[u.key] for j, u in enumerate(units))),
        "energy": float(sum(per_month[i] * table.energy_usd[i, j] * f for (i, j), f in share.items())),
        "cloud": float(sum(per_month[i] * table.cloud_usd[i] * f for i, f in cloud_share.items())),
        "misses": float(per_month @ (miss_share * miss_usd)),
    }
    utilization: dict[str, float] = {}
    served: dict[str, dict[str, float]] = {}
    for (i, j), f in share.items():
        if f > 1e-9:
            served.setdefault(slices[i].key, {})[units[j].key] = f
            key = units[j].key
            utilization[key] = utilization.get(key, 0.0) + demand[i, j] * f / counts[key]
    return MixResult(
        status=status,
        counts=counts,
        bought={u.key: counts[u.key] for j, u in enumerate(units) if buyable[j] and counts[u.key]},
        purchase_usd=float(sum(u.price_usd * counts[u.key] for j, u in enumerate(units) if buyable[j])),
        monthly_usd=monthly,
        local_share=float(local / total),
        cloud_share=float(sum(per_month[i] * f for i, f in cloud_share.items()) / total),
        miss_share=float(per_month @ miss_share / total),
        utilization=utilization,
        wall_s=time.perf_counter() - t0,
        served=served,
    )


def fixed_fleet_cost(slices: list[Slice], units: list[UnitType], table: PairTable, *,
                     target_utilization: float) -> MixResult:
    """The same model with every count fixed: a linear program (HiGHS via scipy), solved
    exactly in milliseconds. This is the analytic pre-screen of one candidate fleet."""
    t0 = time.perf_counter()
    n_s, n_u = len(slices), len(units)
    per_month = np.array([s.per_month for s in slices])
    demand = _demand(slices, units, table)
    pairs = np.argwhere(table.feasible)
    clouds = np.flatnonzero(np.isfinite(table.cloud_usd))
    n_y, n_c = len(pairs), len(clouds)
    n_var = n_y + n_c + n_s
    cost = np.concatenate([
        per_month[pairs[:, 0]] * table.energy_usd[pairs[:, 0], pairs[:, 1]],
        per_month[clouds] * table.cloud_usd[clouds],
        per_month * np.array([s.miss_usd for s in slices]),
    ])
    rows = np.concatenate([pairs[:, 0], clouds, np.arange(n_s)])
    a_eq = sparse.csr_matrix((np.ones(n_var), (rows, np.arange(n_var))), shape=(n_s, n_var))
    a_ub = sparse.csr_matrix((demand[pairs[:, 0], pairs[:, 1]], (pairs[:, 1], np.arange(n_y))),
                             shape=(n_u, n_var))
    cap = np.array([target_utilization * u.count for u in units])
    res = linprog(cost, A_ub=a_ub, b_ub=cap, A_eq=a_eq, b_eq=np.ones(n_s), bounds=(0.0, 1.0),
                  method="highs")
    if res.status != 0:
        raise SizingError(f"fixed-fleet cost LP failed: {res.message}")
    x = res.x
    share = {(int(i), int(j)): float(x[k]) for k, (i, j) in enumerate(pairs)}
    cloud_share = {int(i): float(x[n_y + k]) for k, i in enumerate(clouds)}
    counts = {u.key: u.count for u in units}
    return _read_back("OPTIMAL", slices, units, table, [False] * n_u, counts, share, cloud_share,
                      x[n_y + n_c:], 1, t0)


def dominated(units: list[UnitType], table: PairTable, buyable: list[bool]) -> list[bool]:
    """Purchase options no optimal mix needs: another option costs no more to buy and to idle,
    serves every slice this one serves at least as fast and with no more energy.
    Pruning them keeps the model small (the catalog has dozens of near-duplicates)."""
    n_u = len(units)
    out = [False] * n_u
    sec = np.where(table.feasible, table.seconds, np.inf)
    for b in range(n_u):
        if not buyable[b]:
            continue
        if not table.feasible[:, b].any():
            out[b] = True
            continue
        for a in range(n_u):
            if a == b or not buyable[a] or out[a]:
                continue
            if (units[a].price_usd <= units[b].price_usd
                    and table.idle_usd_per_month[a] <= table.idle_usd_per_month[b]
                    and units[a].count >= units[b].count
                    and np.all(sec[:, a] <= sec[:, b])
                    and np.all(table.energy_usd[:, a][table.feasible[:, b]]
                               <= table.energy_usd[:, b][table.feasible[:, b]] + 1e-12)):
                out[b] = True
                break
    return out


def solve_mix(
    slices: list[Slice],
    units: list[UnitType],
    table: PairTable,
    *,
    buyable: list[bool],
    budget_usd: float,
    horizon_months: int,
    target_utilization: float,
    time_limit_s: float = 5.0,
    seed: int = 0,
    workers: int = SOLVER_WORKERS,
) -> MixResult:
    """Solve; raises `SizingError` when no mix is feasible or the solver found none in time."""
    t0 = time.perf_counter()
    n_s, n_u = len(slices), len(units)
    # --- data
    # utilization rounded up, and at least 1: a slice never looks free
    util = np.where(table.feasible, np.maximum(1, np.ceil(_demand(slices, units, table) * UTIL_SCALE)),
                    0).astype(np.int64)
    cap = round(target_utilization * UTIL_SCALE) * PARTS
    per_month = np.array([s.per_month for s in slices])

    pruned = dominated(units, table, buyable)

    # --- variables
    m = cp_model.CpModel()
    n = []
    for j, u in enumerate(units):
        hi = 0 if pruned[j] else u.count
        lo = 0 if buyable[j] else u.count
        n.append(m.new_int_var(lo, hi, f"n[{u.key}]"))
    y = {(i, j): m.new_int_var(0, PARTS, f"y[{i},{j}]")
         for i in range(n_s) for j in range(n_u) if table.feasible[i, j] and not pruned[j]}
    c = {i: m.new_int_var(0, PARTS, f"c[{i}]") for i in range(n_s) if math.isfinite(table.cloud_usd[i])}
    miss = [m.new_int_var(0, PARTS, f"miss[{i}]") for i in range(n_s)]

    # --- constraints
    for i in range(n_s):
        parts = [y[i, j] for j in range(n_u) if (i, j) in y]
        if i in c:
            parts.append(c[i])
        m.add(sum(parts) + miss[i] == PARTS)
    for j in range(n_u):
        load = [util[i, j] * y[i, j] for i in range(n_s) if (i, j) in y]
        if load:
            m.add(sum(load) <= cap * n[j])
    m.add(sum(round(u.price_usd) * n[j] for j, u in enumerate(units) if buyable[j])
          <= math.floor(budget_usd))

    # --- objective (micro-USD per month)
    def coef(x: float) -> int:
        return round(x * MICRO)

    terms = []
    for j, u in enumerate(units):
        fixed = (u.price_usd / horizon_months if buyable[j] else 0.0) + table.idle_usd_per_month[j]
        terms.append(coef(fixed) * n[j])
    for (i, j), var in y.items():
        terms.append(coef(per_month[i] * table.energy_usd[i, j] / PARTS) * var)
    for i, var in c.items():
        terms.append(coef(per_month[i] * table.cloud_usd[i] / PARTS) * var)
    for i in range(n_s):
        terms.append(coef(per_month[i] * slices[i].miss_usd / PARTS) * miss[i])
    m.minimize(sum(terms))
    for j, u in enumerate(units):  # warm start: buy nothing
        m.add_hint(n[j], 0 if buyable[j] else u.count)

    # --- solve
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = time_limit_s
    solver.parameters.random_seed = seed
    solver.parameters.num_workers = workers
    status = solver.solve(m)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        raise SizingError(f"sizing model returned {solver.status_name(status)} "
                          f"(budget {budget_usd:.0f} USD, {n_s} slices, {n_u} unit types)")

    # --- read back
    counts = {u.key: int(solver.value(n[j])) for j, u in enumerate(units)}
    share = {k: solver.value(v) / PARTS for k, v in y.items()}
    cloud_share = {i: solver.value(v) / PARTS for i, v in c.items()}
    miss_share = np.array([solver.value(v) / PARTS for v in miss])
    return _read_back("OPTIMAL" if status == cp_model.OPTIMAL else "FEASIBLE", slices, units,
                      table, buyable, counts, share, cloud_share, miss_share,
                      horizon_months, t0)
