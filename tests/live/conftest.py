"""Fixtures for the live runtime: a restartable nats-server per test, agent processes, and a
stand-in control plane speaking the wire protocol over raw NATS.

Agents run as separate OS processes (``python -m heddle.cli.agent``, the `heddle agent`
command without the rest of the CLI's imports), from the repository root so processor steps
in ``tests.live.steps`` import in their workers.
"""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
import pytest

from heddle.events.natsd import NatsServer, start_nats_server
from heddle.live import protocol as p

REPO = Path(__file__).resolve().parents[2]
WAIT_S = 60.0
"""Upper bound on any wait in these tests (agents start in ~1 s, ~5 s on a loaded machine)."""


@dataclass
class Natsd:
    """A nats-server with JetStream that a test may stop and start again on the same port."""

    store: Path
    server: NatsServer

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self) -> None:
        self.server.stop()

    def start(self) -> None:
        self.server = start_nats_server(self.store, port=self.server.port)


@pytest.fixture
def natsd(tmp_path) -> Natsd:
    store = tmp_path / "js"
    server = Natsd(store, start_nats_server(store))
    yield server
    if server.server.process.poll() is None:
        server.stop()


@dataclass
class AgentProcess:
    node_id: str
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    async def wait_log(self, text: str, timeout: float = WAIT_S) -> None:
        """Wait until the agent has logged ``text`` (a condition, polled)."""
        deadline = time.monotonic() + timeout
        while text not in self.log():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise AssertionError(f"agent never logged {text!r}:\n{self.log()}")
            await asyncio.sleep(0.05)

    async def wait_exit(self, timeout: float = WAIT_S) -> int:
        deadline = time.monotonic() + timeout
        while self.process.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"agent did not exit:\n{self.log()}")
            await asyncio.sleep(0.05)
        return self.process.returncode

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)


@pytest.fixture
def spawn_agent(tmp_path):
    """Start ``python -m heddle.cli.agent --nats URL --node-id NODE ARGS...``; killed at teardown."""
    started: list[AgentProcess] = []

    def _spawn(url: str, node_id: str, *args: str) -> AgentProcess:
        log_path = tmp_path / f"agent-{node_id}-{len(started)}.log"
        env = {**os.environ, "HEDDLE_CONFIG": str(tmp_path / "no-config.yaml"),
               "HEDDLE_DATA_DIR": str(tmp_path / "data")}  # the agent's records stay in the test
        process = subprocess.Popen(
            [sys.executable, "-m", "heddle.cli.agent", "--nats", url, "--node-id", node_id,
             "--device", "m1-8", "--report-every", "0.5", *args],
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=log_path.open("w"),
        )
        agent = AgentProcess(node_id, process, log_path)
        started.append(agent)
        return agent

    yield _spawn
    for agent in started:
        if agent.process.poll() is None:
            agent.process.kill()
            agent.process.wait()


@dataclass
class Control:
    """The test's stand-in control plane: raw NATS, the wire protocol, queues per subject.

    Task reports are taken as the real control plane gets them from their JetStream stream:
    once per ``Nats-Msg-Id``. An agent publishes a report again when its ack is late (the
    stream drops the copy; on a loaded machine acks were seen to take over 2 s), and a raw
    subscription sees both copies."""

    nc: Any
    seen: dict[str, list] = field(default_factory=dict)
    merged: list = field(default_factory=list)  # TaskReports messages (their reports are in seen)
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)
    seq: int = 0
    report_ids: set[str] = field(default_factory=set)  # Nats-Msg-Id of every report message taken

    @classmethod
    async def connect(cls, url: str) -> Control:
        nc = await nats.connect(url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
        control = cls(nc)
        for kind, template in (("capacity", p.CAPACITY), ("report", p.REPORT), ("left", p.LEFT)):
            control.seen[kind] = []

            async def on_msg(msg, kind=kind):
                msg_id = (msg.headers or {}).get("Nats-Msg-Id")
                if kind == "report" and msg_id is not None:
                    if msg_id in control.report_ids:
                        return  # a retried publish: the stream keeps the first copy only
                    control.report_ids.add(msg_id)
                message = p.decode(msg.data)
                async with control.arrived:
                    if isinstance(message, p.TaskReports):  # several reports in one message
                        control.merged.append(message)
                        control.seen[kind].extend(message.reports)
                    else:
                        control.seen[kind].append(message)
                    control.arrived.notify_all()

            await nc.subscribe(p.all_nodes(template), cb=on_msg)
        return control

    async def next(self, kind: str, match: Callable[[Any], bool] = lambda m: True,
                   timeout: float = WAIT_S) -> Any:
        """The first message of ``kind`` ("capacity", "report", "left") so far that ``match``es,
        waiting for it if none has arrived yet."""

        def found():
            return next((m for m in self.seen[kind] if match(m)), None)

        async with self.arrived:
            try:
                await asyncio.wait_for(self.arrived.wait_for(found), timeout)
            except TimeoutError:
                raise AssertionError(f"no matching {kind} message within {timeout} s") from None
            return found()

    def _header(self) -> dict:
        self.seq += 1
        return {"sender": "test-control", "seq": self.seq, "sent_at": time.time()}

    def assignment(self, node: str, task_id: str, kind: str = "echo", payload: Any = None,
                   target: str | None = None, attempt: int = 0, timeout_s: float | None = None,
                   **task: Any) -> p.Assignment:
        return p.Assignment(
            **self._header(), node_id=node, attempt=attempt, payload=payload, queued_at=time.time(),
            timeout_s=timeout_s,
            task=p.TaskSpec(id=task_id, kind="processor", **task),
            executor=p.ExecutorSpec(kind=kind, target=target),
        )

    async def assign(self, node: str, task_id: str, kind: str = "echo", payload: Any = None,
                     **fields: Any) -> p.AssignReply:
        a = self.assignment(node, task_id, kind, payload, **fields)
        reply = await self.nc.request(p.subject(p.ASSIGN, node=node), p.encode(a), timeout=WAIT_S)
        return p.decode(reply.data, p.AssignReply)

    async def control(self, node: str, action: str, **fields: Any) -> p.ControlReply:
        c = p.Control(**self._header(), node_id=node, action=action, **fields)
        reply = await self.nc.request(p.subject(p.CONTROL, node=node), p.encode(c), timeout=WAIT_S)
        return p.decode(reply.data, p.ControlReply)

    async def finished(self, task_id: str, timeout: float = WAIT_S) -> p.TaskFinished:
        return await self.next(
            "report", lambda m: m.type == "task_finished" and m.task_id == task_id, timeout)

    async def started(self, task_id: str, timeout: float = WAIT_S) -> p.TaskStarted:
        return await self.next(
            "report", lambda m: m.type == "task_started" and m.task_id == task_id, timeout)


@pytest.fixture
async def control(natsd):
    c = await Control.connect(natsd.url)
    yield c
    await c.nc.close()


@pytest.fixture
def gate(tmp_path):
    """``gate(name)`` -> (payload for tests.live.steps:gate, open(text)) holding a task in flight."""
    opened: list[Path] = []

    def _gate(name: str):
        path = tmp_path / f"gate-{name}"
        os.mkfifo(path)
        opened.append(path)

        async def release(text: str = "released", timeout: float = WAIT_S) -> None:
            # A FIFO opens for writing only once the step has it open for reading (ENXIO before).
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
                    break
                except OSError as exc:
                    if exc.errno != errno.ENXIO or time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.02)
            os.write(fd, text.encode())
            os.close(fd)

        return {"fifo": str(path)}, release

    return _gate
