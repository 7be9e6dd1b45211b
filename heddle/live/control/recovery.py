"""Restart: rebuild the control plane from the event log and carry on.

Every Job and Task event is replayed into fresh aggregates; a task whose history ends goes
straight to the window of ended tasks (memory holds only unfinished work, however long the
log), and so does a job with nothing unfinished. Tasks still waiting go back to
the core in their submission order (a dependency first); tasks that had been sent to a node
are "recovering": the node's next capacity report says whether it still runs them (then
they keep their slot) or not (then they are lost and re-placed), and a node that does not
report within the loss window loses them all. Reports the old process had not acknowledged
are delivered again by the durable consumer.

Cloud spend comes back from the same events (budget.py): each task's last recorded cost is
charged if it was recorded in the current budget period, and a cloud attempt still in flight
has its placement's reservation charged again.
"""

from __future__ import annotations

import heapq
import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from heddle.events import JobAggregate, TaskAggregate, TaskStatus
from heddle.live.control.book import LiveTask, outcome
from heddle.live.control.messages import SubmitTask
from heddle.live.control.streams import read_history
from heddle.live.control.window import EndedTask, small_result
from heddle.live.features import task_needs

if TYPE_CHECKING:
    from heddle.live.control.plane import ControlPlane

__all__ = ["recover"]

logger = logging.getLogger(__name__)


async def recover(plane: ControlPlane) -> int:
    """Replay the log into ``plane``; returns the number of events read."""
    journal = plane.journal
    facts: dict[str, dict[str, Any]] = {}
    events = 0
    for aggregate_type in (JobAggregate.aggregate_type, TaskAggregate.aggregate_type):
        async for envelope in read_history(plane.js, aggregate_type):
            events += 1
            task_id = envelope.aggregate_id
            if aggregate_type == JobAggregate.aggregate_type:
                journal.replay(envelope)
            elif plane.window.get(task_id) is None:  # events after the end change nothing
                journal.replay(envelope)
                fact = facts.setdefault(task_id, {})
                _note(fact, envelope.event_type, envelope.payload)
                if "charged_usd" in envelope.payload:  # the task's cost so far, as of this event
                    fact["charged"] = (envelope.payload.get("account"), envelope.payload["charged_usd"],
                                       envelope.occurred_at_unix_s)
                _retire_if_ended(plane, task_id, facts)
    if not events:
        return 0
    now = plane.now()
    resubmitted = recovering = 0
    for task_id, aggregate in list(journal.tasks.items()):  # a resubmission may end one
        fact = facts.get(task_id, {})
        if "spec" not in fact:
            logger.error("task %s has no TaskSubmitted event; skipped", task_id)
            journal.forget(aggregate)
            continue
        spec = SubmitTask.model_validate(fact["spec"])
        task = replace(spec.task.to_task(), arrival_s=fact.get("submitted_at", now),
                       needs=task_needs(spec.task.kind, spec.payload))
        if spec.task.deadline_s is not None:
            task = replace(task, deadline_s=task.arrival_s + spec.task.deadline_s - spec.task.arrival_s)
        live = LiveTask(spec=spec, task=task, job_id=aggregate.job_id, attempt=fact.get("attempt", 0),
                        result=fact.get("result"))
        plane.adopt(live)
        status = aggregate.status
        if "charged" in fact:
            plane.ledger.restore(task_id, *fact["charged"], now)
        if status in (TaskStatus.PLACED, TaskStatus.STARTED):
            live.node, live.recovering = aggregate.target, True
            if fact.get("offer"):  # a cloud call in flight: its reservation holds again
                live.offer = fact["offer"]
                plane.ledger.reserve(task_id, live.attempt, live.task.account, fact.get("reserved_usd", 0.0))
            timeout = spec.timeout_s or plane.settings.task_timeout_s
            live.timeout_at_s = now + timeout + plane.settings.timeout_grace_s
            heapq.heappush(plane._timeouts, (live.timeout_at_s, task_id, live.attempt))
            recovering += 1
        else:
            resubmitted += _resubmit(plane, live, now)
    for job_id in list(journal.jobs):
        plane.drop_idle_job(job_id)  # nothing of it unfinished and no ended task in the window
    plane.recover_until_s = now + plane.settings.silence_s
    logger.info("recovered %d events: %d tasks (%d waiting again, %d in flight)",
                events, len(plane.tasks), resubmitted, recovering)
    return events


def _retire_if_ended(plane: ControlPlane, task_id: str, facts: dict[str, dict[str, Any]]) -> None:
    aggregate = plane.journal.tasks[task_id]
    if aggregate.status not in TaskStatus.ENDED:
        return
    fact = facts.pop(task_id, {})
    if "charged" in fact:
        plane.ledger.restore(None, *fact["charged"], plane.now())
    plane.journal.forget(aggregate)
    plane.window.add(EndedTask(
        task_id=task_id, job_id=aggregate.job_id, status=outcome(aggregate), node=aggregate.target,
        attempts=fact.get("attempt", 0), reason=aggregate.failure_reason, result=small_result(fact.get("result")),
    ))


def _note(fact: dict[str, Any], event_type: str, payload: dict[str, Any]) -> None:
    if event_type == "TaskSubmitted":
        fact["spec"], fact["submitted_at"] = payload.get("spec"), payload.get("submitted_at")
    elif event_type == "TaskPlaced":
        fact["attempt"] = payload.get("attempt", fact.get("attempt", 0) + 1)
        fact["offer"], fact["reserved_usd"] = payload.get("offer"), payload.get("reserved_usd", 0.0)
    elif event_type == "TaskCompleted":
        fact["result"] = payload.get("result")


def _resubmit(plane: ControlPlane, live: LiveTask, now: float) -> int:
    plane.core_submit(live, now)
    return 1
