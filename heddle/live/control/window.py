"""What the control plane remembers of tasks that have ended: a bounded window.

A task that ended (completed, failed, rejected, cancelled) and holds no slot leaves the
control plane's working set; a short record of it (state, node, attempts, reason, a small
result) stays in this window, the most recent ``keep`` of them, for `heddle status` and for
dependencies named by later submissions. Everything about it stays in the event log, which
is where an older task is looked up (`ended_from_event`). Counts of every task that ended
since the process started are kept as plain counters, and per-job counts for the jobs with
work in memory plus the most recent ``keep_jobs`` others, so memory stays bounded however
long the control plane runs.
"""

from __future__ import annotations

import json
from collections import Counter, OrderedDict, namedtuple
from collections.abc import Callable, Iterator
from typing import Any

from heddle.events import EventEnvelope, TaskStatus
from heddle.live.control.book import CANCELLED, REJECTED
from heddle.live.control.messages import TaskRow

__all__ = ["EndedTask", "EndedWindow", "ended_from_event", "row", "small_result"]

KEEP_RESULT_BYTES = 4096
"""Largest result (as JSON) kept in the window; a larger one is read from the log."""
_ENDING_EVENTS = {
    "TaskCompleted": TaskStatus.COMPLETED,
    "TaskRejected": TaskStatus.REJECTED,
    "TaskCancelled": TaskStatus.CANCELLED,
}


_ROW_FIELDS = TaskRow.model_fields
EndedTask = namedtuple(  # its fields are TaskRow's, named once there
    "EndedTask", tuple(_ROW_FIELDS),
    defaults=tuple(f.default for f in _ROW_FIELDS.values() if not f.is_required()),
)
"""The window's record of an ended task: a `TaskRow`'s fields in a plain tuple (a pydantic row
per ended task would cost more than keeping it); `row(ended)` builds the row when asked."""


def row(ended: EndedTask) -> TaskRow:
    return TaskRow(**ended._asdict())


def small_result(result: Any) -> Any:
    """``result`` if it is small enough to keep in memory, else None."""
    if result is None or isinstance(result, bool | int | float):
        return result
    if isinstance(result, str):
        return result if len(result) <= KEEP_RESULT_BYTES else None
    try:
        return result if len(json.dumps(result)) <= KEEP_RESULT_BYTES else None
    except (TypeError, ValueError):
        return None


def ended_from_event(envelope: EventEnvelope, job_id: str = "") -> EndedTask | None:
    """The ended task a task's last event describes, or None if that event ends nothing."""
    payload = envelope.payload
    status = _ENDING_EVENTS.get(envelope.event_type)
    if envelope.event_type == "TaskFailed" and not payload.get("retryable", False):
        reason = str(payload.get("reason", ""))
        status = (TaskStatus.REJECTED if reason.startswith(REJECTED)
                  else TaskStatus.CANCELLED if reason.startswith(CANCELLED) else TaskStatus.FAILED)
    if status is None:
        return None
    return EndedTask(
        task_id=envelope.aggregate_id, job_id=job_id or str(payload.get("job_id", "")), status=status,
        node=str(payload.get("node", "")), attempts=int(payload.get("attempt", 0) or 0),
        reason=str(payload.get("reason", "")), result=small_result(payload.get("result")),
    )


class EndedWindow:
    """The most recent ended tasks, bounded, and counts of all of them."""

    def __init__(self, keep: int, keep_jobs: int, busy: Callable[[str], bool],
                 forget_job: Callable[[str], None]) -> None:
        """``busy(job)``: does the job still have work in memory (its counts are kept however
        many other jobs ended since)? ``forget_job(job)`` is called when a job's counts go."""
        self.keep = keep
        self.keep_jobs = keep_jobs
        self.busy = busy
        self.forget_job = forget_job
        self.tasks: OrderedDict[str, EndedTask] = OrderedDict()
        self.totals: Counter[str] = Counter()  # every task that ended, by state
        self.jobs: OrderedDict[str, Counter[str]] = OrderedDict()  # job -> its ended tasks by state

    def __len__(self) -> int:
        return len(self.tasks)

    def get(self, task_id: str) -> EndedTask | None:
        return self.tasks.get(task_id)

    def add(self, ended: EndedTask) -> None:
        """Remember ``ended`` (a task id already here is not counted twice)."""
        if ended.task_id in self.tasks:
            return
        self.tasks[ended.task_id] = ended
        if len(self.tasks) > self.keep:
            self.tasks.popitem(last=False)
        self.totals[ended.status] += 1
        counts = self.jobs.get(ended.job_id)
        if counts is None:
            counts = self.jobs[ended.job_id] = Counter()
        else:
            self.jobs.move_to_end(ended.job_id)
        counts[ended.status] += 1
        if len(self.jobs) > self.keep_jobs:
            self._forget_a_job()

    def _forget_a_job(self) -> None:
        for job_id in self.jobs:  # oldest first; a job with work in memory stays
            if not self.busy(job_id):
                del self.jobs[job_id]
                self.forget_job(job_id)
                return

    def rows(self, job_id: str) -> Iterator[EndedTask]:
        return (ended for ended in self.tasks.values() if ended.job_id == job_id)
