"""The scheduling core's public vocabulary: its settings, the sink a body implements, the
`decide` hook, its errors and the reasons it gives (see heddle/optimizer/scheduling.py)."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from heddle.optimizer.errors import OptimizerError
from heddle.optimizer.placement import Decision

__all__ = ["DEPENDENCY_REASON", "CoreSettings", "CoreSink", "Decide", "SchedulingError",
           "UnknownTaskError"]

K = TypeVar("K", bound=Hashable)

DEPENDENCY_REASON = "a stage it depends on did not complete"
"""Why a task is rejected when a task it waits for failed or was rejected."""


class SchedulingError(OptimizerError):
    """The body told the core something impossible (a second submit of a key, a decision with
    an unknown status); a bug in the body, raised to it."""


class UnknownTaskError(SchedulingError, KeyError):
    """An event names a task the core does not hold in the state the event needs (e.g.
    `completed` of a task that is not running)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown task"


@dataclass(frozen=True, slots=True)
class CoreSettings:
    """The core's knobs (times in seconds on the caller's clock)."""

    max_retries: int = 3  # re-placements after an attempt is lost before the task fails
    max_defer_s: float = 3600.0  # a task waiting longer than this is rejected with the reason
    defer_retry_s: float = 5.0  # waiting work is re-offered at least this often (the tick)
    batch_window_s: float = 0.0  # 0: offer each task as it is released; > 0: batch windows
    batch_max_tasks: int = 2000  # most tasks in one place() call


class CoreSink(Protocol[K]):
    """What the core tells its body to do (the body does the I/O or SimPy work)."""

    def start(self, key: K, decision: Decision) -> None: ...  # run/dispatch on decision.target

    def deferred(self, key: K, reason: str) -> None: ...  # bookkeeping only (count, reason)

    def reject(self, key: K, reason: str) -> None: ...  # terminal: rejected

    def fail(self, key: K, reason: str) -> None: ...  # terminal: failed after retries


Decide = Callable[[float, Sequence], Sequence[Decision]]
"""(now_s, keys) -> one Decision per key, in order. The default asks `place()`; a body may
stand in the optimizer's express placer where it is proven equal to `place()`."""
