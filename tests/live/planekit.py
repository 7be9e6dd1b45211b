"""The control plane in this process, its clock in the test's hand, fed through its own
handlers (capacity reports, submissions, task reports) on a real NATS connection it never
needs (nothing is opened): what it decides is read from its outbox and its books."""

from __future__ import annotations

from types import SimpleNamespace

import nats
import nats.errors

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
from heddle.models import Task, TaskId, TaskKind

START_S = 10_000.0
NEVER_S = 1e9
"""Report interval and task timeout: nodes go silent and attempts time out only when told."""
NODES = ("a", "b")
TASKS = 4
AFTER = {3: 0}  # task 3 waits for task 0


class Plane(ControlPlane):
    """A control plane whose clock the test sets."""

    clock_s = START_S

    def now(self) -> float:  # type: ignore[override]
        return self.clock_s


def capacity(node_id: str, seq: int, now_s: float) -> wire.CapacityReport:
    return wire.CapacityReport(
        sender=f"agent-{node_id}", seq=seq, sent_at=now_s, node_id=node_id, agent_id=f"agent-{node_id}",
        hostname=f"{node_id}.local", os="linux", arch="x86_64", chip="m2-ultra-76", device="m2-ultra-76",
        memory=wire.Memory(total_gb=64.0, free_gb=64.0, unified=True), cpu=wire.Cpu(performance_cores=8, utilization=0.0),
        owner="alice", slots=1, free_slots=1,
    )


def msg(message: object, subject: str = "") -> SimpleNamespace:
    async def ack() -> None:
        return None
    return SimpleNamespace(data=wire.encode(message), subject=subject, reply="", ack=ack)


class Driver:
    """The plane fed through its own handlers; remembers where each attempt was sent."""

    def __init__(self, nc, settings: ControlSettings | None = None) -> None:
        settings = settings or ControlSettings(policy="optimal", report_interval_s=NEVER_S, task_timeout_s=NEVER_S)
        self.plane = Plane(nc, settings)
        self.reports = reports._Reports(self.plane)
        self.intake = intake._Intake(self.plane)
        self.seq = {node: 0 for node in NODES}
        self.sent: dict[tuple[str, int], str] = {}  # (task, attempt) -> node

    async def join(self, node_id: str) -> None:
        self.seq[node_id] += 1
        report = capacity(node_id, self.seq[node_id], self.plane.now())
        await self.reports.on_capacity(msg(report, wire.subject(wire.CAPACITY, node=node_id)))

    async def start(self) -> None:
        self.plane.clock_s += self.plane.settings.silence_s + 1  # past the start-up wait...
        for node_id in NODES:
            await self.join(node_id)
        self.advance(0.0)  # ...which ends at the watchdog's next look

    def advance(self, seconds: float) -> None:
        self.plane.clock_s += seconds
        self.plane.check_time(self.plane.now())
        self.note_sent()

    def note_sent(self) -> None:
        for assignment in self.plane._outbox:
            self.sent[(assignment.task.id, assignment.attempt)] = assignment.node_id
        self.plane._outbox.clear()  # (no dispatcher runs: the test delivers, or not)

    def submit(self, i: int) -> None:
        after = (f"job-t{AFTER[i]}",) if i in AFTER else ()
        task = Task(TaskId(f"job-t{i}"), TaskKind.PROCESSOR, cpu_seconds=10.0, memory_gb=0.5)
        item = SubmitTask(task=wire.TaskSpec.from_task(task), executor=wire.ExecutorSpec(kind="sleep"), after=after)
        request = SubmitRequest(sender="user", seq=1, sent_at=self.plane.now(), job_id="job", tasks=[item])
        request, raw = decode_request_raw(encode_message(request), SubmitRequest)  # as on_submit reads it
        assert self.intake.check(request) is None
        fresh, _ = self.intake.accept(request, raw["tasks"])
        for live in fresh:  # what `admit` does once the submission is durable
            self.plane.core_submit(live, self.plane.now())
        self.note_sent()

    def not_acknowledged(self, key: str) -> None:
        """The assignment of the current attempt timed out (the real path of a late ack)."""
        live = self.plane.tasks.get(key)
        if live is not None and live.node:
            assignment = SimpleNamespace(node_id=live.node, task=SimpleNamespace(id=key), attempt=live.attempt)
            self.plane._undelivered([assignment], nats.errors.TimeoutError())
        self.note_sent()

    def finished(self, key: str, attempt: int, outcome: str) -> None:
        """The agent that ran ``attempt`` reports it (however late)."""
        node = self.sent[(key, attempt)]
        t = self.plane.now()
        report = wire.TaskFinished(sender=f"agent-{node}", seq=1, sent_at=t, node_id=node, task_id=key,
                                   attempt=attempt, outcome=outcome, result=None, reason=outcome,
                                   timings=wire.Timings(queued_at=t, received_at=t, started_at=t, finished_at=t))
        self.reports.apply(report)
        self.note_sent()

    def started(self, key: str, attempt: int) -> None:
        node = self.sent[(key, attempt)]
        t = self.plane.now()
        self.reports.apply(wire.TaskStarted(sender=f"agent-{node}", seq=1, sent_at=t, node_id=node, task_id=key,
                                            attempt=attempt, timings=wire.Timings(queued_at=t, received_at=t,
                                                                                  started_at=t)))

    def status(self, key: str) -> str | None:
        return self.plane.state_of(key)

    def check_books(self) -> None:
        """The core holds exactly the control plane's unfinished work that it handed over."""
        plane, core = self.plane, self.plane.core
        in_core = set(core.waiting_keys()) | set(core.running_keys()) | set(core._held)
        retired = in_core - set(plane.tasks)
        assert not retired, f"the core holds tasks the control plane retired: {sorted(retired)}"
        running = {k for k, live in plane.tasks.items() if live.node and live.in_core}
        assert running == set(core.running_keys()), "the core runs what the plane sent, no more"
        unfinished = {k for k, live in plane.tasks.items() if live.in_core and not live.terminal}
        assert unfinished <= in_core, f"lost by the core: {sorted(unfinished - in_core)}"
        waiting = {k: self.status(k) for k in core.waiting_keys()}
        assert set(waiting.values()) <= {"submitted"}, f"the log says waiting work is elsewhere: {waiting}"


async def plane_driver(url: str, settings: ControlSettings | None = None) -> tuple[Driver, object]:
    nc = await nats.connect(url)
    driver = Driver(nc, settings)
    await driver.start()
    return driver, nc
