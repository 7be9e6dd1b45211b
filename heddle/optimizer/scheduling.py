"""The scheduling core: *when* work is offered to `place()` (which decides *where*).

A clock-free state machine shared by the twin (SimPy time) and the live control plane (wall
time). Events come in with the caller's time (`submit`, `completed`, `lost`, `slot_freed`,
`tick`, ...); decisions go out through a `CoreSink` (`start`, `deferred`, `reject`, `fail`),
synchronously, inside the event call. It reads no clock and does no I/O: the same events
give the same sink calls.

Rules kept here and nowhere else: release on arrival and when the tasks a task depends on
complete (a failed one rejects it); deferral; re-offers when a slot frees, a node joins,
leaves or changes, a budget period rolls, and on a periodic tick; the maximum wait and the
rejection with the reason; bounded retry after a lost attempt; batch windows.

Work conservation: waiting work is indexed by constraint class (`waiting.ClassIndex`). When
a slot frees on a node, the oldest waiting task of every class that may use that node is
offered, oldest first, while the node has a free slot; a class whose oldest task `place()`
defers is not searched deeper in that event (its tasks are alike under the hard
constraints), so FIFO holds among the tasks eligible for one slot and no node with a free
slot idles while a task that may run there waits unoffered.

This module holds the events a body sends and the queries it asks; the state they change
and the rules applied inside an event live in core_queue.py (`CoreQueue`, the base class).

The body (twin or live) owns `state` and keeps it current (free slots and memory, status,
resident models, backlog, cloud spend); `sink.start` must take the slot in `state` before it
returns (the next offer of the same event reads it).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TypeVar

from heddle.models import Task
from heddle.optimizer.core_queue import CoreQueue
from heddle.optimizer.core_types import (
    DEPENDENCY_REASON,
    CoreSettings,
    CoreSink,
    Decide,
    SchedulingError,
    UnknownTaskError,
)
from heddle.optimizer.placement import DecisionStatus

__all__ = ["DEPENDENCY_REASON", "CoreSettings", "CoreSink", "Decide", "SchedulingCore",
           "SchedulingError", "UnknownTaskError"]

K = TypeVar("K", bound=Hashable)

_PLACED = DecisionStatus.PLACED
_INF = float("inf")


class SchedulingCore(CoreQueue[K]):
    """The waiting queue and its rules (see the module docstring). `tasks`: where the core
    keeps each key's Task (default: a dict of its own; the twin passes a mapping that builds
    Tasks on first use). `decide`: see `Decide`. `on_wake(at_s)`: called when the core needs
    `tick()` at `at_s` (a body may also poll `next_tick_s()`). `on_release(key, now_s)`:
    called when a task submitted with `after` is released (one without is released by
    `submit` itself)."""

    # --- events in ------------------------------------------------------------------------
    def submit(self, now_s: float, key: K, task: Task | None = None, after: Sequence[K] = (), *,
               remember: bool = False) -> None:
        """A task arrived. `task` may be omitted when the `tasks` mapping given to the core
        has it. `after`: keys that must complete first (released when all have; rejected if
        one does not). `remember`: keep this key's outcome after it ends, so that a task
        submitted later may name it in `after` (a key named before it is submitted needs
        nothing)."""
        if key in self._running:
            raise SchedulingError(f"task {key!r} was submitted twice")
        if task is not None:
            self._tasks[key] = task
        if not (after or remember or self._depth or self._batch or self._waiting or self._held) \
                and now_s < self._budget.soonest:
            # the common case, written out: nothing waits, nothing to wait for, no event open
            self.state.time_s = now_s
            seq = self._seq
            self._seq = seq + 1
            self._depth = 1
            try:
                d = self._decide(now_s, (key,))[0]
                if d.status is _PLACED:
                    self._running[key] = (d.target, seq, now_s)
                    self.sink.start(key, d)
                else:
                    self._act(now_s, key, seq, now_s, d)
            finally:
                self._depth = 0
                if self._blocked:
                    self._blocked.clear()
                if self._waiting and self._tick_due == _INF:
                    self._arm(now_s)
            return
        if key in self._waiting or key in self._held:
            raise SchedulingError(f"task {key!r} was submitted twice")
        if remember:
            self._remember.add(key)
        self._enter(now_s)
        try:
            waits = 0
            for dep in after:
                done = self._outcomes.get(dep)
                if done is None:  # running, waiting, or not submitted yet
                    self._dependents.setdefault(dep, []).append(key)
                    waits += 1
                elif not done:
                    self._end(key, False)
                    self.sink.reject(key, DEPENDENCY_REASON)
                    self._release_dependents(now_s, key, False)
                    return
            if waits:
                self._held[key] = waits
                return
            if after and self._on_release is not None:
                self._on_release(key, now_s)
            self._release(now_s, key)
        finally:
            self._leave(now_s)

    def completed(self, now_s: float, key: K) -> None:
        """Terminal success of a running task: releases its dependents; its slot is free."""
        run = self._running.pop(key, None)
        if run is None:
            raise UnknownTaskError(f"completed: task {key!r} is not running")
        self._tasks.pop(key, None)
        if self._retries:
            self._retries.pop(key, None)
        if self._remember and key in self._remember:
            self._remember.discard(key)
            self._outcomes[key] = True
        if self._dependents or self._waiting or now_s >= self._budget.soonest:
            self._enter(now_s)
            try:
                if key in self._dependents:
                    self._release_dependents(now_s, key, True)
                if self._waiting and not self._batch:
                    self._offer(now_s, run[0])
            finally:
                self._leave(now_s)

    def failed(self, now_s: float, key: K, reason: str) -> None:
        """Terminal failure reported by the body (e.g. the executor raised): no retry; the
        tasks that depend on it are rejected. The body records the failure itself."""
        run = self._running.pop(key, None)
        if run is None:
            raise UnknownTaskError(f"failed: task {key!r} is not running")
        self._enter(now_s)
        try:
            self._end(key, False)
            self._release_dependents(now_s, key, False)
            self._freed(now_s, run[0], None)
        finally:
            self._leave(now_s)

    def lost(self, now_s: float, key: K, reason: str) -> None:
        """An attempt was lost (node failed or left, the task did not fit, dispatch not
        acknowledged): the task waits again at its old place in the queue, up to
        `max_retries` times; then `sink.fail`."""
        run = self._running.pop(key, None)
        if run is None:
            raise UnknownTaskError(f"lost: task {key!r} is not running")
        self._enter(now_s)
        try:
            tries = self._retries.get(key, 0) + 1
            self._retries[key] = tries
            cls = None
            if tries > self.settings.max_retries:
                self._end(key, False)
                self.sink.fail(key, f"failed after {self.settings.max_retries} retries: {reason}")
                self._release_dependents(now_s, key, False)
            else:
                cls = self._wait(now_s, key, run[1], reason).cls
            self._freed(now_s, run[0], cls)
        finally:
            self._leave(now_s)

    def declined(self, now_s: float, key: K, reason: str) -> None:
        """The body could not act on `sink.start` (the decision went stale: its node stopped
        taking work): the task waits again at its place, counted as a deferral."""
        run = self._running.pop(key, None)
        if run is None:
            raise UnknownTaskError(f"declined: task {key!r} is not running")
        self._enter(now_s)
        try:
            self.sink.deferred(key, reason)
            w = self._wait(now_s, key, run[1], reason, run[2])  # the same wait goes on
            self._blocked.add(w.cls)  # the same decision would come back in this event
        finally:
            self._leave(now_s)

    def cancel(self, now_s: float, key: K) -> bool:
        """Remove a task that has not started (waiting, held or in a batch window); True if it
        was one. Its dependents are rejected. A running task is the body's to stop."""
        if key in self._waiting:
            del self._waiting[key]
        elif key in self._held:
            del self._held[key]
        elif any(k == key for k, _ in self._pending):
            self._pending = [(k, s) for k, s in self._pending if k != key]
        else:
            return False
        self._enter(now_s)
        try:
            self._end(key, False)
            self._release_dependents(now_s, key, False)
        finally:
            self._leave(now_s)
        return True

    def slot_freed(self, now_s: float, node_id: str) -> None:
        """Capacity appeared on `node_id` (or a cloud offer) without a completion."""
        self._reoffer(now_s, node_id)

    def node_joined(self, now_s: float, node_id: str) -> None:
        self._reoffer(now_s)

    def node_left(self, now_s: float, node_id: str) -> None:
        """The body reports each of its running tasks with `lost()` (before or after)."""
        self._reoffer(now_s)

    def node_changed(self, now_s: float, node_id: str) -> None:
        """A node's status, power source, thermal state or speed changed."""
        self._reoffer(now_s)

    def budget_rolled(self, now_s: float) -> None:
        """A budget period rolled outside the core's own calendar (spend reset in state)."""
        self._reoffer(now_s)

    def tick(self, now_s: float) -> None:
        """Periodic: the batch window closes; waiting work past the maximum wait is rejected;
        the rest is offered again. Harmless when nothing is due."""
        self._enter(now_s)
        try:
            if now_s >= self._window_due:
                self._window_due = _INF
                self._window(now_s)
            if now_s >= self._tick_due:
                self._tick_due = _INF
                self._expire(now_s)
                self._offer(now_s, None)
        finally:
            self._leave(now_s)

    # --- queries ----------------------------------------------------------------------------
    def next_tick_s(self) -> float | None:
        due = min(self._tick_due, self._window_due)
        return None if due == _INF else due

    def waiting(self) -> int:
        return len(self._waiting) + len(self._pending)

    def waiting_keys(self) -> list[K]:
        """Waiting tasks (batch windows included), oldest first."""
        seqs = [(w.seq, k) for k, w in self._waiting.items()] + [(s, k) for k, s in self._pending]
        return [k for _, k in sorted(seqs, key=lambda x: x[0])]

    def running_keys(self) -> list[K]:
        return list(self._running)

    def task(self, key: K) -> Task:
        return self._tasks[key]
