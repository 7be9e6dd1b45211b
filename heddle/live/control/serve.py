"""Run a control plane until SIGTERM/SIGINT (`heddle scheduler`, and `heddle up`'s child)."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys

import nats

from heddle.live.control.plane import ControlPlane
from heddle.live.control.settings import ControlSettings
from heddle.live.control.stalls import from_env

__all__ = ["READY_LINE", "serve"]

READY_LINE = "heddle control plane ready"
"""Printed once the control plane listens (tests and `heddle up` wait for it)."""
RECONNECT_WAIT_S = 0.2
"""Between reconnect attempts while nats-server is away (it restarts in well under 1 s)."""
GC_THRESHOLDS = (50_000, 20, 10)
"""Cyclic-GC thresholds of the control plane (CPython's default is 700, 10, 10). Each task
allocates a few hundred short-lived objects, nearly all freed by reference counting, so the
default ran a young collection every few tasks and a full one (scanning every task held)
every few thousand: 18% of the control plane's CPU in benchmarks/bench_live.py, 2% with
these thresholds and the start-up heap frozen (measured 2026-12-06)."""


GIL_SWITCH_INTERVAL_S = 0.0005
"""How long the event loop's thread waits for the GIL while another thread of the process
holds it (CPython's default is 5 ms). The recorder builds and writes its rows in a thread
(recorder.py), ~0.1 ms of Python per row, every 2 s: with the default, each time the loop
woke up during a flush it could wait 5 ms for the GIL, several times per task on its way
from submit to start (a flush of 3,000 rows lasts ~0.3 s: the tail of submit->start)."""


def tune_runtime() -> None:
    """Collect less often, never scan what start-up built (modules, the optimizer), and let
    the event loop take the GIL back from a busy thread within GIL_SWITCH_INTERVAL_S."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)


async def serve(nats_url: str, settings: ControlSettings | None = None, auth: dict | None = None) -> None:
    """``auth``: extra ``nats.connect`` arguments that log in (user, password, inbox prefix)."""
    settings = settings or ControlSettings()
    stats = from_env("control")  # HEDDLE_LOOP_STATS: a debug mode for latency work
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    last_error = ""

    async def on_error(exc: Exception) -> None:
        # one line per new trouble (nats-py's default prints a traceback on every retry,
        # five times a second while the server is down); repeats only at debug level
        nonlocal last_error
        text = f"NATS at {nats_url}: {exc or type(exc).__name__}"
        logging.getLogger(__name__).log(logging.DEBUG if text == last_error else logging.WARNING,
                                        "%s (retrying)", text)
        last_error = text

    connecting = asyncio.ensure_future(nats.connect(
        nats_url,
        name=settings.sender,
        error_cb=on_error,
        max_reconnect_attempts=-1,
        reconnect_time_wait=RECONNECT_WAIT_S,
        connect_timeout=5,
        **(auth or {}),
    ))
    # It waits for a NATS server that is not up yet, but a stop signal ends the wait: the
    # handlers above only set `stop`, and nats.connect retries for ever.
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({connecting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if not connecting.done():
        connecting.cancel()
        logging.getLogger(__name__).info("stopped before NATS at %s answered", nats_url)
        return
    stopping.cancel()
    nc = connecting.result()
    plane = ControlPlane(nc, settings)
    if stats is not None:
        plane.stats = stats
        plane.journal.sending = lambda batch: [stats.stamp(e.aggregate_id, "journal_sent") for e in batch
                                               if e.event_type == "TaskSubmitted"]
    await plane.open()
    tune_runtime()
    print(f"{READY_LINE} on {nats_url} ({len(plane.tasks)} tasks recovered)", flush=True)
    await stop.wait()
    logging.getLogger(__name__).info("stopping")
    await plane.close()
    await nc.drain()
    if stats is not None:
        stats.write()
