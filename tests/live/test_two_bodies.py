"""STYLE 17, two bodies, one core: the same events with the same timestamps, driven through
the twin and through the live control plane, give the same decisions.

The twin replays a batch of arrivals on a small fleet and records what it decided (start on
which node and when, deferrals, rejections) and when each run finished. The live control
plane (a real `ControlPlane` on a real nats-server, its clock set by the test) is then fed
those same events through its own handlers: capacity reports for the nodes, submissions
through its intake, a `TaskFinished` at each finish time the twin recorded, and its watchdog
at each tick the core asks for. Every start the plane sends, every deferral and rejection
must match the twin's, node for node and second for second. A rule either body kept for
itself (a placement shortcut, a different re-offer, a stale check) shows up as a different
start, a finish for a task that is not running, or a task left waiting.

The work is processor steps (no model residency, memory never binding) so that what each
body knows of its nodes comes only from the events: the twin computes it, the live plane
learns it from reports, and the two agree by construction.
"""

from __future__ import annotations

from types import SimpleNamespace

import nats
import numpy as np
import pytest

from heddle.live import protocol as wire
from heddle.live.control import intake, reports
from heddle.live.control.messages import (
    SubmitRequest,
    SubmitTask,
    decode_request_raw,
    encode_message,
)
from heddle.live.control.plane import ControlPlane
from heddle.live.control.settings import ControlSettings
from heddle.models import Fleet, Node, NodeId, OwnerId, Privacy, Task, TaskId, TaskKind, catalog
from heddle.sim import simulate

OFFSET_S = 10_000.0
"""The live clock reads twin time + this (any origin works: only differences matter)."""
NEVER_S = 1e9
"""Report interval and task timeout: nodes never go silent and attempts never time out here."""

NODES = (  # (id, catalog device, installed GB, slots, owner, trusted owners)
    ("studio", "m2-ultra-76", 192.0, 2, "alice", ("bob",)),
    ("mini", "m4-pro-20", 64.0, 1, "bob", ()),
    ("laptop", "m1-8", 16.0, 1, "alice", ()),
)


def _fleet() -> Fleet:
    nodes = tuple(Node(NodeId(i), catalog.device(d), memory_gb=m, owner=OwnerId(o),
                       trusted_owners=frozenset(OwnerId(t) for t in trust), slots=s)
                  for i, d, m, s, o, trust in NODES)
    return Fleet("two-bodies", nodes)


def _tasks(seed: int, n: int) -> list[Task]:
    """Bursty processor work: personal work of each owner, sensitive and public work, some
    with deadlines, priorities 0-2; arrivals close enough that tasks wait for slots."""
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(4.0, n))
    privacies = (Privacy.PUBLIC, Privacy.SENSITIVE, Privacy.PERSONAL)
    tasks = []
    for k in range(n):
        privacy = privacies[int(rng.integers(3))]
        owner = ("alice", "bob", "carol")[int(rng.integers(3))] if privacy is Privacy.PERSONAL else "alice"
        deadline = float(arrivals[k] + rng.uniform(5, 120)) if rng.random() < 0.4 else None
        tasks.append(Task(TaskId(f"job-{k}"), TaskKind.PROCESSOR, arrival_s=float(arrivals[k]),
                          cpu_seconds=float(rng.uniform(1, 40)), memory_gb=float(rng.uniform(0.2, 2.0)),
                          privacy=privacy, owner=OwnerId(owner), deadline_s=deadline,
                          priority=int(rng.integers(3))))
    return tasks


def _twin_decisions(fleet: Fleet, tasks: list[Task]) -> tuple[dict, list[tuple[float, str]]]:
    """(task id -> what the twin decided, [(finish time, task id)] of its completed runs)."""
    records = simulate(fleet, tasks, "optimal").records.set_index("task_id")
    decided, finishes = {}, []
    for t in tasks:
        r = records.loc[t.id]
        if r["status"] == "completed":
            decided[t.id] = ("started", str(r["target"]), round(float(r["start"]), 6), int(r["defers"]))
            finishes.append((float(r["finish"]), t.id))
        else:
            decided[t.id] = (str(r["status"]), str(r["reason"]))
    return decided, finishes


def _msg(message, subject: str = "") -> SimpleNamespace:
    """An inbound NATS message carrying `message` encoded as on the wire."""
    async def ack() -> None:
        return None
    return SimpleNamespace(data=wire.encode(message), subject=subject, reply="", ack=ack)


def _capacity(node: Node, seq: int, now_s: float) -> wire.CapacityReport:
    return wire.CapacityReport(
        sender=f"agent-{node.id}", seq=seq, sent_at=now_s, node_id=node.id, agent_id=f"agent-{node.id}",
        hostname=f"{node.id}.local", os="darwin", arch="arm64", chip=node.device.id, device=node.device.id,
        memory=wire.Memory(total_gb=node.memory_gb, free_gb=node.memory_gb, unified=True),
        cpu=wire.Cpu(performance_cores=8, utilization=0.0), owner=node.owner,
        trusted_owners=tuple(sorted(node.trusted_owners)), slots=node.slots, free_slots=node.slots,
    )


class _LiveDriver:
    """The control plane, its clock in the test's hand, recording what it decides."""

    def __init__(self, nc, clock: list[float]) -> None:
        self.clock = clock
        settings = ControlSettings(policy="optimal", report_interval_s=NEVER_S, task_timeout_s=NEVER_S)
        self.plane = plane = ControlPlane(nc, settings)
        self.reports = reports._Reports(plane)  # the handlers plane.open() subscribes to NATS
        self.intake = intake._Intake(plane)
        self.started: dict[str, tuple[str, float, int]] = {}  # task -> (node, live time, attempt)
        self.defers: dict[str, int] = {}
        self.rejected: dict[str, str] = {}
        start, deferred, reject = plane.start, plane.deferred, plane.reject

        def on_start(key, decision):  # the plane's own start runs; the test notes what it sent
            sent = len(plane._outbox)
            start(key, decision)
            if len(plane._outbox) > sent:
                self.started[key] = (plane._outbox[-1].node_id, plane.now(), plane._outbox[-1].attempt)

        def on_deferred(key, reason):
            self.defers[key] = self.defers.get(key, 0) + 1
            deferred(key, reason)

        def on_reject(key, reason):
            self.rejected[key] = reason
            reject(key, reason)

        plane.start, plane.deferred, plane.reject = on_start, on_deferred, on_reject

    async def at(self, twin_s: float) -> None:
        """Advance the clock to `twin_s`, running the watchdog at every core tick on the way."""
        live_s = OFFSET_S + twin_s
        while (due := self.plane.core.next_tick_s()) is not None and due <= live_s:
            self.clock[0] = due
            self.plane.check_time(due)
        self.clock[0] = live_s

    async def join(self, fleet: Fleet) -> None:
        for seq, node in enumerate(fleet.nodes, 1):
            report = _capacity(node, seq, self.clock[0])
            await self.reports.on_capacity(_msg(report, wire.subject(wire.CAPACITY, node=node.id)))
        self.plane.check_time(self.clock[0])  # ends the start-up wait for node reports

    def submit(self, task: Task) -> None:
        spec = wire.TaskSpec.from_task(task)
        request = SubmitRequest(sender="user", seq=1, sent_at=self.clock[0], job_id="job",
                                tasks=[SubmitTask(task=spec, executor=wire.ExecutorSpec(kind="sleep"))])
        request, raw = decode_request_raw(encode_message(request), SubmitRequest)  # as on_submit reads it
        assert self.intake.check(request) is None
        fresh, _ = self.intake.accept(request, raw["tasks"])
        for live in fresh:  # what `admit` does once the submission is durable
            self.plane.core_submit(live, self.plane.now())

    async def finish(self, key: str) -> None:
        node, _, attempt = self.started[key]
        t = self.clock[0]
        report = wire.TaskFinished(sender=f"agent-{node}", seq=1, sent_at=t, node_id=node, task_id=key,
                                   attempt=attempt, outcome="ok", result=None,
                                   timings=wire.Timings(queued_at=t, received_at=t, started_at=t, finished_at=t))
        await self.reports.on_report(_msg(report))

    def decisions(self) -> dict:
        out = {}
        for key, (node, at_s, _) in self.started.items():
            out[key] = ("started", node, round(at_s - OFFSET_S, 6), self.defers.get(key, 0))
        for key, reason in self.rejected.items():
            out[key] = ("rejected", reason)
        return out


def _differences(live: dict, twin: dict) -> dict:
    return {k: (v, twin.get(k)) for k, v in live.items() if twin.get(k) != v}


@pytest.mark.parametrize("seed", [1, 3, 4])
async def test_the_twin_and_the_control_plane_decide_alike(natsd, seed, monkeypatch):
    fleet, tasks = _fleet(), _tasks(seed, 40)
    twin, finishes = _twin_decisions(fleet, tasks)
    assert any(d[0] == "started" and d[3] > 0 for d in twin.values()), "the events must make work wait"
    assert any(d[0] == "rejected" for d in twin.values()), "and include work no node may run"

    clock = [OFFSET_S - NEVER_S * 4]  # before the plane's start-up wait (silence_s) ends
    monkeypatch.setattr(ControlPlane, "now", staticmethod(lambda: clock[0]))
    nc = await nats.connect(natsd.url)
    try:
        live = _LiveDriver(nc, clock)
        clock[0] = OFFSET_S - 1.0
        await live.join(fleet)
        events = sorted([(t.arrival_s, 1, t.id) for t in tasks] + [(f, 0, key) for f, key in finishes])
        by_id = {t.id: t for t in tasks}
        for at_s, kind, key in events:
            await live.at(at_s)
            if kind == 0:
                assert key in live.started, (f"the twin finished {key}, which the control plane never started; "
                                             f"decisions that differ so far: {_differences(live.decisions(), twin)}")
                await live.finish(key)
            else:
                live.submit(by_id[key])
        await live.at(max(f for f, _ in finishes) + 1.0)
        assert live.decisions() == twin, _differences(live.decisions(), twin)
    finally:
        await nc.close()
