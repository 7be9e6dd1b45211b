"""A task cancelled (or an attempt declared lost) while its assignment still waits in the
control plane's outbox: the assignment is taken back, not sent after the cancel.

Sent, it would reach the agent after the cancel (the dispatcher sends it a turn later, and
the agent reads assignments and cancels on different subscriptions, in no order between
them): the agent, knowing no such attempt, ignored the cancel and then ran the attempt in a
slot the control plane counted free (seen as a gateway request never reaching its owner's
node after a cancelled one, tests/gateway). The agent's side: tests/live/test_agent.py.
"""

from __future__ import annotations

from heddle.models import NodeId
from tests.live.planekit import plane_driver


def submitted_unsent(driver) -> list[tuple[str, str, dict]]:
    """Submit task 0 while the dispatcher has not run yet (its assignment waits in the
    outbox); returns the control messages the plane sends from then on (a list it fills)."""
    controls: list[tuple[str, str, dict]] = []
    driver.plane.send_control = lambda node, action, **fields: controls.append((node, action, fields))
    keep = driver.note_sent
    driver.note_sent = lambda: None
    driver.submit(0)
    driver.note_sent = keep
    return controls


async def test_a_cancel_takes_back_an_unsent_assignment_and_sends_none(natsd):
    driver, nc = await plane_driver(natsd.url)
    try:
        plane = driver.plane
        controls = submitted_unsent(driver)
        [unsent] = plane._outbox
        assert unsent.task.id == "job-t0"
        assert plane.cancel("job-t0", "user") is None
        assert plane._outbox == [] and controls == []  # nothing to send, nothing to cancel
        assert driver.status("job-t0") == "cancelled"
        assert plane.fleet.state.nodes[NodeId(unsent.node_id)].free_slots == 1  # its slot is free
        driver.check_books()

        driver.submit(1)  # sent (the dispatcher ran): a cancel must reach its agent
        node = driver.sent[("job-t1", 1)]
        assert plane.cancel("job-t1", "user") is None
        assert controls == [(node, "cancel", {"task_id": "job-t1", "attempt": 1, "reason": "cancelled by user"})]
        driver.check_books()
    finally:
        await nc.close()


async def test_an_attempt_lost_before_its_assignment_left_is_not_sent_and_runs_again(natsd):
    driver, nc = await plane_driver(natsd.url)
    try:
        plane = driver.plane
        controls = submitted_unsent(driver)
        plane.attempt_lost("job-t0", 1, "the test says so")
        assert controls == []
        assert [(a.task.id, a.attempt) for a in plane._outbox] in ([], [("job-t0", 2)])  # the retry only
        driver.note_sent()
        if ("job-t0", 2) not in driver.sent:  # it waits for the core's next offer
            driver.advance(plane.core.next_tick_s() - plane.now())
        assert ("job-t0", 1) not in driver.sent and ("job-t0", 2) in driver.sent
        driver.check_books()
    finally:
        await nc.close()
