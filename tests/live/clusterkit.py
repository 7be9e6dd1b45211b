"""A real cluster for the end-to-end tests: nats-server (restartable on its port), the control
plane (`heddle scheduler`) and agents, each a separate OS process on loopback.

Waits are on conditions the user could observe (the control plane's ready line, a node in
`heddle fleet`, task counts in `heddle status`) with a generous upper bound: no sleeps as
synchronisation. The event log is read back from JetStream to recount what happened.
"""

from __future__ import annotations

import asyncio
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import nats

from heddle.live.control.client import ControlClient
from heddle.live.control.serve import READY_LINE
from heddle.live.control.streams import read_history
from heddle.live.natsd import EmbeddedNats

REPO = Path(__file__).resolve().parents[2]
WAIT_S = 90.0
"""Upper bound of any wait (processes start in ~1-3 s, far slower on a loaded machine)."""
POLL_S = 0.05
"""Between two looks at a condition."""
REPORT_EVERY_S = 0.2
"""Agents report this often in the tests, so a lost node is noticed in 3 x 0.2 s."""


def agent_command(url: str, node: str, owner: str, slots: int, trust: tuple[str, ...]) -> list[str]:
    """`heddle agent`, as ``python -m heddle.cli.agent`` (the same command, faster to start)."""
    flags = ["--nats", url, "--node-id", node, "--owner", owner, "--slots", str(slots),
             "--report-every", str(REPORT_EVERY_S), "--device", "m1-7"]
    if trust:
        flags += ["--trust", ",".join(trust)]
    return [sys.executable, "-m", "heddle.cli.agent", *flags]


class Cluster:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.nats = EmbeddedNats(tmp / "js").start()
        self.control: subprocess.Popen | None = None
        self.control_log: list[str] = []
        self.agents: dict[str, subprocess.Popen] = {}
        self.agent_specs: dict[str, tuple[str, int, tuple[str, ...]]] = {}

    @property
    def url(self) -> str:
        return self.nats.url

    # -- processes ------------------------------------------------------------------------------
    def start_control(self, *extra: str) -> None:
        args = [sys.executable, "-m", "heddle.cli.live", "scheduler", "--nats", self.url,
                "--report-interval", str(REPORT_EVERY_S), "--ack-timeout", "2",
                "--data-dir", str(self.tmp / "data"), *extra]
        self.control, _ = start_until_ready(args, READY_LINE, self.control_log)

    def start_agent(self, node: str, owner: str, slots: int = 4, trust: tuple[str, ...] = ()) -> None:
        self.agent_specs[node] = (owner, slots, trust)
        self.agents[node] = subprocess.Popen(
            agent_command(self.url, node, owner, slots, trust), cwd=REPO,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    def kill(self, process: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
        process.send_signal(sig)
        if sig == signal.SIGKILL:
            process.wait(timeout=WAIT_S)

    def close(self) -> None:
        for process in [*self.agents.values(), self.control]:
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
        self.nats.stop()

    # -- talking to it ---------------------------------------------------------------------------
    async def client(self) -> ControlClient:
        nc = await nats.connect(self.url, max_reconnect_attempts=-1, reconnect_time_wait=0.1)
        return ControlClient(nc, sender="tester")

    async def wait_for(self, check: Callable[[], Awaitable[Any]], what: str, timeout: float = WAIT_S) -> Any:
        """Poll ``check`` until it returns something truthy; AssertionError after ``timeout``."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = await check()
            except Exception as exc:  # noqa: BLE001 - e.g. the control plane restarting
                last = exc
            if last and not isinstance(last, Exception):
                return last
            await asyncio.sleep(POLL_S)
        raise AssertionError(f"timed out waiting for {what}; last: {last!r}\n" + "".join(self.control_log[-20:]))

    async def wait_nodes(self, client: ControlClient, nodes: set[str]) -> None:
        async def present():
            reply = await client.fleet()
            return {n.node_id for n in reply.nodes if n.status == "active"} >= nodes

        await self.wait_for(present, f"nodes {sorted(nodes)} active")

    async def wait_job(self, client: ControlClient, job: str, total: int, state: str = "completed") -> dict:
        async def ended():
            counts = (await client.status(job, limit=0)).jobs.get(job, {})
            return counts if counts.get(state, 0) >= total else None

        return await self.wait_for(ended, f"{total} tasks of {job} {state}")

    async def job_events(self, job: str, total: int) -> list:
        """The job's lifecycle events once the log holds a completion for ``total`` of its
        tasks (the journal appends in pipelined batches, so a status reply may run ahead of it)."""

        async def logged():
            events = [e for e in await self.events() if e.aggregate_id.startswith(f"{job}-")]
            return events if len(completions(events)) >= total else None

        return await self.wait_for(logged, f"{total} completions of {job} in the event log")

    async def events(self) -> list:
        nc = await nats.connect(self.url)
        try:
            return [e async for e in read_history(nc.jetstream(), "Task")]
        finally:
            await nc.close()


def start_until_ready(args: list[str], ready_line: str, log: list[str]) -> tuple[subprocess.Popen, str]:
    """Start a process from the repository root; return it and its output line holding
    ``ready_line`` once printed (RuntimeError with its last output if it exits first). Its
    output keeps going into ``log``."""
    process = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, bufsize=1)
    ready: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            log.append(line)
            if ready_line in line:
                ready.put(line)
        ready.put(None)

    threading.Thread(target=pump, daemon=True).start()
    line = ready.get(timeout=WAIT_S)
    if line is None:
        raise RuntimeError(f"{args[2]} exited:\n" + "".join(log[-30:]))
    return process, line


def by_task(events: list) -> dict[str, list]:
    out: dict[str, list] = {}
    for e in events:
        out.setdefault(e.aggregate_id, []).append(e)
    return out


def completions(events: list) -> dict[str, int]:
    counts: dict[str, int] = {}
    for e in events:
        if e.event_type == "TaskCompleted":
            counts[e.aggregate_id] = counts.get(e.aggregate_id, 0) + 1
    return counts


def workload_file(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.write_text(text, encoding="utf-8")
    return path


def echo_tasks(n: int, *, privacy_owners: list[tuple[str, str | None]] | None = None,
               kind: str = "echo", seconds: float = 0.0) -> str:
    """YAML for ``n`` processor tasks; privacy/owner cycle through ``privacy_owners``."""
    cycle = privacy_owners or [("public", None)]
    lines = ["tasks:"]
    for i in range(n):
        privacy, owner = cycle[i % len(cycle)]
        owner_part = f", owner: {owner}" if owner else ""
        lines.append(f"  - {{id: t{i}, kind: processor, cpu_seconds: 0.001, privacy: {privacy}{owner_part}}}")
    lines.append("run:")
    options = f", payload: {{seconds: {seconds}}}" if kind == "sleep" else ""
    for i in range(n):
        lines.append(f"  t{i}: {{kind: {kind}{options}}}")
    return "\n".join(lines) + "\n"


os.environ.setdefault("PYTHONUNBUFFERED", "1")
