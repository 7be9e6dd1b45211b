"""What the control plane knows about each task beyond its aggregate: the submission
(task, executor, dependencies, timeout), the current attempt and where it runs.

A task's state is its aggregate's status (`outcome()`); logs written before TaskRejected and
TaskCancelled existed recorded those as TaskFailed with a reason prefix, which `outcome()`
still reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from heddle.events import TaskAggregate, TaskStatus
from heddle.live.control.messages import SubmitTask
from heddle.models import Task

__all__ = ["CANCELLED", "REJECTED", "LiveTask", "outcome"]

REJECTED = "rejected: "
"""Reason prefix of a rejection recorded as TaskFailed (logs from before TaskRejected)."""
CANCELLED = "cancelled: "
"""Reason prefix of a cancellation recorded as TaskFailed (logs from before TaskCancelled)."""


@dataclass(slots=True)
class LiveTask:
    spec: SubmitTask
    task: Task  # the optimizer's view (arrival and deadline on the control plane's clock)
    job_id: str
    attempt: int = 0  # placements so far; the current attempt's number
    node: str = ""  # where the current attempt was sent ("" while waiting)
    offer: str = ""  # the cloud offer the current attempt calls through that node ("": none)
    acked: bool = False  # the node acknowledged the current attempt
    timeout_at_s: float = 0.0  # when the current attempt counts as lost
    terminal: bool = False
    result: Any = None
    recovering: bool = False  # in flight when the control plane restarted; node not yet heard
    in_core: bool = False  # the core knows it (not so for work in flight at a restart)
    wait_reason: str = ""  # why the core last deferred it (a caller asking is told)
    est_end_s: float = 0.0  # when the current attempt should end: placed + place()'s est_seconds

    @property
    def key(self) -> str:
        return self.task.id


def outcome(aggregate: TaskAggregate) -> str:
    """submitted / placed / started / completed / failed / rejected / cancelled."""
    if aggregate.status == TaskStatus.FAILED:
        if aggregate.failure_reason.startswith(REJECTED):
            return "rejected"
        if aggregate.failure_reason.startswith(CANCELLED):
            return "cancelled"
    return aggregate.status
