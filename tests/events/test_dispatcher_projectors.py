"""EventDispatcher fan-out and the framework projectors P1, P2, P3; finalization leases."""

from __future__ import annotations

import logging
from typing import ClassVar

import pytest

from heddle.events import sli
from heddle.events.aggregate import Phase
from heddle.events.dispatcher import EventDispatcher, Projector
from heddle.events.horizon import FinalizationHorizonProjector
from heddle.events.kv import InMemoryKeyValueStore
from heddle.events.lease import finalization_lease, lease_key
from heddle.events.projectors import cascade_command_id
from heddle.events.registry import register_aggregate
from heddle.events.testing import FakeIntervalAggregate, make_command, wait_until

pytestmark = pytest.mark.usefixtures("fake_types")

FAST_HORIZON_S = 0.05
"""A horizon short enough for a test; real aggregates default to 24 h."""


class Recording(Projector):
    def __init__(self, name, journal, fail=False) -> None:
        self.name = name
        self._journal = journal
        self._fail = fail

    async def project(self, envelope):
        self._journal.append((self.name, envelope.aggregate_version))
        if self._fail:
            raise RuntimeError(f"{self.name} is broken")


async def test_start_is_ready_on_return_and_fans_out_in_order_past_failures(
    in_memory_event_log, command_handler, caplog, recorder
):
    journal: list = []
    dispatcher = EventDispatcher(in_memory_event_log)
    for projector in (
        Recording("p1", journal),
        Recording("p2", journal, fail=True),
        Recording("p3", journal),
    ):
        dispatcher.register(projector)
    await dispatcher.start("FakeInterval")
    try:
        with caplog.at_level(logging.ERROR):
            await command_handler.handle(make_command("Record"))  # appended right after start
            await command_handler.handle(make_command("Record"))
            await wait_until(lambda: dispatcher.dispatched == 2)
        assert journal == [("p1", 1), ("p2", 1), ("p3", 1), ("p1", 2), ("p2", 2), ("p3", 2)]
        assert "projector p2 failed" in caplog.text
        fan_out = recorder.named(sli.DISPATCHER_FAN_OUT_DURATION)
        assert [o.labels for o in fan_out] == [{"aggregate_type": "FakeInterval"}] * 2
    finally:
        await dispatcher.stop()


async def add_children(handler, root_id, children):
    await handler.handle(make_command("Record", aggregate_type="FakeRoot", aggregate_id=root_id))
    for child in children:
        await handler.handle(make_command("Record", aggregate_id=child))
        await handler.handle(
            make_command(
                "AddChild",
                aggregate_type="FakeRoot",
                aggregate_id=root_id,
                payload={"child_type": "FakeInterval", "child_id": child},
            )
        )


async def test_p1_tracks_membership_of_roots_only(
    wired_dispatcher, membership_projector, command_handler
):
    await wired_dispatcher.start("FakeRoot")
    await add_children(command_handler, "r1", ["c1", "c2"])
    await wait_until(lambda: wired_dispatcher.dispatched == 3)
    assert membership_projector.children("FakeRoot", "r1") == {"FakeInterval": {"c1", "c2"}}
    assert membership_projector.children("FakeRoot", "other") == {}


async def test_p2_cascades_root_finalization_with_deterministic_ids(
    wired_dispatcher, command_handler, in_memory_event_log
):
    await wired_dispatcher.start("FakeRoot")
    await wired_dispatcher.start("FakeInterval")
    await add_children(command_handler, "r1", ["c1", "c2"])
    await command_handler.handle(
        make_command(
            "InternalFinalize",
            command_id="close-r1",
            aggregate_type="FakeRoot",
            aggregate_id="r1",
            issued_by="framework:test",
        )
    )
    root_final = in_memory_event_log.events("FakeRoot", "r1")[-1]

    def finalized(child):
        events = in_memory_event_log.events("FakeInterval", child)
        return events and events[-1].event_type == "InternalFinalized"

    await wait_until(lambda: finalized("c1") and finalized("c2"))
    for child in ("c1", "c2"):
        last = in_memory_event_log.events("FakeInterval", child)[-1]
        assert last.metadata.issued_by == "framework:cascade"
        assert last.metadata.command_id == cascade_command_id("r1", child, root_final.event_id)
        assert command_handler.cache.get(("FakeInterval", child)).phase is Phase.FINALIZED

    # Re-delivery of the same root event: same command ids, so nothing new is written.
    before = {c: len(in_memory_event_log.events("FakeInterval", c)) for c in ("c1", "c2")}
    await wired_dispatcher.dispatch(root_final)
    assert {c: len(in_memory_event_log.events("FakeInterval", c)) for c in ("c1", "c2")} == before


async def test_p2_swallows_rejections_of_already_finalized_children(
    wired_dispatcher, command_handler, in_memory_rejection_log, caplog
):
    await wired_dispatcher.start("FakeRoot")
    await add_children(command_handler, "r1", ["c1"])
    await command_handler.handle(
        make_command("InternalFinalize", aggregate_id="c1", issued_by="framework:test")
    )
    await command_handler.handle(
        make_command(
            "InternalFinalize",
            aggregate_type="FakeRoot",
            aggregate_id="r1",
            issued_by="framework:test",
        )
    )
    await wait_until(lambda: wired_dispatcher.dispatched == 3)  # root: Record, AddChild, final
    [rejection] = in_memory_rejection_log.rejections
    assert (rejection.reason, rejection.metadata.issued_by) == (
        "ALREADY_FINALIZED",
        "framework:cascade",
    )
    assert "failed" not in caplog.text  # swallowed by P2, not logged as a projector failure


# -- P3 --------------------------------------------------------------------------------------


class QuickAggregate(FakeIntervalAggregate):
    HORIZON_TIMEOUT_SECONDS: ClassVar[float] = FAST_HORIZON_S


class SlowAggregate(FakeIntervalAggregate):
    HORIZON_TIMEOUT_SECONDS: ClassVar[float] = 3600.0


@pytest.fixture
def horizon_types():
    register_aggregate("Quick")(QuickAggregate)
    register_aggregate("Slow")(SlowAggregate)


async def horizon_setup(log, handler, kv=None):
    horizon = FinalizationHorizonProjector(handler, kv=kv)
    dispatcher = EventDispatcher(log)
    dispatcher.register(horizon)
    for kind in ("Quick", "Slow", "FakeRoot"):
        await dispatcher.start(kind)
    return horizon, dispatcher


@pytest.mark.usefixtures("horizon_types")
async def test_p3_finalizes_a_quiet_aggregate_after_its_horizon(
    in_memory_event_log, command_handler
):
    horizon, dispatcher = await horizon_setup(in_memory_event_log, command_handler)
    try:
        await command_handler.handle(make_command("Record", aggregate_type="Quick"))
        await wait_until(lambda: ("Quick", "agg-1") in horizon.finalized)
        last = in_memory_event_log.events("Quick", "agg-1")[-1]
        assert (last.event_type, last.metadata.issued_by) == (
            "InternalFinalized",
            "framework:horizon",
        )
        await wait_until(lambda: dispatcher.dispatched == 2)
        assert horizon.armed == frozenset()  # its own InternalFinalized disarmed nothing else
    finally:
        await dispatcher.stop()


@pytest.mark.usefixtures("horizon_types")
async def test_p3_arms_on_any_event_cancels_on_finalized_and_shutdown(
    in_memory_event_log, command_handler
):
    horizon, dispatcher = await horizon_setup(in_memory_event_log, command_handler)
    await command_handler.handle(make_command("Record", aggregate_type="Slow", aggregate_id="s1"))
    await command_handler.handle(make_command("Record", aggregate_type="Slow", aggregate_id="s2"))
    await command_handler.handle(make_command("Record", aggregate_type="FakeRoot"))
    await wait_until(lambda: dispatcher.dispatched == 3)
    assert horizon.armed == {("Slow", "s1"), ("Slow", "s2"), ("FakeRoot", "agg-1")}
    await command_handler.handle(
        make_command(
            "InternalFinalize", aggregate_type="Slow", aggregate_id="s1", issued_by="framework:test"
        )
    )
    await wait_until(lambda: dispatcher.dispatched == 4)
    assert horizon.armed == {("Slow", "s2"), ("FakeRoot", "agg-1")}
    await dispatcher.stop()
    assert horizon.armed == frozenset()
    assert horizon.finalized == []


@pytest.mark.usefixtures("horizon_types")
async def test_p3_skips_when_another_projector_holds_the_lease(
    in_memory_event_log, command_handler, recorder
):
    kv = InMemoryKeyValueStore()
    async with finalization_lease(kv, "Quick", "agg-1", projector_name="cascade") as claimed:
        assert claimed
    horizon, dispatcher = await horizon_setup(in_memory_event_log, command_handler, kv=kv)
    try:
        await command_handler.handle(make_command("Record", aggregate_type="Quick"))
        await wait_until(lambda: len(recorder.named(sli.LEASE_ACQUISITION_DURATION)) == 2)
        outcomes = [o.labels for o in recorder.named(sli.LEASE_ACQUISITION_DURATION)]
        assert outcomes == [
            {"aggregate_type": "Quick", "projector_name": "cascade", "outcome": "claimed"},
            {"aggregate_type": "Quick", "projector_name": "horizon", "outcome": "preempted"},
        ]
        assert horizon.finalized == []
        assert [e.event_type for e in in_memory_event_log.events("Quick", "agg-1")] == ["Recorded"]
    finally:
        await dispatcher.stop()


# -- lease -----------------------------------------------------------------------------------


async def test_lease_is_never_released_early_and_expires_after_its_ttl():
    now = [0.0]
    kv = InMemoryKeyValueStore(clock=lambda: now[0])
    async with finalization_lease(kv, "Task", "t1", projector_name="cascade", ttl_s=30) as first:
        assert first
    assert await kv.get(lease_key("Task", "t1")) is not None  # still held after the block
    async with finalization_lease(kv, "Task", "t1", projector_name="horizon", ttl_s=30) as second:
        assert not second
    now[0] += 30
    async with finalization_lease(kv, "Task", "t1", projector_name="horizon", ttl_s=30) as third:
        assert third
