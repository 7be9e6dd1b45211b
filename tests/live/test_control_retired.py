"""The control plane and the scheduling core agree on which tasks are unfinished: the core
never holds a task the control plane has retired, and every unfinished task the control
plane handed to the core is still in it (waiting, held or running).

The case that broke it: an attempt the control plane had declared lost (its assignment was
not acknowledged in time on a loaded machine, while its node drained) finished after all.
Its late report completed the task, which left the working set while its retry still waited
in the core; the next offer asked for a task nobody knew (KeyError in the watchdog).

The control plane runs in this process with its clock in the test's hand, on a real NATS
connection it never needs (nothing is opened), fed through its own report handlers.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import nats
import nats.errors
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

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
from heddle.models import NodeId, Task, TaskId, TaskKind

START_S = 10_000.0
NEVER_S = 1e9
"""Report interval and task timeout: nodes go silent and attempts time out only when told."""
NODES = ("a", "b")
TASKS = 4
AFTER = {3: 0}  # task 3 waits for task 0


class _Plane(ControlPlane):
    """A control plane whose clock the test sets."""

    clock_s = START_S

    def now(self) -> float:  # type: ignore[override]
        return self.clock_s


def _capacity(node_id: str, seq: int, now_s: float) -> wire.CapacityReport:
    return wire.CapacityReport(
        sender=f"agent-{node_id}", seq=seq, sent_at=now_s, node_id=node_id, agent_id=f"agent-{node_id}",
        hostname=f"{node_id}.local", os="linux", arch="x86_64", chip="m2-ultra-76", device="m2-ultra-76",
        memory=wire.Memory(total_gb=64.0, free_gb=64.0, unified=True), cpu=wire.Cpu(performance_cores=8, utilization=0.0),
        owner="alice", slots=1, free_slots=1,
    )


def _msg(message: object, subject: str = "") -> SimpleNamespace:
    async def ack() -> None:
        return None
    return SimpleNamespace(data=wire.encode(message), subject=subject, reply="", ack=ack)


class _Driver:
    """The plane fed through its own handlers; remembers where each attempt was sent."""

    def __init__(self, nc) -> None:
        settings = ControlSettings(policy="optimal", report_interval_s=NEVER_S, task_timeout_s=NEVER_S)
        self.plane = _Plane(nc, settings)
        self.reports = reports._Reports(self.plane)
        self.intake = intake._Intake(self.plane)
        self.seq = {node: 0 for node in NODES}
        self.sent: dict[tuple[str, int], str] = {}  # (task, attempt) -> node

    async def join(self, node_id: str) -> None:
        self.seq[node_id] += 1
        report = _capacity(node_id, self.seq[node_id], self.plane.now())
        await self.reports.on_capacity(_msg(report, wire.subject(wire.CAPACITY, node=node_id)))

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


async def _driver(url: str) -> tuple[_Driver, object]:
    nc = await nats.connect(url)
    driver = _Driver(nc)
    await driver.start()
    return driver, nc


async def test_a_lost_attempt_that_finishes_while_its_retry_waits_completes_the_task(natsd):
    """The reported bug, step by step: lost while its node drains and the other is busy,
    then its report."""
    driver, nc = await _driver(natsd.url)
    try:
        plane = driver.plane
        for i in (0, 1, 3):  # t0 and t1 run, one per node; t3 waits for t0
            driver.submit(i)
        t0_node = driver.sent[("job-t0", 1)]
        assert {driver.sent[("job-t1", 1)], t0_node} == set(NODES)
        plane.drain(t0_node, None)
        driver.not_acknowledged("job-t0")  # the loaded agent acked too late: attempt 1 is lost...
        assert plane.core.waiting_keys() == ["job-t0"]  # ...and t0 waits for a free slot
        driver.finished("job-t0", 1, "ok")  # but attempt 1 ran: its report comes in
        assert driver.status("job-t0") == "completed"
        driver.check_books()
        driver.advance(plane.core.next_tick_s() - plane.now())  # the watchdog's re-offer
        driver.check_books()
        driver.finished("job-t1", 1, "ok")  # a slot frees: t3 runs there, t0 does not run again
        assert set(driver.sent) == {("job-t0", 1), ("job-t1", 1), ("job-t3", 1)}
        driver.finished("job-t3", 1, "ok")
        assert [driver.status(f"job-t{i}") for i in (0, 1, 3)] == ["completed"] * 3
        driver.check_books()
    finally:
        await nc.close()


OPS = st.one_of(
    st.tuples(st.just("submit"), st.integers(0, TASKS - 1)),
    st.tuples(st.just("unacked"), st.integers(0, TASKS - 1)),
    st.tuples(st.just("finished"), st.integers(0, TASKS - 1), st.integers(0, 2),
              st.sampled_from(["ok", "failed", "cancelled"])),
    st.tuples(st.just("started"), st.integers(0, TASKS - 1), st.integers(0, 2)),
    st.tuples(st.just("cancel"), st.integers(0, TASKS - 1)),
    st.tuples(st.just("drain"), st.sampled_from(NODES)),
    st.tuples(st.just("silent"), st.sampled_from(NODES)),
    st.tuples(st.just("join"), st.sampled_from(NODES)),
    st.tuples(st.just("tick"), st.just(0)),
)


async def _replay(url: str, ops: list[tuple]) -> None:
    driver, nc = await _driver(url)
    plane = driver.plane
    try:
        for op, arg, *rest in ops:
            key = f"job-t{arg}" if isinstance(arg, int) else ""
            if op == "submit" and plane.state_of(key) is None \
                    and (arg not in AFTER or plane.state_of(f"job-t{AFTER[arg]}") is not None):
                driver.submit(arg)
            elif op == "unacked":
                driver.not_acknowledged(key)
            elif op == "finished" and (live := plane.tasks.get(key)) is not None:
                attempt = live.attempt - rest[0]  # the current attempt or an older one
                if (key, attempt) in driver.sent:
                    driver.finished(key, attempt, rest[1])
            elif op == "started" and (live := plane.tasks.get(key)) is not None \
                    and (key, live.attempt - rest[0]) in driver.sent:
                driver.started(key, live.attempt - rest[0])
            elif op == "cancel" and key in plane.tasks:
                plane.cancel(key, "user")
            elif op == "drain":
                plane.drain(arg, None)
            elif op == "silent" and not plane.fleet.nodes[NodeId(arg)].lost:
                plane.node_gone(NodeId(arg), "missed 3 reports", left=False)
            elif op == "join":
                await driver.join(arg)
            elif op == "tick" and (due := plane.core.next_tick_s()) is not None:
                driver.advance(max(due - plane.now(), 0.0))
            driver.note_sent()
            driver.check_books()
    finally:
        await nc.close()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(OPS, max_size=30))
@example(ops=[("submit", 0), ("submit", 1), ("silent", "a"), ("finished", 0, 0, "ok")])  # the bug
@example(ops=[("submit", 0), ("submit", 1), ("silent", "a"), ("started", 0, 0)])  # its twin
def test_the_core_and_the_control_plane_agree_on_unfinished_work(natsd, ops):
    asyncio.run(_replay(natsd.url, ops))
