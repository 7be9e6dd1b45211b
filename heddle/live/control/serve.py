"""Run a control plane until SIGTERM/SIGINT (`heddle scheduler`, and `heddle up`'s child)."""

from __future__ import annotations

import asyncio
import logging
import signal

import nats

from heddle.live.control.plane import ControlPlane
from heddle.live.control.settings import ControlSettings

__all__ = ["READY_LINE", "serve"]

READY_LINE = "heddle control plane ready"
"""Printed once the control plane listens (tests and `heddle up` wait for it)."""
RECONNECT_WAIT_S = 0.2
"""Between reconnect attempts while nats-server is away (it restarts in well under 1 s)."""


async def serve(nats_url: str, settings: ControlSettings | None = None, auth: dict | None = None) -> None:
    """``auth``: extra ``nats.connect`` arguments that log in (user, password, inbox prefix)."""
    settings = settings or ControlSettings()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    nc = await nats.connect(
        nats_url,
        name=settings.sender,
        max_reconnect_attempts=-1,
        reconnect_time_wait=RECONNECT_WAIT_S,
        connect_timeout=5,
        **(auth or {}),
    )
    plane = ControlPlane(nc, settings)
    await plane.open()
    print(f"{READY_LINE} on {nats_url} ({len(plane.tasks)} tasks recovered)", flush=True)
    await stop.wait()
    logging.getLogger(__name__).info("stopping")
    await plane.close()
    await nc.drain()
