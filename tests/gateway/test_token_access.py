"""Only the node running an attempt can put words in its caller's mouth: against a real
nats-server with the cluster's generated authorization, an agent may publish token chunks
only beneath its own node (``heddle.v1.tokens.<node>.*``), and the gateway member hears them."""

from __future__ import annotations

import pytest

from heddle.events.jetstream import flush_interest
from heddle.events.natsd import start_nats_server
from heddle.live import protocol as p
from heddle.live.cluster.access import GATEWAY_USER
from heddle.live.cluster.roster import Roster
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
