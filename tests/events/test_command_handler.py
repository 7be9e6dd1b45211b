"""CommandHandler: the nine steps, caching, snapshots, dedup, SLIs."""

from __future__ import annotations

import pytest

from heddle.events import sli
from heddle.events.cache import AggregateCache
from heddle.events.command_handler import CommandHandler
from heddle.events.dedup import InMemoryDedupBus
from heddle.events.errors import (
    AggregateInvariantError,
    CommandRejected,
    ConcurrencyError,
    SnapshotError,
)
from heddle.events.event_log import InMemoryEventLog
from heddle.events.kv import InMemoryKeyValueStore
from heddle.events.snapshot import SnapshotStore, snapshot_key, snapshot_version_key
from heddle.events.testing import make_command

pytestmark = pytest.mark.usefixtures("fake_types")


def record(value, **kwargs):
    return make_command("Record", payload={"value": value}, **kwargs)


async def test_handle_appends_applies_and_propagates_metadata(command_handler, in_memory_event_log):
    cmd = record(1, issued_by="user:badge:206", correlation_id="flow-9")
    event = await command_handler.handle(cmd)
    assert (event.event_type, event.aggregate_version, event.payload) == (
        "Recorded",
        1,
        {"value": 1},
    )
    assert event.metadata.command_id == cmd.command_id
    assert event.metadata.correlation_id == "flow-9"
    assert event.metadata.issued_by == "user:badge:206"
    assert in_memory_event_log.events("FakeInterval", "agg-1") == [event]
    cached = command_handler.cache.get(("FakeInterval", "agg-1"))
    assert cached.values == [1] and cached.has_processed(cmd.command_id)


async def test_rejection_is_recorded_and_reraised(
    command_handler, in_memory_rejection_log, in_memory_event_log
):
    cmd = make_command("Refuse", payload={"reason": "NOT_TODAY"})
    with pytest.raises(CommandRejected, match="NOT_TODAY"):
        await command_handler.handle(cmd)
    [rejection] = in_memory_rejection_log.rejections
    assert (rejection.command_id, rejection.reason, rejection.aggregate_version) == (
        cmd.command_id,
        "NOT_TODAY",
        0,
    )
    assert in_memory_event_log.events("FakeInterval", "agg-1") == []


async def test_stale_expected_version_is_a_concurrency_error(command_handler, in_memory_event_log):
    await command_handler.handle(record(1))
    with pytest.raises(ConcurrencyError, match="expected 0"):
        await command_handler.handle(record(2, expected_aggregate_version=0))
    await command_handler.handle(record(2, expected_aggregate_version=1))
    assert len(in_memory_event_log.events("FakeInterval", "agg-1")) == 2


async def test_unknown_command_and_type(command_handler):
    with pytest.raises(AttributeError, match="handle_teleport"):
        await command_handler.handle(make_command("Teleport"))
    with pytest.raises(KeyError, match="Nope"):
        await command_handler.handle(make_command("Record", aggregate_type="Nope"))


async def test_failing_apply_evicts_the_aggregate(command_handler, in_memory_event_log):
    await command_handler.handle(record(1))
    with pytest.raises(AggregateInvariantError):
        await command_handler.handle(make_command("Explode"))
    assert ("FakeInterval", "agg-1") not in command_handler.cache
    # The event is in the log, so every rebuild now fails loudly rather than silently.
    with pytest.raises(AggregateInvariantError):
        await command_handler.handle(record(2))


async def test_stale_cached_aggregate_loses_then_retry_succeeds(
    in_memory_event_log, in_memory_rejection_log
):
    a = CommandHandler(in_memory_event_log, in_memory_rejection_log)
    b = CommandHandler(in_memory_event_log, in_memory_rejection_log)
    await a.handle(record("a1"))
    await b.handle(record("b1"))  # b loads version 1, appends 2; a's cache is now stale
    with pytest.raises(ConcurrencyError):
        await a.handle(record("a2"))
    await a.handle(record("a2"))  # reloaded after the lost CAS
    assert [e.payload["value"] for e in in_memory_event_log.events("FakeInterval", "agg-1")] == [
        "a1",
        "b1",
        "a2",
    ]


# -- the three paired dedup tests (seed, "Sprint 2 -> Sprint 3 behavior boundary") ----------


async def test_dedup_was_per_call_in_sprint_2(in_memory_event_log, in_memory_rejection_log):
    """Sprint 2 pinned: no cache, no snapshot -> a retried command is handled twice."""
    handler = CommandHandler(
        in_memory_event_log, in_memory_rejection_log, cache=AggregateCache(max_size=0)
    )
    cmd = record("once")
    first = await handler.handle(cmd)
    second = await handler.handle(cmd)
    assert first.event_id != second.event_id
    assert [e.metadata.command_id for e in in_memory_event_log.events("FakeInterval", "agg-1")] == [
        cmd.command_id,
        cmd.command_id,
    ]


async def test_dedup_works_within_call_via_cache(command_handler, in_memory_event_log):
    """Sprint 3: the default cache keeps the ring, so a retry returns the original event."""
    cmd = record("once")
    first = await command_handler.handle(cmd)
    await command_handler.handle(record("other"))
    again = await command_handler.handle(cmd)
    assert again == first
    assert len(in_memory_event_log.events("FakeInterval", "agg-1")) == 2


async def test_dedup_works_cross_call_with_snapshot(in_memory_event_log, in_memory_rejection_log):
    """Sprint 3: a new handler (another process) restores the ring from the snapshot."""
    snapshots = SnapshotStore(InMemoryKeyValueStore())
    writer = CommandHandler(
        in_memory_event_log, in_memory_rejection_log, snapshots=snapshots, snapshot_every_n=1
    )
    cmd = record("once")
    first = await writer.handle(cmd)
    fresh = CommandHandler(in_memory_event_log, in_memory_rejection_log, snapshots=snapshots)
    assert await fresh.handle(cmd) == first
    assert len(in_memory_event_log.events("FakeInterval", "agg-1")) == 1
    # Without the snapshot the same fresh start would have handled it again:
    no_snapshot = CommandHandler(in_memory_event_log, in_memory_rejection_log)
    assert (await no_snapshot.handle(cmd)).aggregate_version == 2


async def test_dedup_bus_marks_other_handlers_cached_aggregates(
    in_memory_event_log, in_memory_rejection_log
):
    bus = InMemoryDedupBus()
    a = CommandHandler(
        in_memory_event_log,
        in_memory_rejection_log,
        dedup_publisher=bus.publisher(),
        dedup_subscriber=bus.subscriber(),
    )
    b = CommandHandler(
        in_memory_event_log,
        in_memory_rejection_log,
        dedup_publisher=bus.publisher(),
        dedup_subscriber=bus.subscriber(),
    )
    await b.handle(record("warm b's cache"))
    cmd = record("retried")
    await a.handle(record("warm a's cache"))
    original = await a.handle(cmd)
    # b's cached copy is stale (version 1) but was told about cmd: the retry is idempotent.
    assert b.cache.get(("FakeInterval", "agg-1")).has_processed(cmd.command_id)
    assert await b.handle(cmd) == original
    assert len(in_memory_event_log.events("FakeInterval", "agg-1")) == 3
    # b learned its copy was behind: its next command reloads instead of losing the CAS.
    assert (await b.handle(record("next"))).aggregate_version == 4


# -- cache, snapshots ------------------------------------------------------------------------


async def test_eviction_unsubscribes_from_the_dedup_bus(
    in_memory_event_log, in_memory_rejection_log
):
    bus = InMemoryDedupBus()
    subscriber = bus.subscriber()
    handler = CommandHandler(
        in_memory_event_log,
        in_memory_rejection_log,
        cache=AggregateCache(max_size=1),
        dedup_subscriber=subscriber,
    )
    await handler.handle(record(1, aggregate_id="first"))
    assert set(subscriber.callbacks) == {("FakeInterval", "first")}
    await handler.handle(record(2, aggregate_id="second"))
    assert set(subscriber.callbacks) == {("FakeInterval", "second")}


class CountingLog(InMemoryEventLog):
    """Counts the events handed out by load() and load_after() (what a rebuild replays)."""

    def __init__(self) -> None:
        super().__init__()
        self.replayed = 0

    async def load(self, aggregate_type, aggregate_id, from_version=0):
        async for envelope in super().load(aggregate_type, aggregate_id, from_version):
            self.replayed += 1
            yield envelope

    async def load_after(self, aggregate_type, aggregate_id, anchor):
        newer = await super().load_after(aggregate_type, aggregate_id, anchor)
        self.replayed += len(newer or [])
        return newer


def snapshotting(log, rejections, kv, every_n, *, writable=True):
    store = SnapshotStore(kv, writable=writable)
    return CommandHandler(log, rejections, snapshots=store, snapshot_every_n=every_n)


async def test_snapshot_every_n_and_rebuild_replays_only_newer_events(in_memory_rejection_log):
    log, kv = CountingLog(), InMemoryKeyValueStore()
    writer = snapshotting(log, in_memory_rejection_log, kv, 4)
    for value in range(10):
        await writer.handle(record(value))
    snapshots = SnapshotStore(kv)
    assert await snapshots.load_version("FakeInterval", "agg-1") == 8
    # One source of truth: the blob carries the version; no separate key is written.
    assert await kv.get(snapshot_version_key("FakeInterval", "agg-1")) is None
    assert await kv.get(snapshot_key("FakeInterval", "agg-1")) is not None
    log.replayed = 0
    reader = CommandHandler(log, in_memory_rejection_log, snapshots=snapshots)
    await reader.handle(record(10))
    assert log.replayed == 2  # versions 9 and 10 only
    assert reader.cache.get(("FakeInterval", "agg-1")).values == list(range(11))
    assert reader.untrusted_snapshots == 0


async def test_snapshots_come_every_n_events_on_the_cached_aggregate(in_memory_rejection_log):
    """The seed's rule: N events applied by the cached instance, not "version % N == 0"
    (which a process that resumed at another version might never hit)."""
    log, kv = InMemoryEventLog(), InMemoryKeyValueStore()
    writer = snapshotting(log, in_memory_rejection_log, kv, 4)
    for value in range(10):
        await writer.handle(record(value))  # snapshots at 4 and 8
    resumed = snapshotting(log, in_memory_rejection_log, kv, 3)
    await resumed.handle(record(10))  # v11: rebuilt from v8 plus 2 events, then 1 more
    assert await SnapshotStore(kv).load_version("FakeInterval", "agg-1") == 11
    for value in range(11, 14):
        await resumed.handle(record(value))
    assert await SnapshotStore(kv).load_version("FakeInterval", "agg-1") == 14


class FailingPuts(InMemoryKeyValueStore):
    async def put(self, key, value):
        raise OSError("disk full")


async def test_a_failed_snapshot_does_not_fail_the_command(in_memory_rejection_log, caplog):
    log = InMemoryEventLog()
    handler = snapshotting(log, in_memory_rejection_log, FailingPuts(), 1)
    event = await handler.handle(record(1))
    assert log.events("FakeInterval", "agg-1") == [event]
    assert "could not snapshot FakeInterval/agg-1 at version 1" in caplog.text
    await handler.handle(record(2))  # and the handler goes on working
    assert len(log.events("FakeInterval", "agg-1")) == 2


async def test_a_read_only_snapshot_store_is_read_but_never_written(in_memory_rejection_log):
    log, kv = InMemoryEventLog(), InMemoryKeyValueStore()
    writer = snapshotting(log, in_memory_rejection_log, kv, 2)
    for value in range(2):
        await writer.handle(record(value))
    reader_log = CountingLog()
    for envelope in log.events("FakeInterval", "agg-1"):
        await reader_log.append(envelope, envelope.aggregate_version - 1)
    reader = snapshotting(reader_log, in_memory_rejection_log, kv, 1, writable=False)
    for value in range(2, 5):
        await reader.handle(record(value))
    assert reader_log.replayed == 0  # rebuilt from the snapshot at version 2
    assert await SnapshotStore(kv).load_version("FakeInterval", "agg-1") == 2  # not rewritten
    with pytest.raises(SnapshotError, match="read-only"):
        await SnapshotStore(kv, writable=False).save(reader.cache.get(("FakeInterval", "agg-1")))


async def test_internal_finalize_needs_a_framework_issuer(command_handler, in_memory_rejection_log):
    await command_handler.handle(record(1))
    with pytest.raises(CommandRejected, match="FORBIDDEN_ISSUER"):
        await command_handler.handle(make_command("InternalFinalize", issued_by="user:badge:1"))
    await command_handler.handle(make_command("InternalFinalize", issued_by="framework:test"))
    with pytest.raises(CommandRejected, match="ALREADY_FINALIZED"):
        await command_handler.handle(make_command("InternalFinalize", issued_by="framework:test"))
    with pytest.raises(CommandRejected, match="ALREADY_FINALIZED"):
        await command_handler.handle(record(2))
    assert [r.reason for r in in_memory_rejection_log.rejections] == [
        "FORBIDDEN_ISSUER",
        "ALREADY_FINALIZED",
        "ALREADY_FINALIZED",
    ]


async def test_command_handle_duration_is_observed_with_outcome(command_handler, recorder):
    await command_handler.handle(record(1))
    with pytest.raises(CommandRejected):
        await command_handler.handle(make_command("Refuse"))
    with pytest.raises(ConcurrencyError):
        await command_handler.handle(record(2, expected_aggregate_version=9))
    with pytest.raises(AttributeError):
        await command_handler.handle(make_command("Teleport"))
    observed = recorder.named(sli.COMMAND_HANDLE_DURATION)
    assert [o.labels["outcome"] for o in observed] == [
        "success",
        "rejected",
        "concurrency_error",
        "error",
    ]
    assert observed[0].labels == {
        "aggregate_type": "FakeInterval",
        "command_type": "Record",
        "outcome": "success",
    }
    assert all(o.value_s >= 0 for o in observed)
