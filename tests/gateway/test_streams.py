"""Many streams through the gateway at once: each answer reaches its caller whole and in
order. Every stream's chunks reach the gateway on one subscription, interleaved with the
others', and are sorted out there by task. A cluster of its own (one agent of many slots
behind a stand-in that paces each stream), every part a separate process, real HTTP on
127.0.0.1."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.gateway.gatewaykit import GatewayCluster, one_node
from tests.live.clusterkit import WAIT_S
from tests.live.llmstandin import Plan, ollama_stream

KEY = {"key": "sk-dave-000001", "owner": "dave", "privacy": "public"}
NODE = "dave-box"
STREAMS = 24
"""Concurrent streams (the agent has a slot for each)."""
WORDS = 40
"""Pieces per answer, most of them a chunk of their own (the stand-in paces them)."""


@pytest.fixture(scope="module")
def streams(tmp_path_factory):
    with one_node(tmp_path_factory.mktemp("streams"), NODE, KEY, STREAMS) as cluster:
        yield cluster, cluster.standins[NODE]


def words_of(tag: str) -> list[str]:
    return [f" {tag}.{i}" for i in range(WORDS)]


def chat(cluster: GatewayCluster, tag: str) -> str:
    """One streamed chat asking for ``tag``'s words: the text its caller got."""
    text = ""
    with httpx.stream("POST", cluster.base_url + "/v1/chat/completions", timeout=WAIT_S,
                      headers={"Authorization": "Bearer " + KEY["key"]},
                      json={"model": "llama-3.1-8b", "stream": True,
                            "messages": [{"role": "user", "content": tag}]}) as reply:
        assert reply.status_code == 200
        for line in reply.iter_lines():
            if line.startswith("data: {"):
                event = json.loads(line[6:])
                assert "error" not in event, event
                text += "".join(c["delta"].get("content") or "" for c in event["choices"])
    return text


def test_many_streams_at_once_each_get_their_whole_answer_in_order(streams):
    cluster, standin = streams
    # each stream's words name it, paced as a model server sends them: the streams' chunks
    # reach the gateway interleaved
    standin.planner = lambda path, body: Plan(
        chunks=ollama_stream(body["model"], words=words_of(body["messages"][-1]["content"])),
        delays=[0.003] * (WORDS + 1))
    tags = [f"s{i}" for i in range(STREAMS)]
    for _ in range(2):  # twice: the second round's tasks come after the first's on the same slots
        with ThreadPoolExecutor(STREAMS) as pool:
            texts = list(pool.map(lambda tag: chat(cluster, tag), tags))
        assert texts == ["".join(words_of(tag)) for tag in tags]
