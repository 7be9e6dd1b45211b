"""CommandHandler.handle_many: the outcome of awaiting handle() on each command in turn
(within each aggregate), with batched appends; and the read-free create path."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heddle.events.command_handler import CommandHandler
from heddle.events.errors import CommandRejected, ConcurrencyError
from heddle.events.event_log import InMemoryEventLog, InMemoryRejectionLog
from heddle.events.testing import make_command

SUBMIT = {"job_id": "j1", "model": "m", "owner": "ana", "privacy": "public"}
LIFECYCLE = [
    ("SubmitTask", SUBMIT),
    ("PlaceTask", {"target": "mac-1"}),
    ("StartTask", {}),
    ("ReportProgress", {"tokens_done": 5}),
    ("CompleteTask", {"tokens_done": 9}),
]


def task_cmd(command_type, task_id, payload=None, **kwargs):
    return make_command(
        command_type, aggregate_type="Task", aggregate_id=task_id, payload=payload, **kwargs
    )


def summary(outcome):
    """What a caller sees of one result (event ids and times differ between runs)."""
    if isinstance(outcome, Exception):
        return type(outcome).__name__, getattr(outcome, "reason", "")
    return outcome.event_type, outcome.aggregate_id, outcome.aggregate_version, outcome.payload


# A step: (task index, command type, payload, expected version or None), or an int that
# retries an earlier command (same command id).
command_step = st.tuples(
    st.integers(0, 3),
    st.sampled_from(
        [
            ("SubmitTask", SUBMIT),
            ("SubmitTask", {"model": 3}),  # rejected: bad payload
            ("PlaceTask", {"target": "mac-1"}),
            ("StartTask", {}),
            ("ReportProgress", {"tokens_done": 7}),
            ("CompleteTask", {}),
            ("FailTask", {"reason": "oom", "retryable": True}),
        ]
    ),
    st.sampled_from([None, None, 0, 1, 2]),
)
steps = st.lists(st.one_of(command_step, st.integers(0, 30)), max_size=30)


def build(steps, prefix):
    commands = []
    for item in steps:
        if isinstance(item, int):
            if commands:
                commands.append(commands[item % len(commands)])
            continue
        task, (command_type, payload), expected = item
        commands.append(
            task_cmd(
                command_type,
                f"{prefix}{task}",
                payload,
                expected_aggregate_version=expected,
                command_id=f"c{len(commands)}",
            )
        )
    return commands


async def one_by_one(handler, commands):
    results = []
    for cmd in commands:
        try:
            results.append(await handler.handle(cmd))
        except Exception as exc:  # noqa: BLE001 - compared as outcomes
            results.append(exc)
    return results


async def histories(log, commands):
    ids = sorted({cmd.aggregate_id for cmd in commands})
    return {i: [(e.event_type, e.payload) async for e in log.load("Task", i)] for i in ids}


@settings(max_examples=60, deadline=None)
@given(steps=steps, preload=st.booleans())
def test_handle_many_equals_handle_one_by_one(steps, preload):
    """Same outcomes, same histories; ``preload`` first writes some events through another
    handler, so creates meet existing tasks and first commands meet uncached ones."""

    async def run(batched):
        log = InMemoryEventLog()
        if preload:
            other = CommandHandler(log, InMemoryRejectionLog())
            await other.handle_many(build([(0, ("SubmitTask", SUBMIT), None)] * 2, "t"))
        handler = CommandHandler(log, InMemoryRejectionLog())
        commands = build(steps, "t")
        if batched:
            results = await handler.handle_many(commands)
        else:
            results = await one_by_one(handler, commands)
        return [summary(r) for r in results], await histories(log, commands)

    assert asyncio.run(run(batched=True)) == asyncio.run(run(batched=False))


async def test_many_lifecycles_in_one_call(logs):
    prefix = "t" + uuid.uuid4().hex[:8]
    handler = CommandHandler(await logs(), InMemoryRejectionLog())
    commands = [
        task_cmd(command_type, f"{prefix}-{t}", payload, expected_aggregate_version=version)
        for version, (command_type, payload) in enumerate(LIFECYCLE)
        for t in range(40)
    ]
    results = await handler.handle_many(commands)
    assert all(not isinstance(r, Exception) for r in results), results
    reader = await logs()
    for t in range(40):
        events = [e async for e in reader.load("Task", f"{prefix}-{t}")]
        assert [e.event_type for e in events] == [
            "TaskSubmitted",
            "TaskPlaced",
            "TaskStarted",
            "TaskProgressed",
            "TaskCompleted",
        ]
    # A retried batch returns the earlier events and writes nothing.
    again = await handler.handle_many(commands)
    assert [r.event_id for r in again] == [r.event_id for r in results]


async def test_a_create_of_an_existing_task_fails_as_in_handle(logs):
    """Expected version 0 on an uncached task is decided without a read; when the task
    exists after all, the outcome is still handle()'s: a ConcurrencyError, never a
    rejection recorded against a version the task is not at, never a second event."""
    task_id = "t" + uuid.uuid4().hex[:8]
    writer = CommandHandler(await logs(), InMemoryRejectionLog())
    await writer.handle(task_cmd("SubmitTask", task_id, SUBMIT))
    for make in (
        lambda: task_cmd("SubmitTask", task_id, SUBMIT, expected_aggregate_version=0),
        lambda: task_cmd("SubmitTask", task_id, {"model": 3}, expected_aggregate_version=0),
    ):
        rejections = InMemoryRejectionLog()
        cold = CommandHandler(await logs(), rejections)
        with pytest.raises(ConcurrencyError):
            await cold.handle(make())
        cold_many = CommandHandler(await logs(), rejections)
        [result] = await cold_many.handle_many([make()])
        assert isinstance(result, ConcurrencyError)
        assert rejections.rejections == []
    assert [e.aggregate_version async for e in (await logs()).load("Task", task_id)] == [1]
    # And on a task that really is new, a bad create is a recorded rejection.
    rejections = InMemoryRejectionLog()
    fresh = CommandHandler(await logs(), rejections)
    with pytest.raises(CommandRejected, match="INVALID_PAYLOAD"):
        await fresh.handle(task_cmd("SubmitTask", task_id + "x", {}, expected_aggregate_version=0))
    assert [r.reason for r in rejections.rejections] == ["INVALID_PAYLOAD"]
