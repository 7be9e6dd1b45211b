"""End to end: a real agent process with an Ollama backend (a stand-in server on 127.0.0.1)
reports the loaded model as resident, runs LLM tasks, fails one on a server fault with the
reason, and keeps running."""

from __future__ import annotations

import time

import pytest

from heddle.live import protocol as p
from tests.live.conftest import WAIT_S
from tests.live.llmstandin import WORDS, Plan, StandIn


@pytest.fixture
def server():
    s = StandIn("llama3.1:8b-instruct-q4_K_M")
    yield s
    s.stop()


async def assign_llm(control, node: str, task_id: str, **task) -> p.AssignReply:
    a = p.Assignment(
        **control._header(), node_id=node, attempt=0, payload=None, queued_at=time.time(),
        task=p.TaskSpec(id=task_id, kind="llm", model="llama-3.1-8b", quant="q4_k_m", **task),
        executor=p.ExecutorSpec(kind="llm"),
    )
    reply = await control.nc.request(p.subject(p.ASSIGN, node=node), p.encode(a), timeout=WAIT_S)
    return p.decode(reply.data, p.AssignReply)


async def test_agent_runs_llm_work_on_ollama_and_survives_a_server_fault(natsd, control, spawn_agent, server):
    agent = spawn_agent(natsd.url, "llm1", "--ollama-url", server.url)
    resident = p.ResidentModel(model="llama-3.1-8b", quant="q4_k_m")
    await control.next("capacity", lambda m: m.node_id == "llm1" and resident in m.resident_models)

    assert (await assign_llm(control, "llm1", "t-ok", prompt_tokens=100, output_tokens=20)).accepted
    done = await control.finished("t-ok")
    assert done.outcome == "ok", done.reason
    assert done.result["text"] == "".join(WORDS) and done.result["output_tokens"] == len(WORDS)
    assert done.result["model_used"] == server.model and done.result["cost_usd"] == 0.0
    assert done.timings.started_at <= done.timings.first_token_at <= done.timings.finished_at
    assert server.requests[-1][2]["options"]["num_predict"] == 20

    server.plans.append(Plan(status=500, body=b'{"error": "llama runner process has terminated"}'))
    assert (await assign_llm(control, "llm1", "t-fault")).accepted
    failed = await control.finished("t-fault")
    assert failed.outcome == "failed"
    assert "HTTP 500" in failed.reason and "llama runner process has terminated" in failed.reason

    assert (await assign_llm(control, "llm1", "t-after")).accepted  # still running, still serving
    assert (await control.finished("t-after")).outcome == "ok"
    assert agent.process.poll() is None
