"""Faults of LLM servers, each on real HTTP: the attempt fails with the reason, or is retried
within the attempt when a 429 asks for a short wait; a billed Claude call reports its cost
once, in the failure's result."""

from __future__ import annotations

import json
import time

import pytest

from heddle.live.agent.executors import ExecutionError, Progress
from heddle.live.backends import BackendTimeouts, ClaudeExecutor, OllamaExecutor, OpenAIExecutor
from heddle.models import catalog
from heddle.models.cost import api_cost_usd
from tests.live.clusterkit import WAIT_S
from tests.live.llmstandin import (
    WORDS,
    Plan,
    StandIn,
    anthropic_stream,
    ollama_stream,
    openai_stream,
)
from tests.live.test_backends import assignment

pytestmark = pytest.mark.filterwarnings("error:The model 'claude-:DeprecationWarning")  # an id past its end-of-life fails

SHORT = BackendTimeouts(read_s=0.3, max_retry_wait_s=5.0)
"""Only where a read timeout is what the test is about (a held server): it fires at once."""
PATIENT = BackendTimeouts(max_retry_wait_s=5.0)
"""Every other test: the stand-in answers from this process, which under load may take longer
than 0.3 s (discovery timed out so in a full run, and the fault under test never came)."""
MODEL = "llama3.1:8b-instruct-q4_K_M"
PROTOCOLS = {
    "ollama": (OllamaExecutor, ollama_stream),
    "openai": (OpenAIExecutor, openai_stream),
}


@pytest.fixture
def server():
    s = StandIn(MODEL)
    yield s
    s.stop()


@pytest.fixture(params=sorted(PROTOCOLS))
def protocol(request):
    return request.param


def executor_for(protocol: str, server: StandIn, timeouts: BackendTimeouts):
    make, stream = PROTOCOLS[protocol]
    executor = make(server.url, timeouts=timeouts)
    executor.stream = stream  # the test's stream builder for this protocol
    return executor


@pytest.fixture
async def local(protocol, server):
    executor = executor_for(protocol, server, PATIENT)
    yield executor
    await executor.close()


async def fails(executor, match: str, **task):
    with pytest.raises(ExecutionError, match=match) as caught:
        await executor.run(assignment(**task), Progress())
    return caught.value


async def test_slow_first_token_times_out_with_the_reason(protocol, server):
    local = executor_for(protocol, server, SHORT)
    try:
        deadline = time.monotonic() + WAIT_S
        while local.discovered_at is None:  # the inventory first: its answer may take longer
            assert time.monotonic() < deadline, local.discovery_error
            await local.refresh()
        server.plans.append(Plan(chunks=local.stream(MODEL), hold=server.hold()))
        await fails(local, "no first token \\(read timeout\\)")
    finally:
        await local.close()


async def test_connection_cut_mid_stream(local, server):
    server.plans.append(Plan(chunks=local.stream(MODEL), cut_after=3))
    await fails(local, "connection lost mid-stream after 3 chunks")


async def test_429_with_a_short_retry_after_is_waited_out_once(local, server):
    server.plans.append(Plan(status=429, headers={"Retry-After": "0"}, body=b'{"error": "busy"}'))
    result = await local.run(assignment(), Progress())
    assert result["text"] == "".join(WORDS) and result["rate_limit_retries"] == 1
    assert len(server.requests) == 2


async def test_429_with_a_long_retry_after_fails_with_it(local, server):
    server.plans.append(Plan(status=429, headers={"Retry-After": "60"}, body=b'{"error": "busy"}'))
    await fails(local, r"rate limited \(429, Retry-After 60 s; 0 retries\)")
    assert len(server.requests) == 1


async def test_5xx_fails_with_status_and_body(local, server):
    server.plans.append(Plan(status=503, body=b'{"error": "model is loading"}'))
    await fails(local, "HTTP 503: .*model is loading")


async def test_malformed_json_in_the_stream(local, server):
    chunks = local.stream(MODEL)
    chunks[2] = b'{"model": "x", "message": {"content": \n' if local.backend == "ollama" else b"data: {nope\n\n"
    server.plans.append(Plan(chunks=chunks))
    await fails(local, "malformed JSON in the stream")


async def test_a_server_that_disappears(local, server):
    await local.refresh()
    assert local.offers("llama-3.1-8b", "q4_k_m") is not None
    server.stop()
    await fails(local, "cannot connect .*is the server running")
    await local.refresh()  # discovery keeps the last inventory and says why it is stale
    assert local.discovery_error and "cannot connect" in local.discovery_error
    assert local.offers("llama-3.1-8b", "q4_k_m") is not None


async def test_ollama_error_line_mid_stream(server):
    ollama = OllamaExecutor(server.url, timeouts=PATIENT)
    server.plans.append(Plan(chunks=[*ollama_stream(MODEL)[:2], b'{"error": "out of memory"}\n']))
    try:
        await fails(ollama, "ollama at .*: out of memory")
    finally:
        await ollama.close()


# --- Claude -------------------------------------------------------------------------------


@pytest.fixture
async def claude(server):
    executor = ClaudeExecutor("sk-test", server.url, timeouts=PATIENT)
    yield executor
    await executor.close()


def cloud_task():
    return {"model": "claude-haiku-4.5", "quant": None, "account": "team"}


async def test_claude_429_retried_after_retry_after_is_charged_once(claude, server):
    server.plans.append(Plan(status=429, headers={"Retry-After": "0"},
                             body=json.dumps({"type": "error", "error": {"type": "rate_limit_error",
                                                                         "message": "slow down"}}).encode()))
    result = await claude.run(assignment(**cloud_task()), Progress())
    assert result["rate_limit_retries"] == 1 and len(server.requests) == 2
    assert result["cost_usd"] == pytest.approx(api_cost_usd(catalog.offer("claude-haiku-4.5"), 20, len(WORDS)))


@pytest.mark.parametrize("status", [500, 529])
async def test_claude_server_errors_fail_uncharged(claude, server, status):
    server.plans.append(Plan(status=status, body=json.dumps(
        {"type": "error", "error": {"type": "api_error", "message": "boom"}}).encode()))
    error = await fails(claude, f"HTTP {status}", **cloud_task())
    assert error.result["cost_usd"] == 0.0  # never billed: no message_start


async def test_claude_cut_after_message_start_reports_the_billed_cost(claude, server):
    server.plans.append(Plan(chunks=anthropic_stream("claude-haiku-4-5", input_tokens=1000),
                             cut_after=4))  # start, block start, 2 deltas
    error = await fails(claude, "claude at .*connection lost mid-stream after 2 chunks", **cloud_task())
    offer = catalog.offer("claude-haiku-4.5")
    assert error.result["cost_usd"] == pytest.approx(api_cost_usd(offer, 1000, 2))
    assert error.result["account"] == "team" and error.result["prompt_tokens"] == 1000


async def test_claude_slow_first_token(server):
    claude = ClaudeExecutor("sk-test", server.url, timeouts=SHORT)
    try:
        server.plans.append(Plan(chunks=anthropic_stream("claude-haiku-4-5"), hold=server.hold()))
        error = await fails(claude, "no first token", **cloud_task())
        assert error.result["cost_usd"] == 0.0
    finally:
        await claude.close()
