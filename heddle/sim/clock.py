"""The twin's access to SimPy's clock below its public API, in one module.

The twin's hot path pushes its own entries onto SimPy's event heap instead of building
`Timeout` events: `after(env, delay, value, callback)` has exactly the effect of
`env.timeout(delay, value).callbacks.append(callback)` (the same heap entry
`(now + delay, NORMAL, next event id, event)`, so events fire in the same order and a run
is bit-for-bit the same) at about half the cost. The express twin goes further: its node
completions are bare heap entries `(time, NORMAL, id, task, token)` that `run_inline` pops
and hands to a callback without any event object, and its next arrival is held outside
the heap with the id SimPy would have given it.

This reads and writes SimPy internals (`Environment._queue`, `._eid`, `._now`, the entry
layout and `NORMAL`), which is why it lives alone here and refuses, at import, a SimPy
version it was not tested with.
"""

from __future__ import annotations

from collections.abc import Callable
from heapq import heappop, heappush
from typing import Any

import simpy
from simpy.events import NORMAL

from heddle.sim.errors import SimError

__all__ = ["TESTED_SIMPY", "HeldEvent", "NodeDone", "after", "at", "next_id", "push_done", "push_pair",
           "run_inline"]

TESTED_SIMPY = ("4.1.1", "4.1.2")
"""SimPy releases whose internals this module was checked against (pyproject pins below 4.2)."""


class SimPyVersionError(SimError, ImportError):
    """The installed SimPy is not one the twin's clock was tested with (install a tested one)."""


if simpy.__version__ not in TESTED_SIMPY:  # pragma: no cover - only on an untested install
    raise SimPyVersionError(
        f"heddle.sim needs SimPy {' or '.join(TESTED_SIMPY)} (it uses the event heap's internals); "
        f"found {simpy.__version__}. Install a tested version: pip install 'simpy>=4.1,<4.2'")


class _Tick:
    """The minimum `Environment.step()` needs from an event: callbacks, `_ok`, `_value`."""

    __slots__ = ("_ok", "_value", "callbacks")

    def __init__(self, value: Any, callback: Callable[[Any], None]):
        self.callbacks = [callback]
        self._ok = True
        self._value = value

    @property
    def value(self) -> Any:
        """The value given when it was scheduled (as `Event.value`)."""
        return self._value


def after(env: simpy.Environment, delay: float, value: Any, callback: Callable[[Any], None]) -> None:
    """Call `callback(event)` `delay` simulated seconds from now; `event._value` is `value`."""
    heappush(env._queue, (env._now + delay, NORMAL, next(env._eid), _Tick(value, callback)))


def at(env: simpy.Environment, time_s: float, value: Any, callback: Callable[[Any], None]) -> None:
    """Call `callback(event)` at exactly `time_s` (no now + delay rounding)."""
    heappush(env._queue, (time_s, NORMAL, next(env._eid), _Tick(value, callback)))


class NodeDone(_Tick):
    """A task's completion on a local node: an ordinary timer to SimPy (`env.step()` runs its
    callback)."""

    __slots__ = ()


def push_done(env: simpy.Environment, at_s: float, event: NodeDone) -> None:
    heappush(env._queue, (at_s, NORMAL, next(env._eid), event))


def push_pair(env: simpy.Environment, at_s: float, a: Any, b: Any) -> None:
    """A bare entry for `run_inline`: at `at_s` it calls `on_pair(a, b)` (only `run_inline`
    may run an environment holding these)."""
    heappush(env._queue, (at_s, NORMAL, next(env._eid), a, b))


def next_id(env: simpy.Environment) -> int:
    """The event id SimPy gives the next event (for an event held outside the heap)."""
    return next(env._eid)


class HeldEvent:
    """One event kept outside the heap (the twin's next arrival): `time_s` (inf: none) and the
    id SimPy would have given it, so it fires in SimPy's order."""

    __slots__ = ("eid", "time_s")

    def __init__(self) -> None:
        self.time_s = float("inf")
        self.eid = 0

    def set(self, env: simpy.Environment, time_s: float) -> None:
        self.time_s = time_s
        self.eid = next(env._eid)


def run_inline(env: simpy.Environment, end_s: float, held: HeldEvent, on_held: Callable[[], None],
               on_pair: Callable[[Any, Any], None]) -> None:
    """Run `env` until `end_s` (inf: until nothing is left) in SimPy's order ((time,
    priority, id)): `push_pair` entries call `on_pair(a, b)`, the held event `on_held()`,
    and every other event goes through `env.step()`. The clock stays at the last event (or
    at `end_s` if given), as `env.run(until=end_s)` leaves it."""
    q = env._queue
    step = env.step
    while True:
        t_held = held.time_s
        if q:
            top = q[0]
            t = top[0]
            if t < t_held or (t == t_held and (top[1] < NORMAL or (top[1] == NORMAL and top[2] < held.eid))):
                if t >= end_s:
                    break
                if len(top) == 5:
                    heappop(q)
                    env._now = t
                    on_pair(top[3], top[4])
                else:
                    step()
                continue
        if t_held >= end_s:  # also: nothing left at all (t_held is inf)
            break
        env._now = t_held
        on_held()
    if end_s != float("inf"):
        env._now = end_s
