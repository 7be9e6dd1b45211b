"""A reasoning model's thinking through the gateway, with the `openai` and `ollama` clients, real
agents and stand-in servers that think as each real server streams it (gpt-oss-20b: mxfp4 on
the Ollama nodes, q8_0 on dave-pc's OpenAI-compatible server): the thinking arrives apart from
the answer and before it (``delta.reasoning_content``, ``message.reasoning_content``;
``message.thinking``, ``thinking``), counted in the usage; the request's switch reaches the
server under its name; asking a model that cannot think to think, or a bad value, is a 400
naming the field and runs nothing; a route with no place for thinking never mixes it into the
answer."""

from __future__ import annotations

import httpx
import ollama
import openai
import pytest

from tests.gateway.conftest import KEYS, OPENAI_NODE
from tests.gateway.gatewaykit import REASONING_MODELS
from tests.live.clusterkit import WAIT_S
from tests.live.llmstandin import THOUGHTS, WORDS

TEXT, THOUGHT = "".join(WORDS), "".join(THOUGHTS)
PROMPT = [{"role": "user", "content": "Say five Greek letters."}]
ON_OPENAI = "gpt-oss-20b:q8_0"  # dave-pc only
ON_OLLAMA = "gpt-oss:20b"  # the Ollama nodes (mxfp4)


def gpt(cluster) -> openai.OpenAI:
    return openai.OpenAI(base_url=cluster.base_url + "/v1", api_key=KEYS["bob"]["key"],
                         max_retries=0, timeout=WAIT_S)


def llama(cluster) -> ollama.Client:
    return ollama.Client(host=cluster.base_url, headers={"Authorization": "Bearer " + KEYS["bob"]["key"]})


def forget(cluster) -> None:
    for standin in cluster.standins.values():
        with standin.lock:
            standin.requests.clear()


def bodies(cluster) -> list[dict]:
    """The bodies the model servers received since `forget`."""
    return [r[2] for s in cluster.standins.values() for r in s.requests]


def split(pieces: list[tuple[str, str]]) -> tuple[str, str]:
    """(thinking, text) of the pieces, once every thinking piece is seen before any text one."""
    kinds = [kind for kind, _ in pieces]
    assert kinds == sorted(kinds, key=lambda kind: kind == "text")
    return ("".join(p for k, p in pieces if k == "thinking"), "".join(p for k, p in pieces if k == "text"))


def test_openai_streams_the_thinking_as_reasoning_content_before_the_answer(cluster):
    forget(cluster)
    cluster.wait_idle(OPENAI_NODE)  # each request for ON_OPENAI: else it may be placed off dave-pc
    stream = gpt(cluster).chat.completions.create(
        model=ON_OPENAI, messages=PROMPT, max_tokens=200, reasoning_effort="high", stream=True,
        stream_options={"include_usage": True})
    pieces, usage = [], None
    for chunk in stream:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            if getattr(choice.delta, "reasoning_content", None):
                pieces.append(("thinking", choice.delta.reasoning_content))
            if choice.delta.content:
                pieces.append(("text", choice.delta.content))
    assert split(pieces) == (THOUGHT, TEXT)
    (body,) = bodies(cluster)
    assert body["reasoning_effort"] == "high" and body["model"] == REASONING_MODELS["openai"][0]
    assert usage.completion_tokens == len(WORDS) + len(THOUGHTS)  # the server's count: both
    assert usage.completion_tokens_details.reasoning_tokens == len(THOUGHTS)


def test_openai_reply_has_the_thinking_in_message_reasoning_content(cluster):
    cluster.wait_idle(OPENAI_NODE)
    reply = gpt(cluster).chat.completions.create(model=ON_OPENAI, messages=PROMPT,
                                                 extra_body={"reasoning": {"effort": "low"}})
    message = reply.choices[0].message
    assert message.content == TEXT and message.reasoning_content == THOUGHT
    assert reply.usage.completion_tokens_details.reasoning_tokens == len(THOUGHTS)


def test_ollama_streams_message_thinking_before_the_answer_and_replies_with_it(cluster):
    forget(cluster)
    pieces = []
    for part in llama(cluster).chat(model=ON_OLLAMA, messages=PROMPT, think=True, stream=True):
        if part.message.thinking:
            pieces.append(("thinking", part.message.thinking))
        if part.message.content:
            pieces.append(("text", part.message.content))
    assert split(pieces) == (THOUGHT, TEXT)
    (body,) = bodies(cluster)
    assert body["think"] is True and body["model"] == REASONING_MODELS["ollama"][0]

    reply = llama(cluster).chat(model=ON_OLLAMA, messages=PROMPT, think="medium")
    assert reply.message.thinking == THOUGHT and reply.message.content == TEXT
    assert reply.eval_count == len(WORDS) + len(THOUGHTS)
    generated = llama(cluster).generate(model=ON_OLLAMA, prompt="Say five Greek letters.", think=True)
    assert generated.thinking == THOUGHT and generated.response == TEXT


def test_a_reasoning_model_asked_for_no_bound_gets_room_to_think(cluster):
    forget(cluster)
    llama(cluster).chat(model=ON_OLLAMA, messages=PROMPT)  # no num_predict, no think
    llama(cluster).chat(model="llama-3.1-8b", messages=PROMPT)
    assert [b["options"]["num_predict"] for b in bodies(cluster)] == [4096, 256]


def test_no_route_mixes_the_thinking_into_the_answer(cluster):
    # a legacy completion has no place for thinking: the model's (its server thinks unasked)
    # is left out, the text is the answer alone
    completion = gpt(cluster).completions.create(model="gpt-oss-20b:mxfp4", prompt="Greek letters:",
                                                 max_tokens=50)
    assert completion.choices[0].text == TEXT
    streamed = "".join(c.choices[0].text for c in gpt(cluster).completions.create(
        model="gpt-oss-20b:mxfp4", prompt="Greek letters:", max_tokens=50, stream=True) if c.choices)
    assert streamed == TEXT


def test_asking_a_model_that_cannot_think_to_think_is_a_400_naming_the_field(cluster):
    forget(cluster)
    with pytest.raises(ollama.ResponseError) as refused:
        llama(cluster).chat(model="llama-3.1-8b", messages=PROMPT, think=True)
    assert refused.value.status_code == 400 and "think" in refused.value.error
    assert "does not support thinking" in refused.value.error
    with pytest.raises(openai.BadRequestError) as bad:
        gpt(cluster).chat.completions.create(model="qwen2.5-7b", messages=PROMPT, reasoning_effort="low")
    assert bad.value.body["param"] == "reasoning_effort"
    assert bodies(cluster) == []
    # asking it not to think is no error (Ollama's way): the switch goes to the server
    assert llama(cluster).chat(model="llama-3.1-8b", messages=PROMPT, think=False).message.content == TEXT
    (body,) = bodies(cluster)
    assert body["think"] is False


@pytest.mark.parametrize("route, body, param", [
    ("/api/chat", {"think": "max"}, "think"),
    ("/api/generate", {"think": 1}, "think"),
    ("/v1/chat/completions", {"reasoning_effort": "extreme"}, "reasoning_effort"),
    ("/v1/chat/completions", {"reasoning": {"effort": 3}}, "reasoning.effort"),
    ("/v1/chat/completions", {"reasoning": "high"}, "reasoning"),
])
def test_a_bad_thinking_switch_is_a_400_naming_the_field(cluster, route, body, param):
    forget(cluster)
    ask = {"model": ON_OLLAMA, "stream": False, **body}
    ask |= {"prompt": "hi"} if route == "/api/generate" else {"messages": PROMPT}
    reply = httpx.post(cluster.base_url + route, json=ask, timeout=WAIT_S,
                       headers={"Authorization": "Bearer " + KEYS["bob"]["key"]})
    assert reply.status_code == 400
    error = reply.json()["error"]
    if route.startswith("/v1"):
        assert error["param"] == param
    else:
        assert error.startswith(param + ":")
    assert bodies(cluster) == []


def test_show_lists_thinking_among_a_reasoning_models_capabilities(cluster):
    assert "thinking" in llama(cluster).show(ON_OLLAMA).capabilities
    assert "thinking" not in llama(cluster).show("llama-3.1-8b").capabilities


def test_dave_pc_serves_the_openai_reasoning_model(cluster):
    cluster.wait_idle(OPENAI_NODE)
    raw = gpt(cluster).chat.completions.with_raw_response.create(model=ON_OPENAI, messages=PROMPT)
    assert raw.headers["x-heddle-node"] == OPENAI_NODE
