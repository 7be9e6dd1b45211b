"""The embedded nats-server of `heddle up` (and of the live tests): JetStream on, its store
under the data dir, restartable on the same port so clients reconnect by themselves.

Port 0 lets the server pick a free one (``-p -1``) and read it back from the server's own
log, so there is no race between finding a port and binding it; a restart then reuses it.
Readiness is the "Server is ready" log line followed by a TCP connect: no sleeps.
"""

from __future__ import annotations

import queue
import re
import socket
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

from heddle.events.natsd import nats_server_binary

__all__ = ["EmbeddedNats", "NatsStartError"]

READY_TIMEOUT_S = 10.0
"""Generous: the server is ready in ~15 ms, but the test machine is shared and loaded."""
STOP_TIMEOUT_S = 5.0
"""How long a stopping server may take to flush its store before it is killed."""

_LISTEN_RE = re.compile(r"Listening for client connections on (\S+):(\d+)")


class NatsStartError(RuntimeError):
    """nats-server did not start (binary missing, port taken, bad store); the caller (the
    `heddle up` command or a test fixture) reports it and stops."""


@dataclass
class EmbeddedNats:
    """One nats-server process; ``start()`` and ``stop()`` may be repeated (same port)."""

    store_dir: Path
    host: str = "127.0.0.1"
    port: int = 0
    config_file: Path | None = None
    """A nats-server configuration (``-c``): the cluster's users and permissions, TLS."""
    process: subprocess.Popen | None = None
    log: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"nats://{host}:{self.port}"

    def start(self) -> EmbeddedNats:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        args = [
            nats_server_binary(),
            "-js",
            "-sd", str(self.store_dir),
            "-a", self.host,
            "-p", str(self.port or -1),
        ]  # fmt: skip
        if self.config_file is not None:
            args += ["-c", str(self.config_file)]
        try:
            self.process = subprocess.Popen(
                args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, bufsize=1
            )
        except OSError as exc:
            raise NatsStartError(f"cannot run {args[0]}: {exc}") from exc
        self.port = self._wait_ready(self.process)
        connect_host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        with socket.create_connection((connect_host, self.port), timeout=READY_TIMEOUT_S):
            pass
        return self

    def _wait_ready(self, process: subprocess.Popen) -> int:
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:  # keep draining stderr so the server never blocks on a full pipe
            assert process.stderr is not None
            for line in process.stderr:
                self.log.append(line)
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        port = None
        while True:
            try:
                line = lines.get(timeout=READY_TIMEOUT_S)
            except queue.Empty:
                process.kill()
                raise NatsStartError("nats-server did not become ready:\n" + self.tail()) from None
            if line is None:
                raise NatsStartError("nats-server exited:\n" + self.tail())
            match = _LISTEN_RE.search(line)
            if match:
                port = int(match.group(2))
            if "Server is ready" in line and port is not None:
                return port

    def tail(self, lines: int = 20) -> str:
        return "".join(self.log[-lines:])

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """SIGTERM (the server flushes its store), SIGKILL after STOP_TIMEOUT_S."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None
