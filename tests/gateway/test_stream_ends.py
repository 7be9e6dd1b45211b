"""Every way a streamed answer can end early ends it in its protocol's shape: the caller gets
the whole answer, or an error (an SSE ``error`` event / an Ollama ``{"error": ...}`` line)
and then the chunked body's end, never a connection closed mid-body. A cluster of its own
(the gateway is stopped here), every part a separate process, real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import signal
import subprocess

import httpx
import pytest

from tests.gateway.gatewaykit import GatewayCluster, one_node
from tests.live.clusterkit import WAIT_S
from tests.live.llmstandin import WORDS, Plan, ollama_stream

KEY = {"key": "sk-erin-000001", "owner": "erin", "privacy": "public"}
NODE = "erin-box"
PROMPT = [{"role": "user", "content": "Tell me a story about a lantern."}]


@pytest.fixture(scope="module")
def ends(tmp_path_factory):
    with one_node(tmp_path_factory.mktemp("ends"), NODE, KEY, 2) as cluster:
        yield cluster


def stream_lines(cluster: GatewayCluster, path: str, body: dict, *, after=None) -> list[str]:
    """The streamed body's lines as the caller reads them, to its end (httpx raises
    RemoteProtocolError on a body cut short); ``after(lines)`` runs once the first has come."""
    lines: list[str] = []
    with httpx.stream("POST", cluster.base_url + path, timeout=WAIT_S, json=body,
                      headers={"Authorization": "Bearer " + KEY["key"]}) as reply:
        assert reply.status_code == 200
        for line in reply.iter_lines():
            if line:
                lines.append(line)
            if after is not None and len(lines) == 1:
                after(lines)
    return lines


def test_a_model_server_with_odd_usage_counts_still_gives_the_whole_answer(ends):
    # an Ollama-compatible server that counts the prompt in words the gateway cannot add up:
    # the answer went out whole, so its closing line counts with the gateway's own estimate
    # (it was a connection closed after the last piece, no closing line at all)
    standin = ends.standins[NODE]
    for _ in range(2):
        standin.plans.append(Plan(chunks=ollama_stream(standin.model, prompt_tokens="a dozen")))
    lines = stream_lines(ends, "/api/chat", {"model": "llama-3.1-8b", "messages": PROMPT})
    docs = [json.loads(line) for line in lines]
    assert "".join(d["message"]["content"] for d in docs) == "".join(WORDS)
    assert docs[-1]["done"] is True and isinstance(docs[-1]["prompt_eval_count"], int)

    lines = stream_lines(ends, "/v1/chat/completions", {
        "model": "llama-3.1-8b", "messages": PROMPT, "stream": True,
        "stream_options": {"include_usage": True}})
    assert lines[-1] == "data: [DONE]"
    usage = json.loads(lines[-2][6:])["usage"]
    assert usage["completion_tokens"] == len(WORDS) and isinstance(usage["prompt_tokens"], int)


def _chat_error(lines: list[str]) -> dict:
    assert lines[0].startswith("data: {") and "error" not in json.loads(lines[0][6:])
    return json.loads(lines[-1][6:])["error"]


def _responses_error(lines: list[str]) -> dict:
    """The ``error`` event's fields, once the events are numbered on to ``response.failed``."""
    docs = [json.loads(line[6:]) for line in lines if line.startswith("data: ")]
    assert [d["sequence_number"] for d in docs] == list(range(len(docs)))
    assert [d["type"] for d in docs[-2:]] == ["error", "response.failed"]
    assert docs[-1]["response"]["status"] == "failed"
    return docs[-2]


@pytest.mark.parametrize(("path", "body", "error_of"), [
    ("/v1/chat/completions", {"messages": PROMPT}, _chat_error),
    ("/v1/responses", {"input": PROMPT}, _responses_error),  # its own events: error, response.failed
])
def test_a_gateway_stopping_mid_stream_ends_the_stream_with_an_error_event(ends, path, body, error_of):
    # the model holds the rest of the answer back past the gateway's grace period: the
    # stream ends with an error event saying why, then the body's end (it was cut mid-body)
    if ends.gateway.poll() is not None:  # stopped by the case before
        ends.start_gateway(ends.tmp / "keys.yaml")
        ends.wait_models({NODE})
    standin = ends.standins[NODE]
    gate = standin.hold()
    standin.plans.append(Plan(chunks=ollama_stream(standin.model), hold=gate, hold_at=2))
    try:
        lines = stream_lines(ends, path, {"model": "llama-3.1-8b", **body, "stream": True},
                             after=lambda _: ends.gateway.send_signal(signal.SIGTERM))
    finally:
        gate.set()
    error = error_of(lines)
    assert error["code"] == "gateway_stopping" and "incomplete" in error["message"]
    try:
        ends.gateway.wait(WAIT_S)  # it stops (uvicorn ends it by the signal it caught)
    except subprocess.TimeoutExpired:
        raise AssertionError("".join(ends.gateway_log[-20:])) from None
