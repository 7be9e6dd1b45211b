"""The control plane and the scheduling core agree on which tasks are unfinished: the core
never holds a task the control plane has retired, and every unfinished task the control
plane handed to the core is still in it (waiting, held or running).

The case that broke it: an attempt the control plane had declared lost (its assignment was
not acknowledged in time on a loaded machine, while its node drained) finished after all.
Its late report completed the task, which left the working set while its retry still waited
in the core; the next offer asked for a task nobody knew (KeyError in the watchdog). Now the
reports of an attempt declared lost change nothing while its retry waits: the retry runs.

The control plane runs in this process with its clock in the test's hand, on a real NATS
connection it never needs (nothing is opened), fed through its own report handlers.
"""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from heddle.models import NodeId
from tests.live.planekit import AFTER, NODES, TASKS, plane_driver


async def test_a_lost_attempt_that_finishes_while_its_retry_waits_leaves_the_retry_to_run(natsd):
    """The reported bug, step by step: lost while its node drains and the other is busy,
    then its report."""
    driver, nc = await plane_driver(natsd.url)
    try:
        plane = driver.plane
        for i in (0, 1, 3):  # t0 and t1 run, one per node; t3 waits for t0
            driver.submit(i)
        t0_node = driver.sent[("job-t0", 1)]
        assert {driver.sent[("job-t1", 1)], t0_node} == set(NODES)
        plane.drain(t0_node, None)
        driver.not_acknowledged("job-t0")  # the loaded agent acked too late: attempt 1 is lost...
        assert plane.core.waiting_keys() == ["job-t0"]  # ...and t0 waits for a free slot
        driver.started("job-t0", 1)
        driver.finished("job-t0", 1, "ok")  # attempt 1 ran after all: its reports come in
        assert driver.status("job-t0") == "submitted"  # the retry will run; the log says so
        driver.check_books()
        driver.advance(plane.core.next_tick_s() - plane.now())  # the watchdog's re-offer
        driver.check_books()
        driver.finished("job-t1", 1, "ok")  # a slot frees: the retry runs there
        assert driver.sent[("job-t0", 2)] != t0_node
        driver.finished("job-t0", 2, "ok")  # and t3 after it
        driver.finished("job-t3", 1, "ok")
        assert [driver.status(f"job-t{i}") for i in (0, 1, 3)] == ["completed"] * 3
        driver.check_books()
    finally:
        await nc.close()


OPS = st.one_of(
    st.tuples(st.just("submit"), st.integers(0, TASKS - 1)),
    st.tuples(st.just("unacked"), st.integers(0, TASKS - 1)),
    st.tuples(st.just("finished"), st.integers(0, TASKS - 1), st.integers(0, 2),
              st.sampled_from(["ok", "failed", "cancelled"])),
    st.tuples(st.just("started"), st.integers(0, TASKS - 1), st.integers(0, 2)),
    st.tuples(st.just("cancel"), st.integers(0, TASKS - 1)),
    st.tuples(st.just("drain"), st.sampled_from(NODES)),
    st.tuples(st.just("silent"), st.sampled_from(NODES)),
    st.tuples(st.just("join"), st.sampled_from(NODES)),
    st.tuples(st.just("tick"), st.just(0)),
)


async def _replay(url: str, ops: list[tuple]) -> None:
    driver, nc = await plane_driver(url)
    plane = driver.plane
    try:
        for op, arg, *rest in ops:
            key = f"job-t{arg}" if isinstance(arg, int) else ""
            if op == "submit" and plane.state_of(key) is None \
                    and (arg not in AFTER or plane.state_of(f"job-t{AFTER[arg]}") is not None):
                driver.submit(arg)
            elif op == "unacked":
                driver.not_acknowledged(key)
            elif op == "finished" and (live := plane.tasks.get(key)) is not None:
                attempt = live.attempt - rest[0]  # the current attempt or an older one
                if (key, attempt) in driver.sent:
                    driver.finished(key, attempt, rest[1])
            elif op == "started" and (live := plane.tasks.get(key)) is not None \
                    and (key, live.attempt - rest[0]) in driver.sent:
                driver.started(key, live.attempt - rest[0])
            elif op == "cancel" and key in plane.tasks:
                plane.cancel(key, "user")
            elif op == "drain":
                plane.drain(arg, None)
            elif op == "silent" and not plane.fleet.nodes[NodeId(arg)].lost:
                plane.node_gone(NodeId(arg), "missed 3 reports", left=False)
            elif op == "join":
                await driver.join(arg)
            elif op == "tick" and (due := plane.core.next_tick_s()) is not None:
                driver.advance(max(due - plane.now(), 0.0))
            driver.note_sent()
            driver.check_books()
    finally:
        await nc.close()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(OPS, max_size=30))
@example(ops=[("submit", 0), ("submit", 1), ("silent", "a"), ("finished", 0, 0, "ok")])  # the bug
@example(ops=[("submit", 0), ("submit", 1), ("silent", "a"), ("started", 0, 0)])  # its twin
def test_the_core_and_the_control_plane_agree_on_unfinished_work(natsd, ops):
    asyncio.run(_replay(natsd.url, ops))
