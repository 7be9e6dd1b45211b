"""End to end: a real agent process with an Ollama backend (a stand-in server on 127.0.0.1)
reports the loaded model as resident, runs LLM tasks, fails one on a server fault with the
reason, and keeps running; with Claude, a billed call cut by the timeout reports its cost."""

from __future__ import annotations

import time

import pytest

from heddle.live import protocol as p
from heddle.models import catalog
from heddle.models.cost import api_cost_usd
from heddle.models.learned import load_records
from tests.live.conftest import WAIT_S
from tests.live.llmstandin import WORDS, Plan, StandIn, anthropic_stream
from tests.live.test_backends import wait_for


@pytest.fixture
def server():
    s = StandIn("llama3.1:8b-instruct-q4_K_M")
    yield s
    s.stop()


async def assign_llm(control, node: str, task_id: str, timeout_s: float | None = None,
                     executor: p.ExecutorSpec | None = None, **task) -> p.AssignReply:
    task = {"model": "llama-3.1-8b", "quant": "q4_k_m", **task}
    a = p.Assignment(
        **control._header(), node_id=node, attempt=0, payload=None, queued_at=time.time(),
        timeout_s=timeout_s, task=p.TaskSpec(id=task_id, kind="llm", **task),
        executor=executor or p.ExecutorSpec(kind="llm"),
    )
    reply = await control.nc.request(p.subject(p.ASSIGN, node=node), p.encode(a), timeout=WAIT_S)
    return p.decode(reply.data, p.AssignReply)


async def test_agent_runs_llm_work_on_ollama_and_survives_a_server_fault(natsd, control, spawn_agent, server,
                                                                      tmp_path):
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
    # each run that finished was recorded for `heddle models calibrate` (the failed one was not)
    path = tmp_path / "data" / "perf-records.jsonl"  # written after each report, off the loop
    await wait_for(lambda: path.exists() and path.read_text(encoding="utf-8").count("\n") >= 2)
    records = load_records(path)
    assert [(r.node, r.device, r.model, r.quant, r.backend) for r in records] == [
        ("llm1", "m1-8", "llama-3.1-8b", "q4_k_m", "ollama")] * 2
    assert records[0].prompt_tokens == 12 and records[0].output_tokens == len(WORDS)
    assert records[0].ttft_s > 0 and records[0].decode_tokens_per_s > 0


async def test_agent_charges_a_claude_call_cut_by_its_timeout_once(
        natsd, control, spawn_agent, server, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    spawn_agent(natsd.url, "cloud1", "--anthropic-base-url", server.url)
    await control.next("capacity", lambda m: m.node_id == "cloud1")
    offer = catalog.offer("claude-haiku-4.5")
    cloud = {"model": "claude-haiku-4.5", "quant": None, "account": "team"}

    assert (await assign_llm(control, "cloud1", "c-ok", **cloud)).accepted
    done = await control.finished("c-ok")
    assert done.outcome == "ok", done.reason
    assert done.result["cost_usd"] == pytest.approx(api_cost_usd(offer, 20, len(WORDS)))
    assert done.result["account"] == "team" and done.result["offer"] == "claude-haiku-4.5"

    # billed (message_start and one token arrived), then stuck until the agent's timeout
    server.plans.append(Plan(chunks=anthropic_stream("claude-haiku-4-5"), hold=server.hold(), hold_at=3))
    assert (await assign_llm(control, "cloud1", "c-cut", timeout_s=2.0, **cloud)).accepted
    cut = await control.finished("c-cut")
    assert cut.outcome == "failed" and cut.reason.startswith("timeout")
    assert cut.result["cost_usd"] == pytest.approx(api_cost_usd(offer, 20, 1))
    assert cut.result["finish_reason"] == "cancelled"


async def test_an_agent_with_a_claude_key_offers_the_cloud_and_calls_it_beside_its_slots(
        natsd, control, spawn_agent, server, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    spawn_agent(natsd.url, "relay", "--slots", "1", "--anthropic-base-url", server.url)
    report = await control.next("capacity", lambda m: m.node_id == "relay")
    assert report.cloud_offers == tuple(sorted(o for o in catalog.offers() if o.startswith("claude-")))
    # two held cloud calls (as the control plane sends a cloud placement) on a one-slot machine
    holds = [server.hold(), server.hold()]
    for hold in holds:
        server.plans.append(Plan(chunks=anthropic_stream("claude-haiku-4-5"), hold=hold, hold_at=0))
    cloud = p.ExecutorSpec(kind="llm").to_cloud("claude-haiku-4.5")
    for task_id in ("c1", "c2"):
        reply = await assign_llm(control, "relay", task_id, executor=cloud, model="llama-3.1-8b", account="team")
        assert reply.accepted and not reply.queued
    busy = await control.next("capacity", lambda m: m.node_id == "relay" and len(m.running) == 2)
    assert busy.free_slots == 1  # the machine's slot is still free for local work
    for hold in holds:
        hold.set()
    for task_id in ("c1", "c2"):
        done = await control.finished(task_id)
        assert done.outcome == "ok" and done.result["offer"] == "claude-haiku-4.5"
