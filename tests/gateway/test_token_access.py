"""Only the node running an attempt can put words in its caller's mouth, and only it gets the
request's images: against a real nats-server with the cluster's generated authorization, an
agent may publish token chunks only beneath its own node (``heddle.v1.tokens.<node>.*``), and
the gateway member hears them; an agent may ask for images only beneath its own node
(``heddle.v1.images.<node>.*``), and the gateway answers only the (node, attempt) the control
plane placed the task on, the bytes in pieces under the message bound, checked against their
digest."""

from __future__ import annotations

import asyncio
import base64
import itertools
import time

import pytest

from heddle.events.jetstream import flush_interest
from heddle.events.natsd import start_nats_server
from heddle.gateway.images import ImageDesk, ImageSet
from heddle.live import protocol as p
from heddle.live.agent.executors import ExecutionError
from heddle.live.agent.images import with_images
from heddle.live.cluster.access import GATEWAY_USER
from heddle.live.cluster.roster import Roster
from tests.gateway.imagekit import data_url, png
from tests.live.test_cluster_access import members, received_in_order


@pytest.fixture
def cluster(tmp_path):
    roster = Roster.load(tmp_path)
    for node in ("node-a", "node-b"):
        roster.add(node, "agent")
    roster.add(GATEWAY_USER, "gateway")
    roster.save()
    server = start_nats_server(tmp_path / "js", config_file=roster.config_file)
    yield roster, server
    server.stop()


async def test_an_agent_publishes_token_chunks_only_as_its_own_node(cluster):
    roster, server = cluster
    async with members(roster, server, GATEWAY_USER, "node-a", "node-b") as (gateway, a, b):
        chunks = await gateway.nc.subscribe(p.subject(p.TOKENS, node="*", task="*"))
        await flush_interest(gateway.nc)  # the server has the interest before anyone publishes
        forged = p.subject(p.TOKENS, node="node-a", task="job-1-chat")
        await b.nc.publish(forged, b"forged by b")
        await b.nc.publish("heddle.v1.tokens.job-1-chat", b"forged on the 1.2 subject")
        await b.nc.publish(p.subject(p.TOKENS, node="node-b", task="job-2-chat"), b"b's own")
        # One connection's messages arrive in the order it sent them: had the server passed
        # a forged chunk on, it would be here, before b's own. (Nothing is assumed about the
        # order of two connections' messages: nats-py's flush() may return before the server
        # has read what was published ahead of it; see heddle.events.jetstream.flush_interest.)
        seen = await received_in_order(chunks, b"b's own")
        assert seen == [b"b's own"]
        await b.wait_error(f'permissions violation for publish to "{forged}"')
        await b.wait_error('permissions violation for publish to "heddle.v1.tokens.job-1-chat"')
        await a.nc.publish(forged, b"a's own")
        assert await received_in_order(chunks, b"a's own") == [b"a's own"]


TASK = "gw-alice-0001-chat"


def assignment(node: str, attempt: int, refs: list[dict]) -> p.Assignment:
    return p.Assignment(
        sender="control", seq=1, sent_at=time.time(), node_id=node, attempt=attempt,
        task=p.TaskSpec(id=TASK, kind="llm", model="gemma-3-12b", quant="q4_k_m", privacy="personal",
                        owner="alice"),
        executor=p.ExecutorSpec(kind="llm"), queued_at=time.time(),
        payload={"messages": [{"role": "user", "content": "what is it?", "images": [0]}], "images": refs})


async def test_only_the_placed_node_gets_a_tasks_images(cluster):
    roster, server = cluster
    images = ImageSet()
    images.add_url(data_url(png(64, 48, pad=1_200_000)), "messages.0.content.1")  # 3 pieces
    image = images.images[0]
    assert len(image.data) > 2 * p.IMAGE_CHUNK_BYTES
    async with members(roster, server, GATEWAY_USER, "node-a", "node-b") as (gateway, a, b):
        desk = ImageDesk(gateway.nc)
        await gateway.nc.subscribe(p.subject(p.IMAGES, node="*", task="*"), cb=desk.on_request)
        await flush_interest(gateway.nc)
        placements: set[tuple[str, int]] = set()
        desk.hold(TASK, [image], placements)
        seq = itertools.count(1).__next__

        # node-a asks before the gateway has heard of the placement: answered once it has
        early = asyncio.ensure_future(with_images(a.nc, "node-a", seq, assignment("node-a", 1, [image.ref()])))
        async with asyncio.timeout(20):
            while not any(desk.held[TASK].waiters):  # its first request waits for the placement
                await asyncio.sleep(0.01)
        placements.add(("node-a", 1))
        desk.placed(TASK)
        fetched = (await early).payload["messages"][0]["images"]
        assert [(i["media_type"], base64.b64decode(i["data"])) for i in fetched] == [("image/png", image.data)]

        # node-b may not ask under node-a's name: the server refuses the publish
        forged = p.subject(p.IMAGES, node="node-a", task=TASK)
        await b.nc.publish(forged, b"{}")
        await b.wait_error(f'permissions violation for publish to "{forged}"')
        # node-b asking as itself is refused: the task was not placed on it
        desk_wait, desk.placement_wait_s = desk.placement_wait_s, 0.2
        with pytest.raises(ExecutionError, match="attempt 1 was not placed on node node-b"):
            await with_images(b.nc, "node-b", seq, assignment("node-b", 1, [image.ref()]))
        desk.placement_wait_s = desk_wait
        # once the request has ended the gateway holds nothing: the placed node too is refused
        desk.release(TASK)
        with pytest.raises(ExecutionError, match="no images held here"):
            await with_images(a.nc, "node-a", seq, assignment("node-a", 1, [image.ref()]))
