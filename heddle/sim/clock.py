"""A cheaper timer on the SimPy clock for the twin's hot path (one per arrival instant and
per completion).

`after(env, delay, value, callback)` has exactly the effect of
`env.timeout(delay, value).callbacks.append(callback)`: the same heap entry
`(now + delay, NORMAL, next event id, event)`, so events fire in the same order as with
`Timeout` and a run is bit-for-bit the same. It skips what the twin does not use (the
`Timeout` class's generic `Event` machinery, a bound-method hop through `env.timeout`, the
negative-delay check: the twin's delays are service times and gaps of a sorted trace) and
costs about half as much. It reads two SimPy internals (`Environment._queue`, `._eid`),
which is why it lives alone here: the locked SimPy version defines them in `core.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from heapq import heappush
from typing import Any

import simpy
from simpy.events import NORMAL

__all__ = ["NodeDone", "after"]


class _Tick:
    """The minimum `Environment.step()` needs from an event: callbacks, `_ok`, `_value`."""

    __slots__ = ("_ok", "_value", "callbacks")

    def __init__(self, value: Any, callback: Callable[[Any], None]):
        self.callbacks = [callback]
        self._ok = True
        self._value = value


def after(env: simpy.Environment, delay: float, value: Any, callback: Callable[[Any], None]) -> None:
    """Call `callback(event)` `delay` simulated seconds from now; `event._value` is `value`."""
    heappush(env._queue, (env._now + delay, NORMAL, next(env._eid), _Tick(value, callback)))


class NodeDone(_Tick):
    """A task's completion on a local node: an ordinary timer to SimPy (`env.step()` runs its
    callback); the express loop (`heddle.sim.express`) recognises the type and handles it inline."""

    __slots__ = ()
