"""The live fleet as the Fleet page shows it: every node's latest capacity report, merged
with what the control plane says of it, and how long ago it was heard from.

The watch listens to the agents' capacity stream (``heddle.v1.capacity.*``) and goodbyes
(``heddle.v1.left.*``) itself, so a node that joins shows up with its first report, without
waiting for anyone; it asks the control plane's fleet query every second for what only the
control plane knows (draining, lost, work waiting). A node silent for ``lost_after_s`` shows
as lost even when no control plane runs. Every change bumps ``version`` and wakes the pages
streaming it (server-sent events).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from heddle.live import protocol as wire

__all__ = ["FleetWatch", "NodeView"]

logger = logging.getLogger(__name__)

CONTROL_POLL_S = 1.0
"""How often the control plane's fleet query is asked (what only it knows: lost, draining)."""
RECONNECT_S = 2.0
"""Between attempts to reach NATS while no cluster is running."""
NEW_FOR_S = 10.0
"""A node that joined this recently is marked "joined just now"."""
FORGET_AFTER_S = 600.0
"""A node gone (left or lost) this long is dropped from the page."""
TICK_S = 1.0
"""Even without news the page is refreshed this often (the "heard from" ages move on)."""


@dataclass(slots=True)
class NodeView:
    node_id: str
    report: wire.CapacityReport
    first_seen_s: float
    last_seen_s: float
    left_reason: str | None = None  # said goodbye (Left) and has not reported since
    control_status: str | None = None  # the control plane's word: active, draining, lost, left
    shadow_error: float | None = None  # the twin's median error on this node's run times


def _status(view: NodeView, now_s: float, lost_after_s: float) -> str:
    """active, draining, lost or left: the control plane's word when it has one, else ours."""
    if view.left_reason is not None or view.control_status == "left":
        return "left"
    if view.control_status in ("lost", "departed"):  # departed: no agent answered an assignment
        return "lost"
    if now_s - view.last_seen_s > lost_after_s:
        return "lost"
    if view.control_status == "draining" or view.report.status.value == "draining":
        return "draining"
    return "active"


STATUS_WORDS = {
    "active": "working",
    "draining": "draining: finishing its work, taking no new work",
    "lost": "lost: not heard from",
    "left": "left the fleet",
}
"""What each status means, in the words the page uses."""


def _power(report: wire.CapacityReport) -> str:
    if report.power.source.value == "battery":
        level = report.power.battery_level
        return "on battery" + (f" ({level:.0%})" if level is not None else "")
    return "plugged in"


def _thermal(report: wire.CapacityReport) -> str:
    words = {"nominal": "cool", "fair": "warm", "serious": "hot", "critical": "too hot"}
    text = words.get(report.thermal.state.value, report.thermal.state.value)
    return text + (", slowed down" if report.thermal.throttling else "")


def _heard(age_s: float) -> str:
    if age_s < 2:
        return "just now"
    if age_s < 120:
        return f"{age_s:.0f} s ago"
    return f"{age_s / 60:.0f} min ago"


def node_row(view: NodeView, now_s: float, lost_after_s: float) -> dict[str, Any]:
    """One node as the page shows it (plain words, units in the text)."""
    r = view.report
    status = _status(view, now_s, lost_after_s)
    running = [ref.task_id for ref in r.running] if status in ("active", "draining") else []
    return {
        "node_id": view.node_id,
        "device": r.device or r.chip,
        "hostname": r.hostname,
        "owner": r.owner,
        "status": status,
        "status_text": STATUS_WORDS[status] + (f" ({view.left_reason})" if view.left_reason else ""),
        "new": status == "active" and now_s - view.first_seen_s < NEW_FOR_S,
        "memory": f"{r.memory.free_gb:.1f} of {r.memory.total_gb:.1f} GB free",
        "slots": f"{r.slots - r.free_slots} of {r.slots} busy" + (f", {r.queued} queued" if r.queued else ""),
        "models": [f"{m.model} ({m.quant})" for m in r.resident_models],
        "power": _power(r),
        "thermal": _thermal(r),
        "running": running,
        "heard": _heard(now_s - view.last_seen_s),
        "twin_error": f"{view.shadow_error:.0%}" if view.shadow_error is not None else None,
        "can_drain": status == "active",
    }


class FleetWatch:
    """Nodes by id, kept current from NATS; ``start()`` in the app's lifespan, ``close()`` after."""

    def __init__(self, nats_url: str | None, lost_after_s: float = 6.0, auth: dict | None = None) -> None:
        self.nats_url = nats_url
        self.auth = auth or {}  # nats.connect arguments that log in (a cluster with access control)
        self.lost_after_s = lost_after_s
        self.nodes: dict[str, NodeView] = {}
        self.nc: Any = None
        self.client: Any = None  # ControlClient on the same connection
        self.problem: str | None = f"connecting to the cluster at {nats_url}" if nats_url else None
        self.control_problem: str | None = None
        self.waiting = 0
        self.shadow: dict[str, Any] = {}  # the twin's running error on run times (when recorded)
        self.fleet_file: dict[str, Any] = {}  # the live fleet as a fleet YAML document
        self.version = 0
        self._changed = asyncio.Condition()
        self._tasks: list[asyncio.Task] = []

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        if self.nats_url:
            self._tasks.append(asyncio.get_running_loop().create_task(self._run(), name="fleet-watch"))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await self.nc.close()

    async def _run(self) -> None:
        import nats

        from heddle.live.control.client import ControlClient

        # Retries for as long as it takes: the UI may start before `heddle up` does.
        self.nc = await nats.connect(self.nats_url, connect_timeout=2, max_reconnect_attempts=-1,
                                     reconnect_time_wait=RECONNECT_S, name="heddle-ui",
                                     error_cb=self._on_error, disconnected_cb=self._on_disconnect,
                                     reconnected_cb=self._on_reconnect, **self.auth)
        await self.nc.subscribe(wire.all_nodes(wire.CAPACITY), cb=self._on_capacity)
        await self.nc.subscribe(wire.all_nodes(wire.LEFT), cb=self._on_left)
        self.client = ControlClient(self.nc, sender="heddle-ui")
        await self._set_problem(None)
        while True:
            await self._poll_control()
            await asyncio.sleep(CONTROL_POLL_S)

    async def _on_error(self, exc: Exception) -> None:
        # (nats-py's default prints a traceback per failed attempt)
        if self.nc is None or not self.nc.is_connected:
            await self._set_problem(f"cannot reach the cluster at {self.nats_url} "
                                    f"({exc or type(exc).__name__}); is `heddle up` running?")

    async def _on_disconnect(self) -> None:
        await self._set_problem(f"lost the connection to the cluster at {self.nats_url}; reconnecting")

    async def _on_reconnect(self) -> None:
        await self._set_problem(None)

    # -- news -----------------------------------------------------------------------------------
    async def _bump(self) -> None:
        async with self._changed:
            self.version += 1
            self._changed.notify_all()

    async def _set_problem(self, problem: str | None) -> None:
        if problem != self.problem:
            self.problem = problem
            await self._bump()

    @staticmethod
    def _decode(msg: Any, kind: type) -> Any:
        """The message, or None (logged) if it is garbage or names another node than its subject."""
        try:
            message = wire.decode(msg.data, kind)
        except wire.ProtocolError as exc:
            logger.debug("ignored a message on %s: %s", msg.subject, exc)
            return None
        if msg.subject.rsplit(".", 1)[-1] != message.node_id:
            logger.debug("ignored a message on %s about node %s", msg.subject, message.node_id)
            return None
        return message

    async def _on_capacity(self, msg: Any) -> None:
        report = self._decode(msg, wire.CapacityReport)
        if report is None:
            return
        now = time.time()
        view = self.nodes.get(report.node_id)
        if view is None or view.left_reason is not None or now - view.last_seen_s > self.lost_after_s:
            self.nodes[report.node_id] = NodeView(report.node_id, report, now, now)  # (re)joined
        else:
            view.report, view.last_seen_s = report, now
        await self._bump()

    async def _on_left(self, msg: Any) -> None:
        left = self._decode(msg, wire.Left)
        view = self.nodes.get(left.node_id) if left is not None else None
        if view is not None:
            view.left_reason = left.reason
            await self._bump()

    async def _poll_control(self) -> None:
        try:
            reply = await self.client.fleet()
        except Exception as exc:  # noqa: BLE001 - no scheduler, a reconnect, a refusal: all shown as is
            problem = str(exc) or type(exc).__name__
        else:
            problem = None
            self.waiting = reply.waiting
            # Shadow predictions and the fleet export exist once the control plane records them.
            self.shadow = dict(getattr(reply, "shadow", None) or {})
            self.fleet_file = dict(getattr(reply, "fleet_file", None) or {})
            for row in reply.nodes:
                view = self.nodes.get(row.node_id)
                news = (row.status, getattr(row, "shadow_error", None))
                if view is not None and (view.control_status, view.shadow_error) != news:
                    view.control_status, view.shadow_error = news
                    await self._bump()
        if problem != self.control_problem:
            self.control_problem = problem
            await self._bump()

    # -- what the pages read -------------------------------------------------------------------
    async def wait_change(self, version: int, timeout_s: float = TICK_S) -> int:
        """Wait until ``version`` is out of date (or ``timeout_s``); returns the current one."""
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):  # not wait_for: 3.11's can lose a cancel
                    await self._changed.wait_for(lambda: self.version != version)
            return self.version

    def snapshot(self) -> dict[str, Any]:
        now = time.time()
        for node_id, view in list(self.nodes.items()):
            if now - view.last_seen_s > FORGET_AFTER_S:
                del self.nodes[node_id]
        rows = [node_row(v, now, self.lost_after_s) for _, v in sorted(self.nodes.items())]
        return {
            "configured": self.nats_url is not None,
            "nats_url": self.nats_url,
            "problem": self.problem,
            "control_problem": self.control_problem if self.problem is None else None,
            "nodes": rows,
            "working": sum(1 for r in rows if r["status"] == "active"),
            "running": sum(len(r["running"]) for r in rows),
            "waiting": self.waiting,
            "shadow": self.shadow if self.shadow.get("tasks") else None,
        }

    async def drain(self, node_id: str) -> None:
        """Ask the control plane to drain ``node_id``; ControlError when it refuses or is away."""
        from heddle.live.control.client import ControlError

        if self.client is None:
            raise ControlError(self.problem or "not connected to a cluster")
        await self.client.drain(node_id)
