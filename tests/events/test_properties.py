"""Property tests: every command ends in exactly one recorded outcome, retries never write
twice, and replay and snapshot rebuilds reproduce the live aggregate."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from heddle.events.command_handler import CommandHandler
from heddle.events.errors import CommandRejected
from heddle.events.event_log import InMemoryEventLog, InMemoryRejectionLog
from heddle.events.kv import InMemoryKeyValueStore
from heddle.events.lifecycle import TaskAggregate
from heddle.events.snapshot import SnapshotStore
from heddle.events.testing import make_command

settings.register_profile("events", max_examples=60, deadline=None)

SUBMIT = {"job_id": "j1", "model": "m", "owner": "ana", "privacy": "personal"}

fresh_command = st.one_of(
    st.just(("SubmitTask", SUBMIT, "user:system:api")),
    st.builds(
        lambda t: ("PlaceTask", {"target": t}, "user:system:api"),
        st.sampled_from(["mac-1", "jetson-2", "cloud"]),
    ),
    st.just(("StartTask", {}, "user:system:api")),
    st.builds(
        lambda n: ("ReportProgress", {"tokens_done": n}, "user:system:api"), st.integers(0, 10_000)
    ),
    st.just(("CompleteTask", {}, "user:system:api")),
    st.builds(
        lambda r: ("FailTask", {"reason": "oom", "retryable": r}, "user:system:api"), st.booleans()
    ),
    st.builds(
        lambda who: ("InternalFinalize", {}, who),
        st.sampled_from(["framework:horizon", "user:badge:7"]),
    ),
)
# Each step is a new command, or a retry of an earlier one (an index into the history).
step = st.one_of(fresh_command, st.integers(min_value=0, max_value=40))


async def run_steps(steps):
    log, rejections, kv = InMemoryEventLog(), InMemoryRejectionLog(), InMemoryKeyValueStore()
    handler = CommandHandler(log, rejections, snapshots=SnapshotStore(kv), snapshot_every_n=3)
    sent = []
    outcomes: dict[str, list[str]] = {}
    for item in steps:
        if isinstance(item, int):
            if not sent:
                continue
            cmd = sent[item % len(sent)]  # a retry: same command id
        else:
            command_type, payload, issuer = item
            cmd = make_command(
                command_type,
                aggregate_type="Task",
                aggregate_id="t1",
                payload=payload,
                issued_by=issuer,
            )
            sent.append(cmd)
        rejected_before = len(rejections.rejections)
        try:
            event = await handler.handle(cmd)
        except CommandRejected:
            assert len(rejections.rejections) == rejected_before + 1
            assert rejections.rejections[-1].command_id == cmd.command_id
            outcomes.setdefault(cmd.command_id, []).append("rejected")
        else:
            assert event.metadata.command_id == cmd.command_id
            assert len(rejections.rejections) == rejected_before
            outcomes.setdefault(cmd.command_id, []).append(event.event_id)
    return log, handler, kv, sent, outcomes


@settings(settings.get_profile("events"))
@given(st.lists(step, max_size=40))
def test_commands_are_never_dropped_or_applied_twice_and_rebuilds_agree(steps):
    log, handler, kv, sent, outcomes = asyncio.run(run_steps(steps))
    events = log.events("Task", "t1")
    # Nothing dropped: every command that was sent has an outcome.
    assert set(outcomes) == {cmd.command_id for cmd in sent}
    # Never twice: at most one event per command id, and every retry of an accepted
    # command returned that same event.
    by_command = {}
    for event in events:
        assert event.metadata.command_id not in by_command
        by_command[event.metadata.command_id] = event.event_id
    for command_id, results in outcomes.items():
        accepted = [r for r in results if r != "rejected"]
        assert set(accepted) <= {by_command.get(command_id)}
    # Replay reproduces the live aggregate (same state, same version).
    live = handler.cache.get(("Task", "t1"))
    if live is None:
        assert events == []
        return
    replayed = TaskAggregate("t1")
    for event in events:
        replayed.apply(event)
    assert replayed.aggregate_version == live.aggregate_version == len(events)
    assert replayed.snapshot_state() == live.snapshot_state()
    # A cold handler (another process) rebuilds the same state from snapshot + newer events.

    async def rebuild():
        cold = CommandHandler(log, InMemoryRejectionLog(), snapshots=SnapshotStore(kv))
        return await cold._load_or_create(TaskAggregate, ("Task", "t1"))

    rebuilt = asyncio.run(rebuild())
    assert rebuilt.snapshot_state() == live.snapshot_state()
    assert rebuilt.aggregate_version == live.aggregate_version
