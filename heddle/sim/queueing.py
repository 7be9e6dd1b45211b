"""Closed-form queueing results the twin is validated against, and an exact FIFO reference.

Erlang C (M/M/c mean wait), Pollaczek-Khinchine (M/G/1 mean wait), and the Kiefer-Wolfowitz
recursion for the waits of a FIFO c-server queue fed by given arrivals and service times
(used as a control variate in the validation tests and docs/twin.md).
"""

from __future__ import annotations

import heapq

import numpy as np

__all__ = ["erlang_c", "fifo_waits", "mmc_mean_wait", "pk_mean_wait"]


def erlang_c(servers: int, load: float) -> float:
    """Probability an arrival waits in an M/M/c queue with per-server utilization `load` < 1."""
    if not 0 <= load < 1:
        raise ValueError(f"load must be in [0, 1), got {load}")
    a = servers * load  # offered traffic in Erlangs
    term, total = 1.0, 1.0  # a^k / k!, summed for k < c (iteratively: no factorial overflow)
    for k in range(1, servers):
        term *= a / k
        total += term
    last = term * a / servers / (1 - load)
    return last / (total + last)


def mmc_mean_wait(servers: int, arrival_rate: float, service_rate: float) -> float:
    """Mean time in queue (before service) of an M/M/c queue: C(c, rho) / (c mu - lambda)."""
    load = arrival_rate / (servers * service_rate)
    return erlang_c(servers, load) / (servers * service_rate - arrival_rate)


def pk_mean_wait(arrival_rate: float, mean_service_s: float, service_scv: float) -> float:
    """Pollaczek-Khinchine mean wait of M/G/1: rho E[S] (1 + cv^2) / (2 (1 - rho)).

    `service_scv` is the squared coefficient of variation of service (0 for M/D/1, 1 for M/M/1).
    """
    load = arrival_rate * mean_service_s
    if not 0 <= load < 1:
        raise ValueError(f"load must be in [0, 1), got {load}")
    return load * mean_service_s * (1 + service_scv) / (2 * (1 - load))


def fifo_waits(arrival_s: np.ndarray, service_s: np.ndarray, servers: int) -> np.ndarray:
    """Exact waits of a FIFO queue with `servers` identical servers (Kiefer-Wolfowitz)."""
    free_at = [0.0] * servers
    waits = np.empty(len(arrival_s))
    for k, (a, s) in enumerate(zip(arrival_s.tolist(), service_s.tolist())):
        f = heapq.heappop(free_at)
        start = max(f, a)
        waits[k] = start - a
        heapq.heappush(free_at, start + s)
    return waits

