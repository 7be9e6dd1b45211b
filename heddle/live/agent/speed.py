"""One core's speed, measured: how fast this machine runs the `burn` step, against the
reference core the workload's ``cpu_seconds`` are counted on.

The agent measures it at start (about 0.1 s of CPU), then keeps measuring it from its own
burn steps (`SpeedMeter`: each step's iterations over its wall time, the quantity the probe
measures, at no extra cost), because on a shared machine the CPU time one iteration takes
moves with the other processes' load. Each capacity report carries the recent speed and the
running totals; `heddle fleet export --since` writes the speed over exactly the window a
recording covers, so the twin replays a recorded trace at the speed the machine had then
rather than the catalog's figure for its chip or the probe's at start. On hardware the
catalog does not list, the probe's figure is the generic device's per-core speed
(heddle.live.agent.benchmark measures only what this probe does not).
"""

from __future__ import annotations

import statistics
import time
from collections import deque
from dataclasses import dataclass, field

from heddle.live.agent.worker_main import burn
from heddle.models.generic import REFERENCE_BURN_ITERATIONS_PER_S

__all__ = ["SPEED_PROBE_ITERATIONS", "SPEED_PROBE_ROUNDS", "SPEED_WINDOW_S", "SpeedMeter", "measure_speed_relative",
           "speed_between"]

SPEED_PROBE_ITERATIONS = 10_000
"""Burn iterations per round: ~20 ms on the 2-core dev machine, long enough that the clock's
resolution and the call's overhead are noise."""
SPEED_PROBE_ROUNDS = 5
"""Rounds measured; the median is kept (one round may be cut by another process)."""
SPEED_WINDOW_S = 60.0
"""The recent speed a report carries is over the burn steps that ended in this last window."""
SPEED_MIN_BURN_S = 1.0
"""Burn wall time the window must hold before it replaces the probe's figure (a few steps:
one step cut by another process must not swing the node's speed)."""


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


def speed_between(iterations: float, seconds: float) -> float | None:
    """The speed relative to the reference core of `iterations` burnt in `seconds` of wall
    time (None without a measurable amount)."""
    if iterations <= 0 or seconds <= 0:
        return None
    return iterations / seconds / REFERENCE_BURN_ITERATIONS_PER_S


@dataclass(slots=True)
class SpeedMeter:
    """The agent's running measure of one core's speed, fed by every burn step that ends.

    `iterations` and `seconds` are running totals since the agent started (a window's speed is
    the difference of two readings: `speed_between`); `current()` is the speed over the last
    SPEED_WINDOW_S, or the probe's until that window holds SPEED_MIN_BURN_S of burning."""

    probed: float | None = None
    window_s: float = SPEED_WINDOW_S
    iterations: int = 0
    seconds: float = 0.0
    _recent: deque[tuple[float, int, float]] = field(default_factory=deque)  # (ended at, iterations, wall s)

    def add(self, iterations: int, seconds: float, now: float | None = None) -> None:
        """A burn step of `iterations` took `seconds` of wall time inside its worker."""
        if iterations <= 0 or not seconds > 0:
            return
        self.iterations += iterations
        self.seconds += seconds
        self._recent.append((time.monotonic() if now is None else now, iterations, seconds))

    def current(self, now: float | None = None) -> float | None:
        cutoff = (time.monotonic() if now is None else now) - self.window_s
        while self._recent and self._recent[0][0] < cutoff:
            self._recent.popleft()
        seconds = sum(s for _, _, s in self._recent)
        if seconds < SPEED_MIN_BURN_S:
            return self.probed
        return speed_between(sum(i for _, i, _ in self._recent), seconds)
