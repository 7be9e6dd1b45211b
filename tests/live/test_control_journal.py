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
