"""The cluster services `heddle up` runs beside nats-server: the join service (as the control
user), the cluster's mDNS announcement, and the machines seen waiting to join (answered on
`DISCOVERED_SUBJECT` for `heddle fleet`). They run on one thread with its own event loop, so
`heddle up`'s supervising loop stays plain and a slow mDNS registration never delays it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict

from heddle.events.jetstream import flush_interest
from heddle.live.cluster.access import DISCOVERED_SUBJECT
from heddle.live.cluster.discovery import Announcer, DiscoveredCluster, NodeWatcher
from heddle.live.cluster.join import Credentials, serve_joins
from heddle.live.cluster.roster import Roster

__all__ = ["ClusterServices", "DiscoveredReply", "ServiceError", "WaitingNode"]

START_TIMEOUT_S = 30.0
"""How long the services may take to log in and listen (a loaded machine is slow)."""


class ServiceError(RuntimeError):
    """The cluster services did not start; `heddle up` prints it and stops."""


class WaitingNode(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    node_id: str
    device: str
    address: str


class DiscoveredReply(BaseModel):
    """The answer on `DISCOVERED_SUBJECT`: machines announcing that they wait to join."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    nodes: list[WaitingNode]


@dataclass
class ClusterServices:
    """``control`` logs in as the control user; ``announce`` (None: no announcement) is the
    cluster as mDNS shows it, answered on ``interface``."""

    roster: Roster
    control: Credentials
    announce: DiscoveredCluster | None = None
    interface: str = "127.0.0.1"
    on_joined: Callable[[str], None] | None = None
    _thread: threading.Thread | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _stop: asyncio.Event | None = None
    _ready: threading.Event = field(default_factory=threading.Event)
    _error: BaseException | None = None
    announcer: Announcer | None = None
    watcher: NodeWatcher | None = None

    def start(self) -> ClusterServices:
        self._thread = threading.Thread(target=self._main, name="heddle-cluster-services", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_S):
            raise ServiceError(f"the join service did not start within {START_TIMEOUT_S:g} s")
        if self._error is not None:
            raise ServiceError(f"the join service did not start: {self._error}")
        return self

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # noqa: BLE001 -- reported to start() (or lost at shutdown)
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        import nats

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        nc = await nats.connect(**self.control.connect_options(), name="heddle-cluster-services",
                                max_reconnect_attempts=-1, reconnect_time_wait=0.2, connect_timeout=5)
        try:
            await serve_joins(nc, self.roster, self.control.nats_url, self.on_joined)
            if self.announce is not None:
                self.announcer = Announcer(self.announce, self.interface, _port(self.announce.url)).start()
                self.watcher = await asyncio.to_thread(NodeWatcher, [self.interface])
                await nc.subscribe(DISCOVERED_SUBJECT, cb=self._on_discovered)
                await flush_interest(nc)
            self._ready.set()
            await self._stop.wait()
        finally:
            if self.announcer is not None:
                await asyncio.to_thread(self.announcer.close)
            if self.watcher is not None:
                await asyncio.to_thread(self.watcher.close)
            with contextlib.suppress(Exception):
                await nc.drain()

    async def _on_discovered(self, msg) -> None:
        members = self.roster.reread().members
        waiting = [WaitingNode(node_id=n.node_id, device=n.device, address=n.address)
                   for n in self.watcher.found() if n.node_id not in members]
        await msg.respond(DiscoveredReply(nodes=waiting).model_dump_json().encode())

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop ended on its own already
                self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=START_TIMEOUT_S)


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])
