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


@pytest.mark.parametrize(
    ("history", "command", "status"),
    [
        ([], task_cmd("RejectTask", {"reason": "no node can ever run it"}), TaskStatus.REJECTED),
        ([task_cmd("PlaceTask", {"target": "n1"})], task_cmd("RejectTask", {"reason": "r"}), TaskStatus.REJECTED),
        ([], task_cmd("CancelTask", {"reason": "cancelled by user:system:cli:ana"}), TaskStatus.CANCELLED),
        ([task_cmd("PlaceTask", {"target": "n1"}), task_cmd("StartTask")], task_cmd("CancelTask", {"reason": "x"}),
         TaskStatus.CANCELLED),
    ],
)
async def test_rejected_and_cancelled_are_terminal_states_of_their_own(
    command_handler, in_memory_event_log, history, command, status
):
    for cmd in [task_cmd("SubmitTask", SUBMIT), *history, command]:
        await command_handler.handle(cmd)
    task = command_handler.cache.get(("Task", "t1"))
    assert task.status == status and status in TaskStatus.ENDED
    assert task.failure_reason == command.payload["reason"]
    assert in_memory_event_log.events("Task", "t1")[-1].event_type == {
        TaskStatus.REJECTED: "TaskRejected", TaskStatus.CANCELLED: "TaskCancelled"}[status]
    for later in (task_cmd("PlaceTask", {"target": "n2"}), task_cmd("CancelTask", {"reason": "again"}),
                  task_cmd("FailTask", {"reason": "late", "retryable": True})):
        with pytest.raises(CommandRejected, match="INVALID_TRANSITION"):
            await command_handler.handle(later)


async def test_a_started_task_cannot_be_rejected(command_handler):
    for cmd in [task_cmd("SubmitTask", SUBMIT), task_cmd("PlaceTask", {"target": "n1"}), task_cmd("StartTask")]:
        await command_handler.handle(cmd)
    with pytest.raises(CommandRejected, match="INVALID_TRANSITION"):
        await command_handler.handle(task_cmd("RejectTask", {"reason": "too late"}))


async def test_a_job_adds_many_tasks_in_one_event(command_handler, in_memory_event_log):
    job = {"aggregate_type": "Job", "aggregate_id": "j1"}
    await command_handler.handle(make_command("SubmitJob", payload={"owner": "ana"}, **job))
    await command_handler.handle(make_command("AddTasks", payload={"task_ids": ["t1", "t2", "t3"]}, **job))
    await command_handler.handle(make_command("AddTask", payload={"task_id": "t4"}, **job))
    assert command_handler.cache.get(("Job", "j1")).children == {"Task": {"t1", "t2", "t3", "t4"}}
    assert [e.event_type for e in in_memory_event_log.events("Job", "j1")] == [
        "JobSubmitted", "JobTasksAdded", "JobTaskAdded"]
    with pytest.raises(CommandRejected, match="INVALID_PAYLOAD"):
        await command_handler.handle(make_command("AddTasks", payload={"task_ids": []}, **job))


async def test_a_job_submitted_with_its_tasks_lists_them_in_one_event(command_handler, in_memory_event_log):
    job = {"aggregate_type": "Job", "aggregate_id": "j1"}
    await command_handler.handle(make_command("SubmitJob", payload={"owner": "ana", "task_ids": ["t1", "t2"]},
                                              **job))
    await command_handler.handle(make_command("AddTasks", payload={"task_ids": ["t3"]}, **job))
    assert command_handler.cache.get(("Job", "j1")).children == {"Task": {"t1", "t2", "t3"}}
    assert [e.event_type for e in in_memory_event_log.events("Job", "j1")] == ["JobSubmitted", "JobTasksAdded"]
    with pytest.raises(CommandRejected, match="INVALID_PAYLOAD"):
        await command_handler.handle(make_command("SubmitJob", payload={"owner": "bo", "task_ids": []},
                                                  aggregate_type="Job", aggregate_id="j2"))
