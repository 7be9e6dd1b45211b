"""The embedded nats-server of `heddle up` (and of the live tests): JetStream on, its store
under the data dir, restartable on the same port so clients reconnect by themselves.

Port 0 lets the server pick a free one (``-p -1``) and read it back from the server's own
log, so there is no race between finding a port and binding it; a restart then reuses it.
Readiness is the "Server is ready" log line followed by a TCP connect: no sleeps.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from heddle.events.natsd import NatsStartError, launch, nats_server_binary, terminate

__all__ = ["EmbeddedNats", "NatsStartError"]


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
        connect_host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        self.process, self.port = launch(args, connect_host, self.log)
        return self

    def tail(self, lines: int = 20) -> str:
        return "".join(self.log[-lines:])

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """SIGTERM (the server flushes its store), SIGKILL after STOP_TIMEOUT_S."""
        if self.process is not None:
            terminate(self.process)
            self.process = None
