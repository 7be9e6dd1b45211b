"""Run the gateway until SIGTERM/SIGINT (`heddle gateway`, and `heddle up --gateway`'s child)."""

from __future__ import annotations

import asyncio
import logging
import socket

import uvicorn

from heddle.gateway.app import END_WAIT_S, build_app
from heddle.gateway.bridge import Bridge
from heddle.gateway.keys import load_keys
from heddle.gateway.settings import READY_LINE, GatewaySettings
from heddle.live.control.serve import tune_runtime
from heddle.live.control.stalls import from_env

__all__ = ["READY_LINE", "serve"]

GRACEFUL_S = 5.0
"""On SIGTERM, open streams get this long to finish; then their requests are cancelled and each
ends with its protocol's error (`app.STOPPING`) and the body's end."""


class _Server(uvicorn.Server):
    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's, which cancels the requests still going after GRACEFUL_S and returns, and
        then the process ends: here they first get to end their streams in their protocol's
        shape (`app._Request.stream`), each waiting at most END_WAIT_S to write it."""
        await super().shutdown(sockets)
        if self.server_state.tasks and not self.force_exit:
            await asyncio.wait(list(self.server_state.tasks), timeout=2 * END_WAIT_S)


async def serve(settings: GatewaySettings) -> None:
    """Load the keys (KeysFileError), connect to NATS, listen, answer until signalled."""
    keys = load_keys(settings.keys_file)
    stats = from_env("gateway")  # HEDDLE_LOOP_STATS: a debug mode for latency work (stalls.py)
    # IPPROTO_TCP named: asyncio sets TCP_NODELAY only on sockets whose proto says TCP (the
    # accepted ones inherit it). Without it Nagle's algorithm held each stream's first token
    # behind the unacknowledged role chunk until the caller's delayed ACK: ~40 ms of TTFT.
    sock = socket.socket(socket.AF_INET6 if ":" in settings.host else socket.AF_INET,
                         socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.host, settings.port))
    sock.listen(2048)  # accepted by the kernel from now on: the ready line below is true
    bridge = await Bridge.connect(settings.nats_url, auth=settings.nats_auth)
    bridge.stats = stats
    app = build_app(settings, keys, bridge)
    # The control plane's GC tuning: start-up's ~200k objects (uvicorn, pydantic, nats, the
    # catalog) frozen, collections rarer. Unfrozen, each full collection scanned them all:
    # 125-130 ms of CPU holding every stream, the p99 of TTFT at half of saturation.
    tune_runtime()
    config = uvicorn.Config(app, interface="asgi3", log_level="warning", access_log=False,
                            lifespan="off", proxy_headers=False, server_header=False,
                            timeout_graceful_shutdown=GRACEFUL_S)
    host, port = sock.getsockname()[:2]
    print(f"{READY_LINE} on http://{host}:{port} (NATS {settings.nats_url})", flush=True)
    try:
        await _Server(config).serve(sockets=[sock])
    finally:
        logging.getLogger("heddle.gateway").info("stopping")
        if stats is not None:
            stats.write()
        await bridge.close()
