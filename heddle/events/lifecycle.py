"""heddle's own aggregates: a Job (root) owns Tasks (interval aggregates).

Task status: submitted -> placed -> started -> completed | failed; a retryable failure
returns it to submitted for re-placement; TaskProgressed heartbeats while it runs. Two more
terminal states have events of their own: rejected (the scheduler refused a waiting task:
no node can ever run it, it waited too long, a dependency did not complete) and cancelled
(someone asked, at any point before it ended). InternalFinalized (framework only, e.g. a
cascade from its Job) closes it for good.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from heddle.events.aggregate import IntervalAggregate, RootAggregate, child_membership
from heddle.events.envelopes import Metadata
from heddle.events.errors import CommandRejected
from heddle.events.registry import register_aggregate

__all__ = ["JobAggregate", "TaskAggregate", "TaskStatus"]

Payload = Mapping[str, Any]
Decision = tuple[str, dict[str, Any]]


class TaskStatus:
    """Task status values (plain strings: they go into snapshots and payloads)."""

    NEW = "new"
    SUBMITTED = "submitted"
    PLACED = "placed"
    STARTED = "started"
    COMPLETED = "completed"
    FAILED = "failed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    ENDED = frozenset({COMPLETED, FAILED, REJECTED, CANCELLED})
    """The terminal states: a task in one of them never changes again."""


def _require(payload: Payload, field: str, kind: type) -> Any:
    value = payload.get(field)
    if not isinstance(value, kind):
        raise CommandRejected(
            "INVALID_PAYLOAD", f"field {field!r} must be a {kind.__name__}, got {value!r}"
        )
    return value


def _tasks_added(payload: Payload) -> dict[str, Any]:
    """The ``task_ids`` and child memberships of a job event that adds tasks."""
    task_ids = _require(payload, "task_ids", list)
    if not task_ids or not all(isinstance(t, str) for t in task_ids):
        raise CommandRejected("INVALID_PAYLOAD", f"task_ids must be a non-empty list of str, got {task_ids!r}")
    return {"task_ids": list(task_ids),
            "_child_membership": [child_membership("Task", t) for t in task_ids]}


@register_aggregate("Task")
class TaskAggregate(IntervalAggregate):
    """One unit of work's life, as the live runtime records it."""

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.status = TaskStatus.NEW
        self.job_id = ""
        self.model = ""
        self.owner = ""
        self.privacy = ""
        self.target = ""
        self.attempts = 0
        self.tokens_done = 0
        self.failure_reason = ""

    def _transition(self, allowed: tuple[str, ...], command: str) -> None:
        self.ensure_open()
        if self.status not in allowed:
            raise CommandRejected(
                "INVALID_TRANSITION", f"{command} on task {self.aggregate_id} in {self.status}"
            )

    # -- commands (decide; never mutate) ---------------------------------------------------
    def handle_submit_task(self, payload: Payload, metadata: Metadata) -> Decision:
        self._transition((TaskStatus.NEW,), "SubmitTask")
        return "TaskSubmitted", {
            "job_id": str(payload.get("job_id", "")),
            "model": _require(payload, "model", str),
            "owner": _require(payload, "owner", str),
            "privacy": _require(payload, "privacy", str),
        }

    def handle_place_task(self, payload: Payload, metadata: Metadata) -> Decision:
        self._transition((TaskStatus.SUBMITTED, TaskStatus.PLACED), "PlaceTask")
        return "TaskPlaced", {"target": _require(payload, "target", str)}

    def handle_start_task(self, payload: Payload, metadata: Metadata) -> Decision:
        self._transition((TaskStatus.PLACED,), "StartTask")
        return "TaskStarted", {}

    def handle_report_progress(self, payload: Payload, metadata: Metadata) -> Decision:
        self._transition((TaskStatus.STARTED,), "ReportProgress")
        return "TaskProgressed", {"tokens_done": _require(payload, "tokens_done", int)}

    def handle_complete_task(self, payload: Payload, metadata: Metadata) -> Decision:
        self._transition((TaskStatus.STARTED,), "CompleteTask")
        return "TaskCompleted", {"tokens_done": int(payload.get("tokens_done", self.tokens_done))}

    def handle_fail_task(self, payload: Payload, metadata: Metadata) -> Decision:
        self._transition((TaskStatus.SUBMITTED, TaskStatus.PLACED, TaskStatus.STARTED), "FailTask")
        return "TaskFailed", {
            "reason": _require(payload, "reason", str),
            "retryable": bool(payload.get("retryable", False)),
        }

    def handle_reject_task(self, payload: Payload, metadata: Metadata) -> Decision:
        self._transition((TaskStatus.SUBMITTED, TaskStatus.PLACED), "RejectTask")
        return "TaskRejected", {"reason": _require(payload, "reason", str)}

    def handle_cancel_task(self, payload: Payload, metadata: Metadata) -> Decision:
        self._transition((TaskStatus.SUBMITTED, TaskStatus.PLACED, TaskStatus.STARTED), "CancelTask")
        return "TaskCancelled", {"reason": _require(payload, "reason", str)}

    # -- events (mutate; deterministic) ----------------------------------------------------
    def apply_task_submitted(self, payload: Payload, metadata: Metadata) -> None:
        self.status = TaskStatus.SUBMITTED
        self.job_id = payload["job_id"]
        self.model = payload["model"]
        self.owner = payload["owner"]
        self.privacy = payload["privacy"]

    def apply_task_placed(self, payload: Payload, metadata: Metadata) -> None:
        self.status = TaskStatus.PLACED
        self.target = payload["target"]

    def apply_task_started(self, payload: Payload, metadata: Metadata) -> None:
        self.status = TaskStatus.STARTED
        self.attempts += 1

    def apply_task_progressed(self, payload: Payload, metadata: Metadata) -> None:
        self.tokens_done = payload["tokens_done"]

    def apply_task_completed(self, payload: Payload, metadata: Metadata) -> None:
        self.status = TaskStatus.COMPLETED
        self.tokens_done = payload["tokens_done"]

    def apply_task_failed(self, payload: Payload, metadata: Metadata) -> None:
        self.failure_reason = payload["reason"]
        self.status = TaskStatus.SUBMITTED if payload["retryable"] else TaskStatus.FAILED
        self.target = "" if payload["retryable"] else self.target

    def apply_task_rejected(self, payload: Payload, metadata: Metadata) -> None:
        self.status = TaskStatus.REJECTED
        self.failure_reason = payload["reason"]

    def apply_task_cancelled(self, payload: Payload, metadata: Metadata) -> None:
        self.status = TaskStatus.CANCELLED
        self.failure_reason = payload["reason"]


@register_aggregate("Job")
class JobAggregate(RootAggregate):
    """A job groups tasks; finalizing it cascades to every task (P2)."""

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.owner = ""
        self.submitted = False

    def handle_submit_job(self, payload: Payload, metadata: Metadata) -> Decision:
        """``task_ids`` (optional): the tasks the job is submitted with, named here rather
        than in a JobTasksAdded of their own (one event fewer per job: a gateway request is
        a job of one task, and each event costs the control plane ~0.1 ms)."""
        self.ensure_open()
        if self.submitted:
            raise CommandRejected("ALREADY_SUBMITTED", f"job {self.aggregate_id}")
        event = {"owner": _require(payload, "owner", str)}
        if "task_ids" in payload:
            event.update(_tasks_added(payload))
        return "JobSubmitted", event

    def handle_add_task(self, payload: Payload, metadata: Metadata) -> Decision:
        self.ensure_open()
        if not self.submitted:
            raise CommandRejected("NOT_SUBMITTED", f"job {self.aggregate_id}")
        task_id = _require(payload, "task_id", str)
        return "JobTaskAdded", {
            "task_id": task_id,
            "_child_membership": child_membership("Task", task_id),
        }

    def handle_add_tasks(self, payload: Payload, metadata: Metadata) -> Decision:
        """Many tasks in one event (a submission's worth: one append instead of a chain)."""
        self.ensure_open()
        if not self.submitted:
            raise CommandRejected("NOT_SUBMITTED", f"job {self.aggregate_id}")
        return "JobTasksAdded", _tasks_added(payload)

    def apply_job_submitted(self, payload: Payload, metadata: Metadata) -> None:
        self.owner = payload["owner"]
        self.submitted = True

    def apply_job_task_added(self, payload: Payload, metadata: Metadata) -> None:
        """Membership itself is recorded by RootAggregate from ``_child_membership``."""

    def apply_job_tasks_added(self, payload: Payload, metadata: Metadata) -> None:
        """Membership itself is recorded by RootAggregate from ``_child_membership``."""
