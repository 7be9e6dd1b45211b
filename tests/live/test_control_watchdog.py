"""The control plane's watchdog counts a node's silence only while the control plane was
listening: when its own loop was held (a loaded machine, a long step), the reports that came
meanwhile may be unread, so the node is not declared lost for it; a real silence still is."""

from __future__ import annotations

from heddle.live import protocol as wire
from heddle.live.control.settings import ControlSettings
from heddle.models import NodeId
from tests.live.planekit import NEVER_S, NODES, msg, plane_driver

REPORT_S = 0.2
WATCH_S = 0.1


async def test_a_node_is_lost_only_for_silence_the_control_plane_listened_to(natsd):
    settings = ControlSettings(policy="optimal", report_interval_s=REPORT_S, task_timeout_s=NEVER_S)
    driver, nc = await plane_driver(natsd.url, settings)
    plane = driver.plane
    try:
        silence_s = settings.silence_s

        def lost() -> set[str]:
            return {n for n in NODES if plane.fleet.nodes[NodeId(n)].lost}

        driver.advance(5 * silence_s)  # the loop held this long: no report was read meanwhile
        assert lost() == set()
        for _ in range(int(silence_s / WATCH_S) + 2):  # the watchdog on time from now on:
            await driver.join("a")  # a reports, b stays silent
            driver.advance(WATCH_S)
        assert lost() == {"b"}
    finally:
        await nc.close()


async def test_a_node_that_leaves_keeps_what_it_finished_and_loses_what_it_cut(natsd):
    """A drained agent says goodbye once its reports are in the stream; the goodbye may
    arrive first. Its finished work completes there, its cut work is re-placed at once, and
    work it never reported is re-placed after a loss window."""
    settings = ControlSettings(policy="optimal", report_interval_s=REPORT_S, task_timeout_s=NEVER_S)
    driver, nc = await plane_driver(natsd.url, settings)
    plane = driver.plane
    try:
        for i in range(3):  # t0 on one node, t1 on the other, t2 waits
            driver.submit(i)
        node = driver.sent[("job-t0", 1)]
        plane.drain(node, None)
        left = wire.Left(sender="agent", seq=99, sent_at=plane.now(), node_id=node, reason="drained")
        await driver.reports.on_left(msg(left, wire.subject(wire.LEFT, node=node)))
        assert plane.core.running_keys() == ["job-t0", "job-t1"]  # t0's report is on its way...
        driver.finished("job-t0", 1, "ok")  # ...and here it is: t0 completed on the node that left
        assert driver.status("job-t0") == "completed" and plane.window.get("job-t0").node == node
        driver.check_books()
    finally:
        await nc.close()


async def test_a_node_that_leaves_loses_what_it_cut_at_once_and_what_it_never_reported_later(natsd):
    settings = ControlSettings(policy="optimal", report_interval_s=REPORT_S, task_timeout_s=NEVER_S)
    driver, nc = await plane_driver(natsd.url, settings)
    plane = driver.plane
    try:
        for i in range(2):
            driver.submit(i)
        on = {driver.sent[(f"job-t{i}", 1)]: f"job-t{i}" for i in range(2)}
        cut, unreported = on["a"], on["b"]

        async def leave(node: str, abandoned: tuple) -> None:
            left = wire.Left(sender="agent", seq=99, sent_at=plane.now(), node_id=node, reason="drained",
                             abandoned=tuple(wire.TaskRef(task_id=t, attempt=1) for t in abandoned))
            await driver.reports.on_left(msg(left, wire.subject(wire.LEFT, node=node)))

        await leave("a", (cut,))
        assert plane.core.running_keys() == [unreported]  # the cut attempt is lost at once
        await leave("b", ())
        assert plane.core.running_keys() == [unreported]  # its report may be on its way...
        for _ in range(int(settings.silence_s / WATCH_S) + 2):
            driver.advance(WATCH_S)
        assert plane.core.running_keys() == []  # ...not after a loss window
        driver.check_books()
    finally:
        await nc.close()
