"""`heddle up`: nats-server, the control plane (then the gateway, if asked) and a local agent,
started in that order and stopped in reverse (the agent drains first). The children run in their own sessions so a
Ctrl-C reaches only `heddle up`, which then stops them in order."""

from __future__ import annotations

import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from heddle.live.control.serve import READY_LINE
from heddle.live.natsd import EmbeddedNats, NatsStartError

__all__ = ["Cluster", "UpError"]

START_TIMEOUT_S = 60.0
"""How long the control plane may take to say it is ready (imports are slow on a busy machine)."""
STOP_TIMEOUT_S = 40.0
"""How long a child may take to stop after SIGTERM (the agent's drain deadline is 30 s)."""
POLL_S = 0.5
"""How often `heddle up` checks that its children are alive."""


class UpError(RuntimeError):
    """A part of the cluster did not start; `heddle up` prints it and stops the rest."""


def lan_address() -> str:
    """This machine's address on its LAN (no packet is sent), or the host name."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))
            return probe.getsockname()[0]
        except OSError:
            return socket.gethostname()


class Cluster:
    def __init__(self, data_dir: Path, host: str, port: int, *, node_id: str | None = None,
                 slots: int | None = None, device: str | None = None, agent: bool = True,
                 gateway: tuple[list[str], str] | None = None) -> None:
        self.store_dir = Path(data_dir).expanduser() / "nats"
        self.nats = EmbeddedNats(self.store_dir, host, port)
        self.agent_args = [a for flag, v in (("--node-id", node_id), ("--slots", slots), ("--device", device))
                           if v is not None for a in (flag, str(v))]
        self.run_agent = agent
        self.gateway = gateway  # (`heddle gateway` flags, its ready line); None: no gateway
        self.children: dict[str, subprocess.Popen] = {}

    @property
    def url(self) -> str:
        return self.nats.url

    @property
    def join_url(self) -> str:
        host = lan_address() if self.nats.host in ("0.0.0.0", "::") else self.nats.host
        return f"nats://{host}:{self.nats.port}"

    def start(self) -> None:
        try:
            self.nats.start()
        except NatsStartError as exc:
            raise UpError(str(exc)) from None
        scheduler = self._spawn("control plane", [sys.executable, "-m", "heddle.cli.live", "scheduler",
                                                  "--nats", self.url], capture=True)
        self._wait_ready(scheduler)
        if self.gateway is not None:
            flags, ready_line = self.gateway
            gateway = self._spawn("gateway", [sys.executable, "-m", "heddle.cli.gateway", "--nats",
                                              self.url, *flags], capture=True)
            self._wait_ready(gateway, ready_line, "the gateway")
        if self.run_agent:
            self._spawn("agent", [sys.executable, "-m", "heddle.cli.agent", "--nats", self.url, *self.agent_args])

    def _spawn(self, name: str, args: list[str], capture: bool = False) -> subprocess.Popen:
        process = subprocess.Popen(args, stdout=subprocess.PIPE if capture else None, text=True,
                                   start_new_session=True)
        self.children[name] = process
        return process

    def _wait_ready(self, process: subprocess.Popen, ready_line: str = READY_LINE,
                    what: str = "the control plane") -> None:
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:  # forward the child's output and spot the ready line
            assert process.stdout is not None
            for line in process.stdout:
                sys.stdout.write(line)
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise UpError(f"{what} did not start within {START_TIMEOUT_S:g} s") from None
            if line is None:
                raise UpError(f"{what} exited with code {process.wait()}")
            if ready_line in line:
                return

    def wait(self) -> None:
        """Until the control plane or nats-server exits on its own (then UpError) or
        KeyboardInterrupt. The local agent may leave (drained): the cluster stays up."""
        while True:
            for name, what in (("agent", "the local agent left"), ("gateway", "the gateway exited")):
                child = self.children.get(name)
                if child is not None and child.poll() is not None:
                    print(f"{what} (exit code {child.returncode}); the cluster stays up", flush=True)
                    del self.children[name]
            control = self.children["control plane"]
            if control.poll() is not None:
                raise UpError(f"the control plane exited with code {control.returncode}")
            if not self.nats.running():
                raise UpError("nats-server exited:\n" + self.nats.tail())
            time.sleep(POLL_S)  # supervising children, not synchronising

    def stop(self) -> int:
        """Agent (drains), then control plane, then nats-server; 0 if all stopped cleanly."""
        code = 0
        for name in ("agent", "gateway", "control plane"):
            process = self.children.pop(name, None)
            if process is None or process.poll() is not None:
                continue
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                code = 1
        self.nats.stop()
        return code
