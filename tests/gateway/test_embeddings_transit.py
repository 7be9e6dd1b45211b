"""An embedding request's vectors in transit (core NATS delivers at most once): all of them
in order, or a 502 saying some were lost, never a short answer; a closing chunk lost is made
good by the task's TaskCompleted (its counts; the vectors came before); an agent older than
protocol 1.10 (a closing chunk that counts no vectors) is a 502 saying so. The test plays the
control plane and the agent (tests/gateway/test_completion_first.py's `Script`) in front of a
real `heddle gateway` process."""

from __future__ import annotations

from typing import ClassVar

import httpx
import pytest

from heddle.live import protocol as p
from tests.gateway.test_completion_first import HEADERS, WORDS, Script, gateway, played  # noqa: F401 (a fixture)
from tests.live.clusterkit import WAIT_S

TEXTS = [f"text {i}" for i in range(len(WORDS))]  # one vector a chunk, as many chunks as a chat's words


def vector(i: int) -> list[float]:
    return [i + k / 8 for k in range(8)]


class EmbedScript(Script):
    """Steps: "vec:A-B" (the vectors of inputs A to B, a chunk each), "done", "completed"."""

    resident = p.ResidentModel(model="nomic-embed-text-v1.5", quant="f16")
    result: ClassVar[dict] = {"prompt_tokens": 12, "output_tokens": 0, "embeddings": len(TEXTS), "dimensions": 8,
              "backend": "ollama", "model_used": "nomic-embed-text"}

    async def other_step(self, task: str, step: str) -> None:
        first, last = map(int, step.removeprefix("vec:").split("-"))
        for index in range(first, last):
            await self.publish_chunk(task, index, embeddings=[vector(index)])


class OlderAgent(EmbedScript):
    """An agent older than 1.10: the payload's embed unread, it answers as a chat."""

    result: ClassVar[dict] = {k: v for k, v in EmbedScript.result.items() if k not in ("embeddings", "dimensions")}


def embed(url: str, address: str, order: list[str], kind: type[EmbedScript] = EmbedScript) -> httpx.Response:
    return played(kind(url, order), address, lambda base: httpx.post(
        base + "/api/embed", json={"model": "nomic-embed-text-v1.5", "input": TEXTS}, headers=HEADERS,
        timeout=WAIT_S))


@pytest.mark.parametrize("order", [["vec:0-5", "done", "completed"], ["vec:0-5", "completed"]],
                         ids=["all came", "the closing chunk lost"])
def test_the_vectors_come_whole_and_in_order(gateway, order):  # noqa: F811
    reply = embed(*gateway, order)
    assert reply.status_code == 200, reply.text
    assert reply.json()["embeddings"] == [vector(i) for i in range(len(TEXTS))]
    assert reply.json()["prompt_eval_count"] == 12


def test_a_lost_chunk_of_vectors_is_a_502_not_a_short_answer(gateway):  # noqa: F811
    reply = embed(*gateway, ["vec:0-2", "vec:3-5", "done", "completed"])
    assert reply.status_code == 502
    assert "4 of 5 vectors" in reply.json()["error"] and "lost in transit" in reply.json()["error"]


def test_an_agent_older_than_protocol_1_10_is_named(gateway):  # noqa: F811
    reply = embed(*gateway, ["text:0-5", "done", "completed"], OlderAgent)
    assert reply.status_code == 502 and "older than protocol" in reply.json()["error"]
