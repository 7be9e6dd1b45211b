"""The caller gets its whole answer when the task's TaskCompleted reaches the gateway before
the agent's last chunks, or before any of them (the gateway follows chunks and events on
separate subscriptions, and a closing chunk is best effort): the gateway ends the answer from
the event's result, on both protocols. The same when a chunk is lost in transit (core NATS
delivers at most once): the answer has no hole, its rest comes from the event.

Real agents cannot be made to send in that order on demand, so the test plays the control
plane and the agent on a real nats-server, in front of a real `heddle gateway` process, and
sends their messages in the order it means to test.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import ClassVar, TypeVar

import httpx
import nats
import pytest

from heddle.events.envelopes import trusted_event, trusted_metadata
from heddle.events.jetstream import event_subject, flush_interest
from heddle.events.natsd import start_nats_server
from heddle.gateway.serve import READY_LINE
from heddle.live import protocol as p
from heddle.live.control.messages import Reply, SubmitRequest, decode_request, encode_message
from tests.gateway.gatewaykit import write_keys
from tests.live.clusterkit import WAIT_S, start_until_ready
from tests.live.llmstandin import WORDS

KEY = {"key": "sk-finn-000001", "owner": "finn", "privacy": "public"}
NODE = "finn-box"
PROMPT = [{"role": "user", "content": "Tell me a story about a lantern."}]
HEADERS = {"Authorization": "Bearer " + KEY["key"]}
T = TypeVar("T")


def chat(base_url: str, protocol: str) -> list[str]:
    """A streamed chat's body lines, to its end."""
    if protocol == "openai":
        path, body = "/v1/chat/completions", {"model": "llama-3.1-8b", "messages": PROMPT, "stream": True,
                                              "stream_options": {"include_usage": True}}
    else:
        path, body = "/api/chat", {"model": "llama-3.1-8b", "messages": PROMPT}
    with httpx.stream("POST", base_url + path, json=body, headers=HEADERS, timeout=WAIT_S) as reply:
        assert reply.status_code == 200
        return [line for line in reply.iter_lines() if line]


def text_of(lines: list[str], protocol: str) -> str:
    if protocol == "openai":
        events = [json.loads(line[6:]) for line in lines if line.startswith("data: {")]
        return "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e.get("choices"))
    return "".join(json.loads(line)["message"]["content"] for line in lines)


class Script:
    """Plays the control plane (answers a submission: placed on NODE) and then the agent and
    the log, sending each task's messages in the test's order."""

    resident = p.ResidentModel(model="llama-3.1-8b", quant="q4_k_m")
    result: ClassVar[dict] = {"text": "".join(WORDS), "prompt_tokens": 12, "output_tokens": len(WORDS),
              "finish_reason": "stop", "backend": "ollama", "model_used": "llama3.1:8b"}

    def __init__(self, url: str, order: list[str]) -> None:
        self.url, self.order = url, order
        self.ready, self.stop = threading.Event(), threading.Event()

    async def run(self) -> None:
        nc = await nats.connect(self.url)
        await nc.subscribe(p.SUBMIT, cb=self.on_submit)
        report = p.CapacityReport(
            sender="agent-" + NODE, seq=1, sent_at=time.time(), node_id=NODE, agent_id="agent-" + NODE,
            hostname=NODE, os="linux", arch="x86_64", chip="?", device="m2-ultra-76",
            memory=p.Memory(total_gb=192, free_gb=150, unified=True), cpu=p.Cpu(performance_cores=16, utilization=0.1),
            owner=KEY["owner"], slots=1, free_slots=1,
            resident_models=(self.resident,))
        self.nc = nc
        await flush_interest(nc)
        while not self.stop.is_set():  # a node reports every interval; the gateway lists it meanwhile
            await nc.publish(p.subject(p.CAPACITY, node=NODE), p.encode(report))
            self.ready.set()
            await asyncio.sleep(0.2)  # the report interval, not synchronisation
        await nc.close()

    async def on_submit(self, msg) -> None:
        request = decode_request(msg.data, SubmitRequest)
        task = request.tasks[0].task.id
        placed = {task: {"status": "placed", "node": NODE, "attempt": 1}}
        await self.nc.publish(msg.reply, encode_message(Reply(
            sender="control", seq=1, sent_at=time.time(), ok=True,
            detail={"job_id": request.job_id, "accepted": 1, "placement": placed})))
        await self.nc.flush()
        result = self.result
        for step in self.order:  # "text:A-B" (words A to B, a chunk each), "completed", "done"
            if step.startswith("text:"):
                first, last = map(int, step[5:].split("-"))
                for index in range(first, last):
                    await self.publish_chunk(task, index, text=WORDS[index])
            elif step == "done":
                await self.publish_chunk(task, len(WORDS), done=True, outcome="ok",
                                         usage={k: v for k, v in result.items() if k != "text"})
            elif step != "completed":
                await self.other_step(task, step)
            else:  # the log's TaskCompleted, as the journal appends it
                event = trusted_event(
                    event_id=os.urandom(8).hex(), event_type="TaskCompleted", aggregate_type="Task",
                    aggregate_id=task, aggregate_version=4,
                    payload={"result": result, "node": NODE, "attempt": 1},
                    metadata=trusted_metadata("bridge:ollama", os.urandom(8).hex(), None),
                    occurred_at_unix_s=time.time())
                await self.nc.publish(event_subject("Task", task, "TaskCompleted"), event.model_dump_json().encode())
            await self.nc.flush()  # each step reaches nats-server before the next is sent

    async def other_step(self, task: str, step: str) -> None:
        """A step of a subclass's own (tests/gateway/test_embeddings_transit.py)."""
        raise ValueError(f"unknown step {step!r}")

    async def publish_chunk(self, task: str, index: int, **fields) -> None:
        chunk = p.TokenChunk(sender="agent-" + NODE, seq=index + 2, sent_at=time.time(), node_id=NODE,
                             task_id=task, attempt=1, index=index, **fields)
        await self.nc.publish(p.subject(p.TOKENS, node=NODE, task=task), p.encode(chunk))


def played(script: Script, address: str, ask: Callable[[str], T]) -> T:
    """``ask(base URL)`` with ``script`` playing the control plane and the agent, once the
    gateway at ``address`` lists its node's model."""
    runner = threading.Thread(target=asyncio.run, args=(script.run(),))
    runner.start()
    try:
        assert script.ready.wait(WAIT_S)
        base = "http://" + address
        name = f"{script.resident.model}:{script.resident.quant}"
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline and name not in [
                m["name"] for m in httpx.get(base + "/api/tags", headers=HEADERS).json()["models"]]:
            time.sleep(0.05)  # waiting on the condition (the node listed), bounded
        return ask(base)
    finally:
        script.stop.set()
        runner.join()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("scripted")
    server = start_nats_server(tmp / "js")
    log: list[str] = []
    process = None
    try:
        process, line = start_until_ready(
            [sys.executable, "-m", "heddle.cli.gateway", "--nats", server.url, "--port", "0",
             "--keys", str(write_keys(tmp / "keys.yaml", [KEY]))], READY_LINE, log)
        yield server.url, line.split("http://")[1].split()[0]
    finally:
        if process is not None:
            process.kill()
            process.wait()
        server.stop()


@pytest.mark.parametrize("protocol", ["openai", "ollama"])
@pytest.mark.parametrize("order", [["text:0-3", "completed", "text:3-5", "done"],
                                   ["completed", "text:0-5", "done"],
                                   ["text:0-2", "text:3-5", "done", "completed"],
                                   ["text:1-5", "done", "completed"]],
                         ids=["completed before the last words", "completed before any word",
                              "a chunk lost mid-answer", "the first chunk lost"])
def test_a_completion_read_before_the_closing_chunk_still_gives_the_whole_answer(gateway, protocol, order):
    url, address = gateway
    script = Script(url, order)
    lines = played(script, address, lambda base: chat(base, protocol))
    assert text_of(lines, protocol) == "".join(WORDS)
    if protocol == "openai":
        assert lines[-1] == "data: [DONE]"
        assert json.loads(lines[-2][6:])["usage"]["completion_tokens"] == len(WORDS)
    else:
        assert json.loads(lines[-1])["done"] is True and json.loads(lines[-1])["eval_count"] == len(WORDS)


def test_a_chunk_lost_with_no_completion_to_follow_ends_the_answer_with_an_error(gateway):
    url, address = gateway
    script = Script(url, ["text:0-2", "text:3-5", "done"])  # no TaskCompleted: it was lost too
    lines = played(script, address, lambda base: chat(base, "openai"))
    # the words before the gap went out, none after it, and the stream ends saying why
    assert text_of(lines, "openai") == "".join(WORDS[:2])
    errors = [json.loads(line[6:])["error"] for line in lines if line.startswith("data: {\"error\"")]
    assert [e["code"] for e in errors] == ["output_lost"] and "lost in transit" in errors[0]["message"]
