"""An agent's capacity reports between its interval's: changes of slots go out together, at
most one report per CHANGE_GAP_S, and the last change (slots free again) is always reported.
The agent is a separate OS process; the test plays the control plane over raw NATS."""

from __future__ import annotations

import itertools

from heddle.live import protocol as p
from heddle.live.agent.runtime import CHANGE_GAP_S
from heddle.models.ids import NodeStatus

TASKS = 120
"""More echo tasks than slots: slots fill, queue and free again many times over."""


async def test_changes_of_slots_are_reported_together_and_the_freed_slots_always(natsd, control, spawn_agent):
    # an interval longer than any wait here: every report after the first is a change's
    spawn_agent(natsd.url, "mac-c", "--slots", "64", "--report-every", "600")
    first = await control.next("capacity", lambda m: m.node_id == "mac-c")
    batch = p.AssignBatch(**control._header(), node_id="mac-c", assignments=tuple(
        control.assignment("mac-c", f"c-{i}", payload=i) for i in range(TASKS)))
    await control.nc.request(p.subject(p.ASSIGN, node="mac-c"), p.encode(batch), timeout=30)
    for i in range(TASKS):
        assert (await control.finished(f"c-{i}")).result == i
    # the control plane sees the node's slots free again without waiting for the interval
    await control.next("capacity", lambda m: m.node_id == "mac-c" and m.seq > first.seq
                       and m.free_slots == 64 and m.queued == 0 and not m.running)
    changes = [m for m in control.seen["capacity"] if m.node_id == "mac-c"]
    assert len(changes) >= 2
    gaps = [b.sent_at - a.sent_at for a, b in itertools.pairwise(changes)]
    assert min(gaps) >= CHANGE_GAP_S  # 240 starts and ends, coalesced: never two reports within the gap


async def test_a_drain_is_reported_at_once(natsd, control, spawn_agent):
    spawn_agent(natsd.url, "mac-e", "--slots", "2", "--report-every", "600")
    first = await control.next("capacity", lambda m: m.node_id == "mac-e")
    assert (await control.control("mac-e", "drain", deadline_s=30)).ok
    draining = await control.next("capacity", lambda m: m.node_id == "mac-e" and m.status is NodeStatus.DRAINING)
    assert draining.seq > first.seq
    await control.next("left", lambda m: m.node_id == "mac-e")
