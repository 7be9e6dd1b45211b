"""The gateway's submission to the control plane: the answer comes back with the placement;
with no control plane listening the caller gets a 503 that says so at once (not after the
submission's timeout). A real nats-server; the control plane is a subscriber that answers."""

from __future__ import annotations

import time

import nats
import pytest

from heddle.events.natsd import start_nats_server
from heddle.gateway.bridge import Bridge
from heddle.gateway.errors import GatewayError
from heddle.live import protocol as wire
from heddle.live.control.messages import (
    Reply,
    SubmitRequest,
    SubmitTask,
    decode_request,
    encode_message,
)
from heddle.models import Task, TaskId, TaskKind


def item(job: str) -> SubmitTask:
    task = Task(TaskId(f"{job}-chat"), TaskKind.PROCESSOR, cpu_seconds=1.0, memory_gb=0.5)
    return SubmitTask(task=wire.TaskSpec.from_task(task), executor=wire.ExecutorSpec(kind="sleep"))


@pytest.fixture
def server(tmp_path):
    server = start_nats_server(tmp_path / "js")
    yield server
    server.stop()


async def test_a_submission_gets_its_placement_back(server):
    control = await nats.connect(server.url)

    async def answer(msg) -> None:
        request = decode_request(msg.data, SubmitRequest)
        placement = {t.task.id: {"status": "placed", "node": "mac", "attempt": 1} for t in request.tasks}
        await msg.respond(encode_message(Reply(sender="control", seq=1, sent_at=time.time(), ok=True,
                                               detail={"job_id": request.job_id, "placement": placement})))

    await control.subscribe(wire.SUBMIT, cb=answer)
    await control.flush()
    bridge = await Bridge.connect(server.url)
    try:
        assert await bridge.submit("gw-a", "alice", item("gw-a")) == {"status": "placed", "node": "mac",
                                                                        "attempt": 1}
    finally:
        await bridge.close()
        await control.close()


async def test_no_control_plane_listening_is_a_503_that_says_so(server):
    bridge = await Bridge.connect(server.url)
    try:
        with pytest.raises(GatewayError) as caught:
            await bridge.submit("gw-b", "alice", item("gw-b"))
        assert caught.value.status == 503
        assert "no control plane is listening" in caught.value.message
    finally:
        await bridge.close()
