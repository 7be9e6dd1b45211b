"""The scheduling core's queue and the rules it applies inside an event (see scheduling.py,
whose `SchedulingCore` adds the events a body sends and the queries it asks).

Kept apart from the event methods so each file reads as one concept: this one is the state
(waiting set and its class index, running tasks, dependencies, retries, the tick and batch
window timers, budget periods) and how an event changes it (offers oldest first per class,
deferral and the maximum wait, batch windows, releases of dependents).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Hashable, MutableMapping, Sequence
from typing import Generic, TypeVar

from heddle.models import FleetState, Task
from heddle.optimizer.core_types import (
    DEPENDENCY_REASON,
    CoreSettings,
    CoreSink,
    Decide,
    SchedulingError,
)
from heddle.optimizer.engine import place, resolve_policy
from heddle.optimizer.placement import Decision, DecisionStatus
from heddle.optimizer.policy import Policy
from heddle.optimizer.waiting import BudgetPeriods, ClassIndex, Waiter, constraint_class

__all__ = ["CoreQueue"]

K = TypeVar("K", bound=Hashable)

_PLACED, _DEFERRED, _REJECTED = DecisionStatus.PLACED, DecisionStatus.DEFERRED, DecisionStatus.REJECTED
_INF = math.inf


class CoreQueue(Generic[K]):
    """The core's state and its in-event rules; `SchedulingCore` is the class to use."""

    def __init__(self, state: FleetState, policy: Policy | str, sink: CoreSink[K],
                 settings: CoreSettings | None = None, *, tasks: MutableMapping[K, Task] | None = None,
                 decide: Decide | None = None, on_wake: Callable[[float], None] | None = None,
                 on_release: Callable[[K, float], None] | None = None) -> None:
        self.state = state
        self.policy = policy
        self.sink = sink
        self.settings = settings = settings or CoreSettings()
        self._batch = settings.batch_window_s > 0
        self._tasks: MutableMapping[K, Task] = {} if tasks is None else tasks
        self._decide = decide or self.place_keys
        self._on_wake = on_wake
        self._on_release = on_release
        self._running: dict[K, tuple[str | None, int, float]] = {}  # key -> (target, seq, waiting since)
        self._waiting: dict[K, Waiter] = {}
        self._index = ClassIndex()
        self._expiry: list[tuple[float, int, K]] = []  # (since + max wait, seq, key)
        self._held: dict[K, int] = {}  # key -> tasks it still waits for
        self._dependents: dict[K, list[K]] = {}
        self._remember: set[K] = set()
        self._outcomes: dict[K, bool] = {}  # remembered keys that ended: completed?
        self._pending: list[tuple[K, int]] = []  # batch mode: released, waiting for the window
        self._retries: dict[K, int] = {}
        self._seq = 0
        self._tick_due = _INF
        self._window_due = _INF
        self._budget = BudgetPeriods(state.fleet, state.time_s)
        self._depth = 0  # > 0 inside an event (sink calls may re-enter)
        self._blocked: set = set()  # classes not offered again in the current event
        self._resolved: Policy | None = None

    def place_keys(self, now_s: float, keys: Sequence[K]) -> list[Decision]:
        """The default `Decide`: `place()` on the tasks of `keys`."""
        return place(self.state, [self._tasks[k] for k in keys], self.policy).decisions

    # --- inside ---------------------------------------------------------------------------
    def _enter(self, now_s: float) -> None:
        """Start of an event: the state's clock, budget periods."""
        self._depth += 1
        state = self.state
        state.time_s = now_s
        if now_s >= self._budget.soonest and self._budget.roll(now_s, state) and self._waiting \
                and not self._batch:
            self._offer(now_s, None)

    def _leave(self, now_s: float) -> None:
        """End of an event: make sure a tick is due while work waits."""
        self._depth -= 1
        if self._depth:
            return
        if self._blocked:
            self._blocked.clear()
        if self._batch:
            if (self._waiting or self._pending) and self._window_due == _INF:
                self._arm(now_s)
        elif self._waiting and self._tick_due == _INF:
            self._arm(now_s)

    def _arm(self, now_s: float) -> None:
        """Ask for a tick: the end of the batch window, or the next re-offer of waiting work."""
        if self._batch:
            due = self._window_due = now_s + self.settings.batch_window_s
        else:
            due = self._tick_due = now_s + self.settings.defer_retry_s
        if self._on_wake is not None:
            self._on_wake(due)

    def _reoffer(self, now_s: float, target: str | None = None) -> None:
        self._enter(now_s)
        try:
            if self._waiting and not self._batch:
                self._offer(now_s, target)
        finally:
            self._leave(now_s)

    def _release(self, now_s: float, key: K) -> None:
        seq = self._seq
        self._seq = seq + 1
        if self._batch:
            self._pending.append((key, seq))
            return
        self._offer_one(now_s, key, seq, now_s)

    def _offer_one(self, now_s: float, key: K, seq: int, since_s: float) -> bool:
        """Ask about one task (not in any set); act on the answer. True if it was placed."""
        decisions = self._decide(now_s, (key,))
        return self._act(now_s, key, seq, since_s, decisions[0])

    def _act(self, now_s: float, key: K, seq: int, since_s: float, d: Decision) -> bool:
        status = d.status
        if status is _PLACED:
            self._running[key] = (d.target, seq, since_s)
            self.sink.start(key, d)
            return True
        if status is _DEFERRED:
            reason = d.reason
            limit = self.settings.max_defer_s
            if now_s - since_s > limit:
                self._end(key, False)
                self.sink.reject(key, f"deferred for over {limit:g} s: {reason}")
                self._release_dependents(now_s, key, False)
            else:
                w = self._wait(now_s, key, seq, reason, since_s)
                self._blocked.add(w.cls)
                self.sink.deferred(key, reason)
            return False
        if status is _REJECTED:
            self._end(key, False)
            self.sink.reject(key, d.reason or "rejected by the optimizer")
            self._release_dependents(now_s, key, False)
            return False
        raise SchedulingError(f"the placer returned unknown status {status!r} for task {key!r}")

    def _wait(self, now_s: float, key: K, seq: int, reason: str, since_s: float | None = None) -> Waiter:
        """Put `key` in the waiting set (a new wait starts now unless `since_s` says when)."""
        w = Waiter(seq, now_s if since_s is None else since_s, constraint_class(self._tasks[key]), reason)
        self._waiting[key] = w
        self._index.push(key, w)
        if not self._batch:  # (an entry left from an earlier stay has the same due: harmless)
            heapq.heappush(self._expiry, (w.since_s + self.settings.max_defer_s, seq, key))
        return w

    def _freed(self, now_s: float, target: str | None, cls) -> None:
        """An attempt on `target` ended without completing (lost or failed): its slot is free
        for waiting work, and a lost task (`cls`: its class) may run elsewhere now. Inside
        `sink.start` (a loss while this event offers) both wait for the next trigger."""
        if self._batch:
            return
        if self._depth > 1:
            if cls is not None:
                self._blocked.add(cls)
            return
        if self._waiting:
            self._offer(now_s, target)
        if cls is not None:
            self._drain_class(now_s, cls)

    def _take(self, cls) -> tuple[K, Waiter] | None:
        top = self._index.head(cls, self._waiting)
        if top is None:
            return None
        self._index.pop(cls)
        key = top[1]
        return key, self._waiting.pop(key)

    def _drain_class(self, now_s: float, cls) -> None:
        """Offer the class's tasks oldest first until one is deferred (or none is left)."""
        while cls not in self._blocked:
            taken = self._take(cls)
            if taken is None:
                return
            key, w = taken
            self._offer_one(now_s, key, w.seq, w.since_s)

    def _offer(self, now_s: float, target: str | None) -> None:
        """Offer waiting work, oldest first across classes: every class that may use
        `target` while it has a free slot (None: every class, once each)."""
        ns = self.state.nodes.get(target) if target is not None else None
        heads = self._index.heads(self._waiting, target if ns is not None else None, self.state.fleet,
                                  self._policy())
        while heads:
            if ns is not None and ns.free_slots <= 0:
                return
            _, cls = heapq.heappop(heads)
            if cls in self._blocked:
                continue
            taken = self._take(cls)
            if taken is None:
                continue
            key, w = taken
            self._offer_one(now_s, key, w.seq, w.since_s)
            top = self._index.head(cls, self._waiting)
            if top is not None and cls not in self._blocked:
                heapq.heappush(heads, (top[0], cls))

    def _policy(self) -> Policy:
        if self._resolved is None:
            policy = self.policy
            self._resolved = resolve_policy(policy) if isinstance(policy, (str, Policy)) else Policy()
        return self._resolved

    def _expire(self, now_s: float) -> None:
        """Reject waiting tasks past the maximum wait (oldest deadline first)."""
        limit = self.settings.max_defer_s
        heap = self._expiry
        while heap and heap[0][0] < now_s:
            due, seq, key = heapq.heappop(heap)
            w = self._waiting.get(key)
            if w is None or w.seq != seq or w.since_s + limit != due:
                continue
            del self._waiting[key]
            self._end(key, False)
            self.sink.reject(key, f"deferred for over {limit:g} s: {w.reason}")
            self._release_dependents(now_s, key, False)

    def _window(self, now_s: float) -> None:
        """Batch mode: everything waiting (oldest first) and everything released since the
        last window, in calls of at most `batch_max_tasks`."""
        since = {k: w.since_s for k, w in self._waiting.items()}
        batch = [(k, self._waiting[k].seq) for k in self._index.drain(self._waiting)] + self._pending
        self._waiting.clear()
        self._pending = []
        cap = self.settings.batch_max_tasks
        for lo in range(0, len(batch), cap):
            chunk = batch[lo:lo + cap]
            decisions = self._decide(now_s, [k for k, _ in chunk])
            if len(decisions) != len(chunk):
                raise SchedulingError(f"the placer answered {len(decisions)} decisions for {len(chunk)} tasks")
            for (key, seq), d in zip(chunk, decisions):
                self._act(now_s, key, seq, since.get(key, now_s), d)
        self._blocked.clear()  # (a batch decides every task; blocking is for one-task offers)

    def _end(self, key: K, ok: bool) -> None:
        """`key` reached a terminal state (the caller tells the sink)."""
        self._tasks.pop(key, None)
        self._retries.pop(key, None)
        if key in self._remember:
            self._remember.discard(key)
            self._outcomes[key] = ok

    def _release_dependents(self, now_s: float, key: K, ok: bool) -> None:
        for dep in self._dependents.pop(key, ()):
            left = self._held.get(dep)
            if left is None:
                continue  # not submitted yet, or already ended
            if not ok:
                del self._held[dep]
                self._end(dep, False)
                self.sink.reject(dep, DEPENDENCY_REASON)
                self._release_dependents(now_s, dep, False)
            elif left > 1:
                self._held[dep] = left - 1
            else:
                del self._held[dep]
                if self._on_release is not None:
                    self._on_release(dep, now_s)
                self._release(now_s, dep)
