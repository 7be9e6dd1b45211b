"""heddle's Job and Task aggregates through the CommandHandler."""

from __future__ import annotations

import pytest

from heddle.events.errors import CommandRejected
from heddle.events.lifecycle import TaskAggregate, TaskStatus
from heddle.events.testing import make_command


def task_cmd(command_type, payload=None, task_id="t1"):
    return make_command(
        command_type, aggregate_type="Task", aggregate_id=task_id, payload=payload or {}
    )


SUBMIT = {"job_id": "j1", "model": "llama-3-8b", "owner": "ana", "privacy": "personal"}


async def test_task_happy_path_and_retry(command_handler, in_memory_event_log):
    for cmd in [
        task_cmd("SubmitTask", SUBMIT),
        task_cmd("PlaceTask", {"target": "jetson-1"}),
        task_cmd("StartTask"),
        task_cmd("FailTask", {"reason": "node drained", "retryable": True}),
        task_cmd("PlaceTask", {"target": "mac-mini-2"}),
        task_cmd("StartTask"),
        task_cmd("ReportProgress", {"tokens_done": 40}),
        task_cmd("CompleteTask", {"tokens_done": 128}),
    ]:
        await command_handler.handle(cmd)
    task = command_handler.cache.get(("Task", "t1"))
    assert (task.status, task.target, task.attempts, task.tokens_done) == (
        TaskStatus.COMPLETED,
        "mac-mini-2",
        2,
        128,
    )
    # A rebuild from the log alone reaches the same state.
    replayed = TaskAggregate("t1")
    for envelope in in_memory_event_log.events("Task", "t1"):
        replayed.apply(envelope)
    assert replayed.snapshot_state() == task.snapshot_state()


@pytest.mark.parametrize(
    ("history", "command", "reason"),
    [
        ([], task_cmd("StartTask"), "INVALID_TRANSITION"),
        ([task_cmd("SubmitTask", SUBMIT)], task_cmd("SubmitTask", SUBMIT), "INVALID_TRANSITION"),
        ([task_cmd("SubmitTask", SUBMIT)], task_cmd("CompleteTask"), "INVALID_TRANSITION"),
        ([], task_cmd("SubmitTask", {**SUBMIT, "model": 7}), "INVALID_PAYLOAD"),
    ],
)
async def test_task_refuses_invalid_commands(command_handler, history, command, reason):
    for cmd in history:
        await command_handler.handle(cmd)
    with pytest.raises(CommandRejected, match=reason):
        await command_handler.handle(command)


async def test_job_records_its_tasks_as_children(command_handler):
    job = {"aggregate_type": "Job", "aggregate_id": "j1"}
    with pytest.raises(CommandRejected, match="NOT_SUBMITTED"):
        await command_handler.handle(make_command("AddTask", payload={"task_id": "t1"}, **job))
    await command_handler.handle(make_command("SubmitJob", payload={"owner": "ana"}, **job))
    for task_id in ("t1", "t2"):
        await command_handler.handle(make_command("AddTask", payload={"task_id": task_id}, **job))
    assert command_handler.cache.get(("Job", "j1")).children == {"Task": {"t1", "t2"}}
