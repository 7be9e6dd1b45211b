"""An agent asked to stream an LLM attempt's output publishes each piece as it is produced
(protocol `TOKENS`), in order, then a closing chunk with the usage; without the option it
publishes nothing."""

from __future__ import annotations

import asyncio
import time

import pytest

from heddle.live import protocol as p
from tests.live.conftest import WAIT_S
from tests.live.llmstandin import THOUGHTS, WORDS, Plan, StandIn, ollama_stream


@pytest.fixture
def server():
    s = StandIn("llama3.1:8b-instruct-q4_K_M")
    yield s
    s.stop()


async def assign(control, node: str, task_id: str, stream: bool, model: str = "llama-3.1-8b",
                 quant: str = "q4_k_m", **payload) -> p.AssignReply:
    options = {p.STREAM_TOKENS_OPTION: True} if stream else {}
    a = p.Assignment(
        **control._header(), node_id=node, attempt=2,
        payload={"prompt": "hi", "max_tokens": 9, **payload}, queued_at=time.time(),
        task=p.TaskSpec(id=task_id, kind="llm", model=model, quant=quant),
        executor=p.ExecutorSpec(kind="llm", options=options),
    )
    reply = await control.nc.request(p.subject(p.ASSIGN, node=node), p.encode(a), timeout=WAIT_S)
    return p.decode(reply.data, p.AssignReply)


async def test_agent_streams_an_attempts_output_as_it_is_produced(natsd, control, spawn_agent, server):
    spawn_agent(natsd.url, "tok1", "--ollama-url", server.url)
    await control.next("capacity", lambda m: m.node_id == "tok1" and m.resident_models)
    chunks: asyncio.Queue = asyncio.Queue()

    async def on_chunk(msg):
        await chunks.put(p.decode(msg.data, p.TokenChunk))

    await control.nc.subscribe(p.subject(p.TOKENS, node="tok1", task="*"), cb=on_chunk)
    held = server.hold()
    server.plans.append(Plan(chunks=ollama_stream(server.model), hold=held, hold_at=3))
    assert (await assign(control, "tok1", "s-1", stream=True)).accepted

    # the first three pieces arrive while the server still holds back the rest (pieces read
    # together may come in one chunk)
    first = [await asyncio.wait_for(chunks.get(), WAIT_S)]
    while "".join(c.text for c in first) != "".join(WORDS[:3]):
        first.append(await asyncio.wait_for(chunks.get(), WAIT_S))
    assert [c.index for c in first] == list(range(len(first)))
    assert {(c.task_id, c.attempt, c.node_id) for c in first} == {("s-1", 2, "tok1")}
    held.set()
    rest = [await asyncio.wait_for(chunks.get(), WAIT_S)]
    while not rest[-1].done:
        rest.append(await asyncio.wait_for(chunks.get(), WAIT_S))
    assert "".join(c.text for c in rest) == "".join(WORDS[3:])
    end = rest[-1]
    assert end.outcome == "ok" and end.index == len(first) + len(rest) - 1 and not end.text
    assert end.usage["output_tokens"] == len(WORDS) and end.usage["model_used"] == server.model
    assert "text" not in end.usage

    # without the option the output goes only into the report
    assert (await assign(control, "tok1", "s-2", stream=False)).accepted
    assert (await control.finished("s-2")).outcome == "ok"
    assert chunks.empty()


async def test_a_reasoning_models_thinking_streams_in_chunks_of_its_own_before_the_text(
        natsd, control, spawn_agent):
    server = StandIn("gpt-oss:20b")
    server.tags[0]["details"] = {"parameter_size": "20.9B", "quantization_level": "MXFP4"}
    try:
        spawn_agent(natsd.url, "tok2", "--ollama-url", server.url)
        await control.next("capacity", lambda m: m.node_id == "tok2" and m.resident_models)
        raw: asyncio.Queue = asyncio.Queue()

        async def on_chunk(msg):
            await raw.put(msg.data)

        await control.nc.subscribe(p.subject(p.TOKENS, node="tok2", task="*"), cb=on_chunk)
        assert (await assign(control, "tok2", "r-1", True, "gpt-oss-20b", "mxfp4", think="high")).accepted
        data = [await asyncio.wait_for(raw.get(), WAIT_S)]
        while not p.decode(data[-1], p.TokenChunk).done:
            data.append(await asyncio.wait_for(raw.get(), WAIT_S))
        chunks = [p.decode(d, p.TokenChunk) for d in data]
        assert server.requests[-1][2]["think"] == "high"
        assert [c.index for c in chunks] == list(range(len(chunks)))
        thinking = [c for c in chunks if c.thinking is not None]
        assert chunks[:len(thinking)] == thinking and all(c.text == "" for c in thinking)
        assert "".join(c.thinking for c in thinking) == "".join(THOUGHTS)
        assert "".join(c.text for c in chunks) == "".join(WORDS)
        # a chunk without thinking has no such field: the bytes of a 1.10 chunk
        assert not any(b'"thinking"' in d for d, c in zip(data, chunks, strict=True) if c.thinking is None)
        end = chunks[-1]
        assert end.usage["reasoning_tokens"] == len(THOUGHTS)
        assert end.usage["output_tokens"] == len(THOUGHTS) + len(WORDS)
        assert "thinking" not in end.usage  # the caller has it already
    finally:
        server.stop()
