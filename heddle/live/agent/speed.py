"""One core's speed, measured: how fast this machine runs the `burn` step, against the
reference core the workload's ``cpu_seconds`` are counted on.

The agent measures it once at start (about 0.1 s of CPU) and reports it in every capacity
report; `heddle fleet export` writes it into the fleet YAML, so the twin replays a recorded
trace at the speed this machine really has rather than the catalog's figure for its chip.
On hardware the catalog does not list, the same figure is the generic device's per-core speed
(heddle.live.agent.benchmark measures only what this probe does not).
"""

from __future__ import annotations

import statistics
import time

from heddle.live.agent.worker_main import burn
from heddle.models.generic import REFERENCE_BURN_ITERATIONS_PER_S

__all__ = ["SPEED_PROBE_ITERATIONS", "SPEED_PROBE_ROUNDS", "measure_speed_relative"]

SPEED_PROBE_ITERATIONS = 10_000
"""Burn iterations per round: ~20 ms on the 2-core dev machine, long enough that the clock's
resolution and the call's overhead are noise."""
SPEED_PROBE_ROUNDS = 5
"""Rounds measured; the median is kept (one round may be cut by another process)."""


def measure_speed_relative(rounds: int = SPEED_PROBE_ROUNDS, iterations: int = SPEED_PROBE_ITERATIONS,
                           *, cpu_limit: float | None = None) -> float:
    """One core's speed vs the reference core: burn iterations per CPU-second here, over the
    iterations a reference core does (REFERENCE_BURN_ITERATIONS_PER_S). Wall time, not CPU
    time: on a shared machine what a step gets is what a task will get. With a `cpu_limit`
    the burn is paced as the agent's burn steps are, so the speed is the paced one."""
    per_s = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        burn({"iterations": iterations}, cpu_limit=cpu_limit)
        per_s.append(iterations / max(time.perf_counter() - t0, 1e-9))
    return statistics.median(per_s) / REFERENCE_BURN_ITERATIONS_PER_S
