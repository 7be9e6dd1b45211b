"""The control plane's watchdog counts a node's silence only while the control plane was
listening: when its own loop was held (a loaded machine, a long step), the reports that came
meanwhile may be unread, so the node is not declared lost for it; a real silence still is."""

from __future__ import annotations

from heddle.live.control.settings import ControlSettings
from heddle.models import NodeId
from tests.live.planekit import NEVER_S, NODES, plane_driver

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
