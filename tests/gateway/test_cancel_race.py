"""A caller that goes away in the very turn its request is placed: the gateway's wait for the
placement is cancelled all the same (a real Bridge on a real nats-server; the control plane
a subscriber that answers "waiting"). Python 3.11's ``asyncio.wait_for`` returned the
placement that came in that turn and dropped the cancel, and the request then ran to nobody,
holding its node's slot until the answer ended."""

from __future__ import annotations

import asyncio
import time

import nats
import pytest

from heddle.events import EventEnvelope
from heddle.events.natsd import start_nats_server
from heddle.gateway.bridge import Bridge, Follow
from heddle.gateway.keys import Rules
from heddle.gateway.run import TaskRun
from heddle.gateway.tasks import Chat, ModelRef
from heddle.live import protocol as wire
from heddle.live.control.messages import Reply, SubmitRequest, decode_request, encode_message
from heddle.models.ids import Privacy
from tests.live.clusterkit import WAIT_S


class _Watched(asyncio.Queue):
    """A follow's queue that says when the gateway starts waiting on it."""

    def __init__(self) -> None:
        super().__init__()
        self.waited = asyncio.Event()

    async def get(self):
        self.waited.set()
        return await super().get()


@pytest.fixture
def server(tmp_path):
    server = start_nats_server(tmp_path / "js")
    yield server
    server.stop()


def placed(task_id: str) -> EventEnvelope:
    return EventEnvelope(event_id="e2", event_type="TaskPlaced", aggregate_type="Task", aggregate_id=task_id,
                         aggregate_version=2, payload={"target": "mac", "attempt": 1},
                         metadata={"issued_by": "framework:scheduler"}, occurred_at_unix_s=time.time())


async def test_a_caller_gone_in_the_turn_its_request_is_placed_cancels_the_wait(server):
    control = await nats.connect(server.url)

    async def waiting(msg) -> None:  # no free place yet: the gateway waits for TaskPlaced
        request = decode_request(msg.data, SubmitRequest)
        placement = {t.task.id: {"status": "waiting", "reason": "busy", "retry_after_s": None}
                     for t in request.tasks}
        await msg.respond(encode_message(Reply(sender="control", seq=1, sent_at=time.time(), ok=True,
                                               detail={"job_id": request.job_id, "placement": placement})))

    await control.subscribe(wire.SUBMIT, cb=waiting)
    await control.flush()
    bridge = await Bridge.connect(server.url)
    watched = _Watched()

    def follow(task_id: str) -> Follow:
        bridge.follows[task_id] = Follow(task_id)
        bridge.follows[task_id].items = watched
        return bridge.follows[task_id]

    bridge.follow = follow
    rules = Rules(owner="bob", privacy=Privacy.PUBLIC, account=None, tier=None, deadline_s=None, max_wait_s=30)
    run = TaskRun(bridge, Chat(ModelRef("llama-3.1-8b", "llama-3.1-8b", "q4_k_m"),
                               [{"role": "user", "content": "hi"}], 8), rules, timeout_s=60)
    start = asyncio.ensure_future(run.start())
    try:
        async with asyncio.timeout(WAIT_S):
            await watched.waited.wait()
        # the placement arrives and the caller goes (its watcher cancels the request) in one turn
        watched.put_nowait(("event", placed(run.task_id)))
        start.cancel()
        with pytest.raises(asyncio.CancelledError):
            await start
    finally:
        run.close()
        await bridge.close()
        await control.close()
