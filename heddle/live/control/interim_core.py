"""A stand-in with the surface of heddle.optimizer's shared scheduling core (CORE-API), used
only until that module lands; the control plane imports whichever exists (see core.py).

It holds the minimum to run: FIFO waiting work, release after dependencies, re-offer on
the documented triggers, bounded retry after a lost attempt, a maximum wait. Every decision
is `place()`'s; nothing here chooses a node.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from heddle.models import FleetState, NodeId, Task
from heddle.optimizer import Decision, DecisionStatus, Policy, place

__all__ = ["CoreSettings", "CoreSink", "SchedulingCore"]

K = TypeVar("K", bound=Hashable)

OFFER_SCAN = 64
"""Waiting tasks offered per trigger, oldest first (bounds the work of one event)."""


@dataclass(frozen=True, slots=True)
class CoreSettings:
    max_retries: int = 3
    max_defer_s: float = 3600.0
    defer_retry_s: float = 5.0
    batch_window_s: float = 0.0
    batch_max_tasks: int = 2000


class CoreSink(Protocol[K]):
    def start(self, key: K, decision: Decision) -> None: ...
    def deferred(self, key: K, reason: str) -> None: ...
    def reject(self, key: K, reason: str) -> None: ...
    def fail(self, key: K, reason: str) -> None: ...


class SchedulingCore(Generic[K]):
    def __init__(
        self,
        state: FleetState,
        policy: Policy | str,
        sink: CoreSink[K],
        settings: CoreSettings = CoreSettings(),
    ) -> None:
        self.state, self.policy, self.sink, self.settings = state, policy, sink, settings
        self._tasks: dict[K, Task] = {}
        self._since: dict[K, float] = {}
        self._waiting: OrderedDict[K, None] = OrderedDict()
        self._blocked: dict[K, set[K]] = {}
        self._dependents: dict[K, list[K]] = {}
        self._done: set[K] = set()
        self._dead: set[K] = set()
        self._losses: dict[K, int] = {}
        self._next_tick: float | None = None

    # -- events in -----------------------------------------------------------------------------
    def submit(self, now_s: float, key: K, task: Task, after: Sequence[K] = ()) -> None:
        self._tasks[key] = task
        self._since[key] = now_s
        dead = [k for k in after if k in self._dead]
        if dead:
            self._terminal(key, reject=f"dependency {dead[0]} did not complete")
            return
        pending = {k for k in after if k not in self._done}
        if pending:
            self._blocked[key] = pending
            for k in pending:
                self._dependents.setdefault(k, []).append(key)
            return
        self._offer_one(now_s, key)

    def completed(self, now_s: float, key: K) -> None:
        self._done.add(key)
        for dependent in self._dependents.pop(key, ()):
            pending = self._blocked.get(dependent)
            if pending is None:
                continue
            pending.discard(key)
            if not pending:
                del self._blocked[dependent]
                self._offer_one(now_s, dependent)

    def failed(self, now_s: float, key: K, reason: str) -> None:
        self._dead.add(key)
        self._cascade(key)

    def lost(self, now_s: float, key: K, reason: str) -> None:
        self._losses[key] = self._losses.get(key, 0) + 1
        if self._losses[key] > self.settings.max_retries:
            self._terminal(key, fail=f"{reason} (after {self.settings.max_retries} retries)")
            return
        self._offer_one(now_s, key)

    def cancel(self, now_s: float, key: K) -> bool:
        waiting = self._waiting.pop(key, "absent") is None or self._blocked.pop(key, None) is not None
        if waiting:
            self._dead.add(key)
            self._cascade(key)
        return waiting

    def slot_freed(self, now_s: float, node_id: NodeId) -> None:
        self._offer_waiting(now_s)

    def node_joined(self, now_s: float, node_id: NodeId) -> None:
        self._offer_waiting(now_s)

    def node_left(self, now_s: float, node_id: NodeId) -> None:
        self._offer_waiting(now_s)

    def budget_rolled(self, now_s: float) -> None:
        self._offer_waiting(now_s)

    def tick(self, now_s: float) -> None:
        for key in list(self._waiting):
            if now_s - self._since[key] > self.settings.max_defer_s:
                del self._waiting[key]
                self._terminal(key, reject=f"waited longer than {self.settings.max_defer_s:g} s")
        self._offer_waiting(now_s)

    # -- queries -------------------------------------------------------------------------------
    def next_tick_s(self) -> float | None:
        return self._next_tick

    def waiting(self) -> int:
        return len(self._waiting)

    def waiting_keys(self) -> list[K]:
        return list(self._waiting)

    def task(self, key: K) -> Task:
        return self._tasks[key]

    # -- inside --------------------------------------------------------------------------------
    def _offer_one(self, now_s: float, key: K) -> bool:
        self.state.time_s = now_s
        decision = place(self.state, [self._tasks[key]], self.policy).decisions[0]
        if decision.status is DecisionStatus.PLACED:
            self._waiting.pop(key, None)
            self.sink.start(key, decision)
            return True
        if decision.status is DecisionStatus.REJECTED:
            self._waiting.pop(key, None)
            self._terminal(key, reject=decision.reason)
            return False
        if key not in self._waiting:
            self._waiting[key] = None
            self.sink.deferred(key, decision.reason)
        self._next_tick = now_s + self.settings.defer_retry_s
        return False

    def _offer_waiting(self, now_s: float) -> None:
        for key in list(self._waiting)[:OFFER_SCAN]:
            if not any(n.free_slots > 0 for n in self.state.nodes.values()):
                break
            self._offer_one(now_s, key)
        self._next_tick = now_s + self.settings.defer_retry_s if self._waiting else None

    def _terminal(self, key: K, *, reject: str = "", fail: str = "") -> None:
        self._dead.add(key)
        if reject:
            self.sink.reject(key, reject)
        else:
            self.sink.fail(key, fail)
        self._cascade(key)

    def _cascade(self, key: K) -> None:
        for dependent in self._dependents.pop(key, ()):
            if self._blocked.pop(dependent, None) is not None:
                self._terminal(dependent, reject=f"dependency {key} did not complete")
