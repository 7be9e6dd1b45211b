"""A gateway's submission (``early_placement``) sends its assignment from the turn that placed
it, before the control plane's dispatcher runs; other submissions' assignments wait for the
dispatcher, which sends each node's together. Either way an assignment nobody answers is
lost and placed again: no agent listening (the node gets no work until it reports again), or
no acknowledgement in time.

The control plane runs in this process with no dispatcher (planekit), fed through its own
handlers; the agents are subscribers on a real nats-server that accept what they are sent.
"""

from __future__ import annotations

import asyncio
import time

import nats

from heddle.live import protocol as wire
from heddle.live.control.messages import SubmitRequest, SubmitTask, encode_message
from heddle.live.control.settings import ControlSettings
from heddle.models import NodeId, Task, TaskId, TaskKind
from tests.live.conftest import WAIT_S
from tests.live.planekit import NEVER_S, NODES, plane_driver
from tests.live.test_control_memory import until


def request(job: str, *, early: bool) -> SubmitRequest:
    task = Task(TaskId(f"{job}-t0"), TaskKind.PROCESSOR, cpu_seconds=10.0, memory_gb=0.5)
    item = SubmitTask(task=wire.TaskSpec.from_task(task), executor=wire.ExecutorSpec(kind="sleep"))
    return SubmitRequest(sender="gateway", seq=1, sent_at=time.time(), job_id=job, tasks=[item],
                         placement=True, fresh_job=True, early_placement=early)


async def submit(driver, job: str, *, early: bool) -> None:
    data = encode_message(request(job, early=early))
    await driver.intake.on_submit(type("Msg", (), {"data": data, "subject": wire.SUBMIT, "reply": ""}))


def lost_attempts(driver) -> list[tuple[str, str]]:
    """(task, reason) of every attempt the plane records lost from now on (a list it fills)."""
    lost: list[tuple[str, str]] = []
    record = driver.plane.record

    def spy(task_id, command, payload, issued_by, **extra):
        if command == "FailTask":
            lost.append((task_id, payload["reason"]))
        return record(task_id, command, payload, issued_by, **extra)

    driver.plane.record = spy
    return lost


async def test_a_gateway_submission_sends_its_assignment_with_its_placement(natsd):
    driver, nc = await plane_driver(natsd.url)
    agents = await nats.connect(natsd.url)
    received: list[tuple[str, int, str]] = []

    async def agent(msg) -> None:
        a = wire.decode(msg.data, wire.Assignment)
        received.append((a.task.id, a.attempt, a.node_id))
        await msg.respond(wire.encode(wire.AssignReply(
            sender=f"agent-{a.node_id}", seq=1, sent_at=time.time(), node_id=a.node_id,
            task_id=a.task.id, attempt=a.attempt, accepted=True)))

    try:
        for node in NODES:
            await agents.subscribe(wire.subject(wire.ASSIGN, node=node), cb=agent)
        await agents.flush()
        plane = driver.plane
        await submit(driver, "plain", early=False)  # waits in the outbox for the dispatcher (none runs here)
        [waiting] = plane._outbox
        assert waiting.task.id == "plain-t0"

        await submit(driver, "gw", early=True)  # leaves at once, and takes what waited with it
        assert plane._outbox == []

        async def both_arrived() -> bool:
            return sorted(task for task, _, _ in received) == ["gw-t0", "plain-t0"]

        await until(both_arrived, "the agents receiving both assignments without a dispatcher")
        live = plane.tasks["gw-t0"]

        async def acknowledged() -> bool:
            return live.acked

        await until(acknowledged, "the agent's acknowledgement read as for any assignment")
        assert ("gw-t0", live.attempt, live.node) in received
    finally:
        await asyncio.wait_for(agents.close(), WAIT_S)
        await nc.close()


async def test_an_assignment_no_agent_listens_for_is_lost_and_its_node_skipped(natsd):
    driver, nc = await plane_driver(natsd.url)
    try:
        lost = lost_attempts(driver)
        await submit(driver, "gw", early=True)
        plane = driver.plane
        first = plane.tasks["gw-t0"].node

        async def tried() -> bool:
            return bool(lost)

        await until(tried, "the attempt lost")
        assert lost == [("gw-t0", f"no agent listening on {first}")]
        # no work goes to a node nobody listens on until it reports again: the retry goes elsewhere
        assert plane.fleet.nodes[NodeId(first)].unreachable
        [retry] = plane._outbox  # (the dispatcher would send it: none runs here)
        assert (retry.task.id, retry.attempt) == ("gw-t0", 2) and retry.node_id != first
    finally:
        await nc.close()


async def test_an_assignment_not_acknowledged_in_time_is_lost_and_placed_again(natsd):
    settings = ControlSettings(policy="optimal", report_interval_s=NEVER_S, task_timeout_s=NEVER_S,
                               ack_timeout_s=0.3)
    driver, nc = await plane_driver(natsd.url, settings)
    agents = await nats.connect(natsd.url)
    try:
        for node in NODES:  # listening, never answering
            await agents.subscribe(wire.subject(wire.ASSIGN, node=node))
        await agents.flush()
        lost = lost_attempts(driver)
        await submit(driver, "gw", early=True)
        first = driver.plane.tasks["gw-t0"].node

        async def timed_out() -> bool:
            return bool(lost)

        await until(timed_out, "the unanswered assignment lost")
        assert lost[0] == ("gw-t0", f"assignment not acknowledged by {first}")
        assert not driver.plane.fleet.nodes[NodeId(first)].unreachable  # someone listens there
    finally:
        await asyncio.wait_for(agents.close(), WAIT_S)
        await nc.close()
