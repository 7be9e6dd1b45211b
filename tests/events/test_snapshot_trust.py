"""Snapshots are used only when they agree with the event log (issue 25): a forged or stale
snapshot is refused on load and the history replayed instead, on both backends; a good one
spares the replay, on JetStream too (only the events after it are fetched)."""

from __future__ import annotations

import logging
import uuid

import pytest

from heddle.events.command_handler import CommandHandler
from heddle.events.errors import CommandRejected, SnapshotError, UntrustedSnapshotError
from heddle.events.event_log import InMemoryEventLog, InMemoryRejectionLog
from heddle.events.jetstream_log import JetStreamEventLog
from heddle.events.kv import InMemoryKeyValueStore
from heddle.events.lifecycle import TaskAggregate, TaskStatus
from heddle.events.nats_kv import NatsKeyValueStore
from heddle.events.snapshot import SnapshotStore
from heddle.events.testing import make_command

SUBMIT = {"job_id": "j1", "model": "m", "owner": "ana", "privacy": "personal"}


class CountingJetStreamLog(JetStreamEventLog):
    """Counts the events a load downloads from the server."""

    downloaded = 0

    def _envelopes(self, aggregate_type, aggregate_id, messages):
        CountingJetStreamLog.downloaded += len(messages)
        return super()._envelopes(aggregate_type, aggregate_id, messages)


@pytest.fixture(params=["memory", "jetstream"])
async def backend(request, connect):
    """(new_event_log, snapshot store) sharing one backend; each log is another process."""
    if request.param == "memory":
        log = InMemoryEventLog()

        async def new_log():
            return log

        yield new_log, SnapshotStore(InMemoryKeyValueStore())
    else:
        nc = await connect()
        kv = await NatsKeyValueStore.open(nc, bucket="trust" + uuid.uuid4().hex[:8])

        async def new_log():
            return CountingJetStreamLog((await connect()).jetstream())

        yield new_log, SnapshotStore(kv)


def task_cmd(command_type, task_id, **payload):
    return make_command(command_type, aggregate_type="Task", aggregate_id=task_id, payload=payload)


async def started_task(log, snapshots, task_id, progress=0, every_n=100):
    handler = CommandHandler(
        log, InMemoryRejectionLog(), snapshots=snapshots, snapshot_every_n=every_n
    )
    await handler.handle(task_cmd("SubmitTask", task_id, **SUBMIT))
    await handler.handle(task_cmd("PlaceTask", task_id, target="mac-1"))
    await handler.handle(task_cmd("StartTask", task_id))
    for done in range(progress):
        await handler.handle(task_cmd("ReportProgress", task_id, tokens_done=done))
    return handler


def forge_finalized(aggregate: TaskAggregate, issuer="framework:forged") -> TaskAggregate:
    """What an attacker with write access to the snapshot key would store: the real last
    event id and version, and a finalization no event ever made."""
    forged = TaskAggregate.from_snapshot(aggregate.to_snapshot())
    forged.restore_state({"phase": "finalized", "finalized_by": issuer, "finalize_reason": "x"})
    return forged


async def test_a_forged_finalized_snapshot_is_detected_and_the_events_win(backend, caplog):
    new_log, snapshots = backend
    task_id = "t" + uuid.uuid4().hex[:8]
    writer = await started_task(await new_log(), snapshots, task_id)
    live = writer.cache.get(("Task", task_id))
    await snapshots.save(forge_finalized(live))
    # Checked directly: refused, with the reason.
    with pytest.raises(UntrustedSnapshotError, match="no InternalFinalized"):
        await snapshots.load_verified(TaskAggregate, task_id, await new_log())
    # Through a cold framework handler: the forged finalization has no effect.
    cold = CommandHandler(await new_log(), InMemoryRejectionLog(), snapshots=snapshots)
    with caplog.at_level(logging.ERROR, logger="heddle.events.command_handler"):
        event = await cold.handle(task_cmd("CompleteTask", task_id, tokens_done=7))
    assert event.event_type == "TaskCompleted" and event.aggregate_version == 4
    assert cold.untrusted_snapshots == 1
    assert f"ignoring the snapshot of Task/{task_id}" in caplog.text
    assert cold.cache.get(("Task", task_id)).status == TaskStatus.COMPLETED


async def test_a_snapshot_whose_last_event_is_not_in_the_log_is_refused(backend):
    new_log, snapshots = backend
    task_id = "t" + uuid.uuid4().hex[:8]
    writer = await started_task(await new_log(), snapshots, task_id)
    live = writer.cache.get(("Task", task_id))
    for version, event_id in [(3, "not-the-real-id"), (9, live.last_event_id), (3, None)]:
        stale = TaskAggregate.from_snapshot(live.to_snapshot())
        stale.aggregate_version, stale.last_event_id = version, event_id
        await snapshots.save(stale)
        with pytest.raises(UntrustedSnapshotError):
            await snapshots.load_verified(TaskAggregate, task_id, await new_log())


async def test_a_snapshot_may_not_hide_a_finalization(backend):
    new_log, snapshots = backend
    task_id = "t" + uuid.uuid4().hex[:8]
    writer = await started_task(await new_log(), snapshots, task_id)
    before = TaskAggregate.from_snapshot(writer.cache.get(("Task", task_id)).to_snapshot())
    await writer.handle(
        make_command(
            "InternalFinalize",
            aggregate_type="Task",
            aggregate_id=task_id,
            issued_by="framework:cascade",
            payload={"reason": "job done"},
        )
    )
    finalized = writer.cache.get(("Task", task_id))
    reopened = TaskAggregate.from_snapshot(finalized.to_snapshot())
    reopened.restore_state(
        {"phase": before.phase.value, "finalized_by": None, "finalize_reason": None}
    )
    await snapshots.save(reopened)
    with pytest.raises(UntrustedSnapshotError, match="finalized it at version 4"):
        await snapshots.load_verified(TaskAggregate, task_id, await new_log())
    # The same state under another framework issuer or reason is refused too...
    for issuer, reason in [("framework:horizon", "job done"), ("framework:cascade", "other")]:
        relabelled = TaskAggregate.from_snapshot(finalized.to_snapshot())
        relabelled.finalized_by, relabelled.finalize_reason = issuer, reason
        await snapshots.save(relabelled)
        with pytest.raises(UntrustedSnapshotError):
            await snapshots.load_verified(TaskAggregate, task_id, await new_log())
    # ...while the true snapshot is trusted and keeps the task closed.
    await snapshots.save(finalized)
    cold = CommandHandler(await new_log(), InMemoryRejectionLog(), snapshots=snapshots)
    with pytest.raises(CommandRejected, match="ALREADY_FINALIZED"):
        await cold.handle(task_cmd("CompleteTask", task_id))
    assert cold.untrusted_snapshots == 0


async def test_a_good_snapshot_spares_the_replay(backend):
    """A cold handler rebuilds from the snapshot and the events after it; on JetStream it
    downloads only those (plus the snapshot's own last event, to check it)."""
    new_log, snapshots = backend
    task_id = "t" + uuid.uuid4().hex[:8]
    await started_task(await new_log(), snapshots, task_id, progress=27, every_n=10)
    assert await snapshots.load_version("Task", task_id) == 30  # 3 + 27 events, every 10
    CountingJetStreamLog.downloaded = 0
    cold = CommandHandler(await new_log(), InMemoryRejectionLog(), snapshots=snapshots)
    event = await cold.handle(task_cmd("ReportProgress", task_id, tokens_done=99))
    assert event.aggregate_version == 31
    assert cold.cache.get(("Task", task_id)).tokens_done == 99
    assert cold.untrusted_snapshots == 0
    if isinstance(cold.event_log, CountingJetStreamLog):
        assert CountingJetStreamLog.downloaded == 1  # the anchor (version 30) only


@pytest.mark.parametrize(
    "crafted", [{"_apply_table": {}}, {"aggregate_version": 99}, {"last_event_id": "x"}]
)
async def test_snapshot_state_cannot_reach_private_or_framework_attributes(crafted):
    snapshots = SnapshotStore(InMemoryKeyValueStore())
    log = InMemoryEventLog()
    writer = await started_task(log, snapshots, "t1")
    data = writer.cache.get(("Task", "t1")).to_snapshot()
    data["state"].update(crafted)
    with pytest.raises(SnapshotError, match="may not set"):
        TaskAggregate.from_snapshot(data)
