"""The one copy of each cost and rounding rule, for every placement path.

The numpy table (scoring.py), the one-task path (lean.py) and the express path (express.py)
all call these helpers, so a pair's cost, a task's deferral and the whole-MB memory test are
the same IEEE operations in the same order on every path. Each helper is plain arithmetic
on Python floats or numpy arrays alike (`True * x == x` and `False * x == 0.0`), except the
rounding helpers, which pick numpy for an array and `round`/`math` otherwise (Python's
`round` and `np.rint` both round half to even, so the integers agree).

Units: USD in, integer micro-USD (`MICRO`) out of `micro`; GB in, whole MB out of `mb_up`
and `mb_down`.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "MB_EPS",
    "MICRO",
    "budget_micro",
    "deferral_usd",
    "lateness_s",
    "mb_down",
    "mb_up",
    "micro",
    "pair_micro",
    "spend_micro",
    "time_usd",
    "wait_usd_per_s",
]

MICRO = 1_000_000
"""Integer objective unit: micro-dollars (CP-SAT needs integers; 1e-6 USD is far below noise)."""

MICRO_EPS = 1e-9
"""Slack (in micro-USD) before rounding spend and budgets: float noise never flips a whole
micro-dollar (spend is rounded up, budgets down, so an integer check never overspends)."""

MB_EPS = 1e-9
"""Slack (in MB) before rounding memory: a size a hair above a whole MB from float noise
rounds to that MB, not the next (the need is rounded up, the free memory down)."""


def pair_micro(cloud_usd, energy_usd, time_cost_usd, cloud_weight: float, energy_weight: float):
    """The objective's cost of running a task on a target in micro-USD, rounded half to even,
    eviction not included (a node's eviction is charged once per batch, `Policy.eviction_usd`).
    The one copy of the formula: the express path calls it per node, so a float skips the
    array test."""
    usd = cloud_weight * cloud_usd + energy_weight * energy_usd + time_cost_usd
    if type(usd) is float:
        return round(usd * MICRO)
    if isinstance(usd, np.ndarray):
        return np.rint(usd * MICRO).astype(np.int64)
    return round(usd * MICRO)


def lateness_s(finish_s, deadline_s):
    """Seconds past the deadline at a finish: 0.0 when on time or without a deadline (+inf).
    Floats (the fast paths, per node) or arrays (the batch scorer)."""
    late = finish_s - deadline_s
    if type(late) is float:
        return late if late > 0.0 else 0.0  # noqa: FURB136 -- per node on the fast paths: ~15 ns, max() ~140
    return np.maximum(late, 0.0)


def time_usd(finish_s, now_s, deadline_s, wait_usd_per_s, weight, rate_usd_per_s: float, miss_usd: float):
    """The price of time for one option finishing at `finish_s`: waiting from `now_s` for the
    result at the task's `wait_usd_per_s` (its priority's price), plus lateness: the seconds
    past `deadline_s` at `rate_usd_per_s` and `miss_usd` once if late at all, times the
    priority weight (1 + priority). The one copy of the rule for every placement path."""
    late = lateness_s(finish_s, deadline_s)
    return (finish_s - now_s) * wait_usd_per_s + (late * rate_usd_per_s + (late > 0.0) * miss_usd) * weight


def deferral_usd(finish_s, now_s, deadline_s, wait_usd_per_s, weight, defer_usd: float,
                 rate_usd_per_s: float, miss_usd: float):
    """Cost of waiting for the best local node instead of running now: the deferral price
    (times the priority weight) plus the price of time (`time_usd`) at that node's finish
    (`now_s` for a task no local node will ever run: only the lateness it already has)."""
    return defer_usd * weight + time_usd(finish_s, now_s, deadline_s, wait_usd_per_s, weight,
                                         rate_usd_per_s, miss_usd)


def wait_usd_per_s(usd_per_task_hour: tuple[float, ...], priority: int) -> float:
    """A task's price of waiting per second: its priority's entry of the policy's per-hour
    prices (negative priorities use the first, priorities past the end the last)."""
    return usd_per_task_hour[min(max(priority, 0), len(usd_per_task_hour) - 1)] / 3600.0


def micro(usd):
    """USD to integer micro-USD, rounded half to even (int for a float, int64 array for an array)."""
    if isinstance(usd, np.ndarray):
        return np.rint(usd * MICRO).astype(np.int64)
    return round(usd * MICRO)


def mb_up(gb):
    """A memory need in whole MB, rounded up (never under-counts what a task takes)."""
    if isinstance(gb, np.ndarray):
        return np.ceil(gb * 1000 - MB_EPS).astype(np.int64)
    return math.ceil(gb * 1000 - MB_EPS)


def mb_down(gb):
    """Free memory in whole MB, rounded down (never over-counts what a node has)."""
    if isinstance(gb, np.ndarray):
        return np.floor(gb * 1000 + MB_EPS).astype(np.int64)
    return math.floor(gb * 1000 + MB_EPS)


def spend_micro(usd):
    """Cloud spend in micro-USD, rounded up."""
    if isinstance(usd, np.ndarray):
        return np.ceil(usd * MICRO - MICRO_EPS).astype(np.int64)
    return math.ceil(usd * MICRO - MICRO_EPS)


def budget_micro(usd):
    """Budget left in micro-USD, rounded down (`usd` >= 0)."""
    if isinstance(usd, np.ndarray):
        return np.floor(usd * MICRO + MICRO_EPS).astype(np.int64)
    return math.floor(usd * MICRO + MICRO_EPS)
