"""A gateway's submission (``early_placement``) sends its assignment from the turn that placed
it, before the control plane's dispatcher runs; other submissions' assignments wait for the
dispatcher, which sends each node's together.

The control plane runs in this process with no dispatcher (planekit), fed through its own
handlers; the agents are subscribers on a real nats-server that accept what they are sent.
"""

from __future__ import annotations

import asyncio
import time

import nats

from heddle.live import protocol as wire
from heddle.live.control.messages import SubmitRequest, SubmitTask, encode_message
from heddle.models import Task, TaskId, TaskKind
from tests.live.conftest import WAIT_S
from tests.live.planekit import NODES, plane_driver
from tests.live.test_control_memory import until


def request(job: str, *, early: bool) -> SubmitRequest:
    task = Task(TaskId(f"{job}-t0"), TaskKind.PROCESSOR, cpu_seconds=10.0, memory_gb=0.5)
    item = SubmitTask(task=wire.TaskSpec.from_task(task), executor=wire.ExecutorSpec(kind="sleep"))
    return SubmitRequest(sender="gateway", seq=1, sent_at=time.time(), job_id=job, tasks=[item],
                         placement=True, fresh_job=True, early_placement=early)


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

        async def submit(job: str, early: bool) -> None:
            data = encode_message(request(job, early=early))
            await driver.intake.on_submit(type("Msg", (), {"data": data, "subject": wire.SUBMIT, "reply": ""}))

        await submit("plain", early=False)  # waits in the outbox for the dispatcher (none runs here)
        [waiting] = plane._outbox
        assert waiting.task.id == "plain-t0"

        await submit("gw", early=True)  # leaves at once, and takes what waited with it
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
