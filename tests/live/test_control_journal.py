"""The control plane's journal: an event counts as durable as soon as it is in the log, not
when the rest of its batch is (a submission waits for its own events only)."""

from __future__ import annotations

import asyncio

from heddle.events import EventEnvelope, InMemoryEventLog
from heddle.live.control.journal import Journal

WAIT_S = 10.0
"""Bound on waiting for a condition (a failure, not a timing)."""


class GatedLog(InMemoryEventLog):
    """An in-memory log whose appends of one aggregate wait until the gate opens (an ack
    that has not come yet)."""

    def __init__(self, gated: str) -> None:
        super().__init__()
        self.gated = gated
        self.gate = asyncio.Event()

    async def append(self, envelope: EventEnvelope, expected_version: int | None) -> None:
        if envelope.aggregate_id == self.gated:
            await self.gate.wait()
        await super().append(envelope, expected_version)


def submit(journal: Journal, task_id: str) -> EventEnvelope:
    payload = {"job_id": "j", "model": "", "owner": "", "privacy": "public"}
    return journal.record(journal.task(task_id), "SubmitTask", payload, "user:system:cli:test")


async def test_an_event_is_durable_before_the_rest_of_its_batch_is():
    log = GatedLog(gated="j-slow")
    journal = Journal(log)
    fast = submit(journal, "j-fast")
    slow = [submit(journal, "j-slow"),
            journal.record(journal.task("j-slow"), "PlaceTask", {"target": "n1"}, "framework:scheduler")]
    journal.start()  # both aggregates' events leave in one batch
    try:
        await asyncio.wait_for(journal.durable([fast]), WAIT_S)
        assert not journal.durable(slow).done()  # the batch itself has not finished
        log.gate.set()
        await asyncio.wait_for(journal.durable(slow), WAIT_S)
        assert [e.event_type async for e in log.load("Task", "j-slow")] == ["TaskSubmitted", "TaskPlaced"]
        assert journal.stats.appended == 3  # each event counted once
    finally:
        log.gate.set()
        await journal.stop()


async def test_a_task_s_next_event_need_not_wait_for_the_batch_its_last_one_left_in():
    log = GatedLog(gated="j-slow")
    journal = Journal(log)
    first = submit(journal, "j-fast")
    submit(journal, "j-slow")
    journal.start()
    try:
        await asyncio.wait_for(journal.durable([first]), WAIT_S)
        placed = journal.record(journal.task("j-fast"), "PlaceTask", {"target": "n1"}, "framework:scheduler")
        await asyncio.wait_for(journal.durable([placed]), WAIT_S)  # while j-slow's batch still waits
        assert [e.event_type async for e in log.load("Task", "j-fast")] == ["TaskSubmitted", "TaskPlaced"]
    finally:
        log.gate.set()
        await journal.stop()


async def test_held_appends_wait_and_a_hold_is_bounded(monkeypatch):
    """A gateway submission holds the log's appends (Journal.hold): while holds keep coming
    nothing leaves; after HOLD_MOST_S of them the events go out anyway, in order."""
    from heddle.live.control import journal as journal_module

    log = InMemoryEventLog()
    journal = Journal(log)
    journal.start()
    try:
        monkeypatch.setattr(journal_module, "HOLD_QUIET_S", 3600.0)
        monkeypatch.setattr(journal_module, "HOLD_MOST_S", 3600.0)
        held = submit(journal, "j-held")
        journal.hold()
        for _ in range(20):  # turns of the loop: an unheld journal appends within two
            await asyncio.sleep(0)
        assert not journal.durable([held]).done()
        assert [e async for e in log.load("Task", "j-held")] == []
    finally:
        await journal.stop(flush_timeout_s=0)

    journal = Journal(log)
    journal.start()
    try:
        monkeypatch.setattr(journal_module, "HOLD_MOST_S", 0.05)
        events = [submit(journal, "j-bounded"),
                  journal.record(journal.task("j-bounded"), "PlaceTask", {"target": "n1"}, "framework:scheduler")]
        durable = journal.durable(events)
        async with asyncio.timeout(WAIT_S):
            while not durable.done():  # submissions keep coming: the hold is renewed
                journal.hold()
                await asyncio.sleep(0.01)
        assert [e.event_type async for e in log.load("Task", "j-bounded")] == ["TaskSubmitted", "TaskPlaced"]
    finally:
        await journal.stop()
