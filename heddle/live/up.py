"""`heddle up`: a cluster in one command. nats-server with the roster's users and permissions,
the control plane (logged in as the control user), the gateway (if asked), the join service
and the cluster's mDNS announcement, and a local agent (as its own node), started in that
order and stopped in reverse (the agent drains first). The children run in their own
sessions so a Ctrl-C reaches only `heddle up`, which then stops them in order.

Secrets never appear on a command line: the children read their credentials from 0600
files under the data dir."""

from __future__ import annotations

import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from heddle.live import protocol as p
from heddle.live.agent.settings import default_node_id
from heddle.live.cluster.access import ADMIN_USER, CONTROL_USER, GATEWAY_USER, AccessError
from heddle.live.cluster.discovery import DiscoveredCluster
from heddle.live.cluster.join import CREDENTIALS_FILE, USER_CREDENTIALS_FILE, Credentials
from heddle.live.cluster.membership import (
    CONTROL_CREDENTIALS_FILE,
    GATEWAY_CREDENTIALS_FILE,
    local_member,
)
from heddle.live.cluster.roster import Roster
from heddle.live.cluster.service import ClusterServices, ServiceError
from heddle.live.cluster.tls import TlsError, make_certificate
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
                 gateway: tuple[list[str], str] | None = None, name: str | None = None, announce: bool = True, tls: bool = True,
                 on_joined: Callable[[str], None] | None = None, control_args: Sequence[str] = ()) -> None:
        self.data_dir = Path(data_dir).expanduser()
        self.store_dir = self.data_dir / "nats"
        try:
            self.roster = Roster.load(self.data_dir)
        except AccessError as exc:
            raise UpError(str(exc)) from None
        self.nats = EmbeddedNats(self.store_dir, host, port, config_file=self.roster.config_file)
        self.node_id = node_id or default_node_id()
        self.name = name or default_node_id()
        self.agent_args = [a for flag, v in (("--node-id", node_id), ("--slots", slots), ("--device", device))
                           if v is not None for a in (flag, str(v))]
        self.run_agent = agent
        self.gateway = gateway  # (`heddle gateway` flags, its ready line); None: no gateway
        self.announce = announce
        self.tls = tls
        self.on_joined = on_joined
        self.control_args = list(control_args)  # more `heddle scheduler` flags (`--fleet FILE`)
        self.children: dict[str, subprocess.Popen] = {}
        self.services: ClusterServices | None = None

    @property
    def url(self) -> str:
        return self.nats.url

    @property
    def join_url(self) -> str:
        host = lan_address() if self.nats.host in ("0.0.0.0", "::") else self.nats.host
        return f"nats://{host}:{self.nats.port}"

    @property
    def join_code(self) -> str:
        return self.roster.reread().join_code

    def _members(self, url: str) -> Credentials:
        """This machine's members (control plane, the person here, the local node), stored
        under the data dir; returns the control plane's."""
        try:
            control = local_member(self.roster, self.data_dir, CONTROL_USER, "control", CONTROL_CREDENTIALS_FILE, url)
            local_member(self.roster, self.data_dir, ADMIN_USER, "admin", USER_CREDENTIALS_FILE, url)
            if self.gateway is not None:
                local_member(self.roster, self.data_dir, GATEWAY_USER, "gateway", GATEWAY_CREDENTIALS_FILE, url)
            if self.run_agent:
                local_member(self.roster, self.data_dir, self.node_id, "agent", CREDENTIALS_FILE, url)
        except AccessError as exc:
            raise UpError(str(exc)) from None
        return control

    def _certificate(self) -> None:
        """TLS is the cluster's choice at its first start: joined nodes pin its certificate."""
        if self.roster.certificate is not None and not self.tls:
            raise UpError(f"this cluster uses TLS (its certificate is in {self.roster.tls_dir}); its nodes pin it, "
                          f"so it cannot run without (remove {self.roster.directory} to start a new cluster)")
        if self.tls:
            try:
                make_certificate(self.roster.tls_dir, self.name)
            except TlsError as exc:
                raise UpError(str(exc)) from None
            self.roster.save()  # the server's configuration gains its tls block

    def start(self) -> None:
        self.roster.rotate_join_code()  # a fresh code at every start (saved just below)
        self.roster.save()
        self._certificate()
        self._members(self.url)  # before the server starts: it reads the roster's users once
        try:
            self.nats.start()
        except NatsStartError as exc:
            raise UpError(str(exc)) from None
        control = self._members(self.url)  # again, with the port the server picked
        self.roster.remember_address(self.join_url)  # where `heddle users add` logins connect
        scheduler = self._spawn("control plane", [
            sys.executable, "-m", "heddle.cli.live", "scheduler", "--nats", self.url,
            "--credentials", str(self.data_dir / CONTROL_CREDENTIALS_FILE),
            "--users", str(self.roster.users_file), "--data-dir", str(self.data_dir), *self.control_args], capture=True)
        self._wait_ready(scheduler)
        if self.gateway is not None:
            flags, ready_line = self.gateway
            gateway = self._spawn("gateway", [sys.executable, "-m", "heddle.cli.gateway", "--nats", self.url,
                                              "--credentials", str(self.data_dir / GATEWAY_CREDENTIALS_FILE),
                                              *flags], capture=True)
            self._wait_ready(gateway, ready_line, "the gateway")
        announce = DiscoveredCluster(self.name, (self.join_url,), p.PROTOCOL_VERSION, self.roster.fingerprint)
        try:
            self.services = ClusterServices(self.roster, control, announce if self.announce else None,
                                            self.announce_interface, self.on_joined).start()
        except ServiceError as exc:
            raise UpError(str(exc)) from None
        if self.run_agent:
            self._spawn("agent", [sys.executable, "-m", "heddle.cli.agent", "--nats", self.url,
                                  "--data-dir", str(self.data_dir), *self.agent_args])

    @property
    def announce_interface(self) -> str:
        """The address mDNS answers on: the LAN's when listening everywhere."""
        if self.nats.host not in ("0.0.0.0", "::"):
            return self.nats.host
        address = lan_address()
        return address if address.count(".") == 3 else "127.0.0.1"

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
        if self.services is not None:
            self.services.stop()
        self.nats.stop()
        return code
