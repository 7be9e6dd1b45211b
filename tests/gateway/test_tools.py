"""Tool calling through the gateway with the `openai` and `ollama` clients, against real agents
running stand-in Ollama servers: the caller gets the model's call (name, parsed arguments, id),
streamed and not, sends the tool's result back, and the result reaches the model server in the
server's own shape; bad tool definitions are refused with 400 naming the field."""

from __future__ import annotations

import json

import httpx
import ollama
import openai
import pytest

from tests.gateway.conftest import KEYS
from tests.gateway.test_gateway import TEXT, client
from tests.live.clusterkit import WAIT_S
from tests.live.llmstandin import TOOL_ARGUMENTS

NODE = "alice-mac"  # alice's personal work runs only there: the server the requests reach
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather forecast for a city.",
    "parameters": {"type": "object", "required": ["city"],
                   "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}}}}
ASK = [{"role": "user", "content": "What will the weather be in Lisbon?"}]


def sent(cluster) -> dict:
    """The last request the node's model server got."""
    return cluster.standins[NODE].requests[-1][2]


@pytest.fixture
def standin(cluster):
    cluster.standins[NODE].plans.clear()  # a plan an earlier test left unused
    return cluster.standins[NODE]


@pytest.mark.parametrize("stream", [False, True])
def test_openai_client_gets_the_tool_call_and_sends_the_result_back(cluster, standin, stream):
    gpt = client(cluster, "alice")
    if stream:
        chunks = list(gpt.chat.completions.create(model="llama-3.1-8b", messages=ASK, tools=[WEATHER],
                                                  stream=True))
        deltas = [c.choices[0] for c in chunks if c.choices]
        calls = [t for d in deltas for t in d.delta.tool_calls or ()]
        assert deltas[0].delta.role == "assistant" and deltas[-1].finish_reason == "tool_calls"
        assert len(calls) == 1 and calls[0].index == 0
        call_id, name, arguments = calls[0].id, calls[0].function.name, calls[0].function.arguments
    else:
        reply = gpt.chat.completions.create(model="llama-3.1-8b", messages=ASK, tools=[WEATHER],
                                            tool_choice="auto")
        choice = reply.choices[0]
        assert choice.finish_reason == "tool_calls" and choice.message.content is None
        (call,) = choice.message.tool_calls
        call_id, name, arguments = call.id, call.function.name, call.function.arguments
        assert reply.usage.prompt_tokens == 30  # the server's count
    assert name == "get_weather" and json.loads(arguments) == TOOL_ARGUMENTS and call_id
    first = sent(cluster)
    assert first["tools"] == [WEATHER]  # in Ollama's shape, as the caller wrote it

    history = [*ASK, {"role": "assistant", "content": None, "tool_calls": [
        {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": call_id, "content": "sunny, 24 C"}]
    answer = gpt.chat.completions.create(model="llama-3.1-8b", messages=history, tools=[WEATHER])
    assert answer.choices[0].message.content == TEXT and answer.choices[0].finish_reason == "stop"
    assert sent(cluster)["messages"][1:] == [  # Ollama's shape: arguments an object, the tool's name
        {"role": "assistant", "content": "", "tool_calls": [
            {"function": {"name": "get_weather", "arguments": TOOL_ARGUMENTS}}]},
        {"role": "tool", "content": "sunny, 24 C", "tool_name": "get_weather"}]


@pytest.mark.parametrize("stream", [False, True])
def test_ollama_client_gets_the_tool_call_and_sends_the_result_back(cluster, standin, stream):
    llama = ollama.Client(host=cluster.base_url, headers={"Authorization": "Bearer " + KEYS["alice"]["key"]})
    if stream:
        parts = list(llama.chat(model="llama-3.1-8b", messages=ASK, tools=[WEATHER], stream=True))
        calls = [c for p in parts for c in p.message.tool_calls or ()]
        assert parts[-1].done and parts[-1].done_reason == "stop"
    else:
        reply = llama.chat(model="llama-3.1-8b", messages=ASK, tools=[WEATHER])
        calls = reply.message.tool_calls
        assert reply.done_reason == "stop" and reply.prompt_eval_count == 30
    assert [(c.function.name, dict(c.function.arguments)) for c in calls] == [("get_weather", TOOL_ARGUMENTS)]
    assert sent(cluster)["tools"] == [WEATHER]

    history = [*ASK, {"role": "assistant", "content": "", "tool_calls": [c.model_dump() for c in calls]},
               {"role": "tool", "content": "sunny, 24 C", "tool_name": "get_weather"}]
    answer = llama.chat(model="llama-3.1-8b", messages=history, tools=[WEATHER])
    assert answer.message.content == TEXT and not answer.message.tool_calls
    assert sent(cluster)["messages"][1:] == [
        {"role": "assistant", "content": "", "tool_calls": [
            {"function": {"name": "get_weather", "arguments": TOOL_ARGUMENTS}}]},
        {"role": "tool", "content": "sunny, 24 C", "tool_name": "get_weather"}]


def test_a_named_tool_choice_sends_only_that_tool_and_none_sends_none(cluster, standin):
    other = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}
    gpt = client(cluster, "alice")
    reply = gpt.chat.completions.create(model="llama-3.1-8b", messages=ASK, tools=[other, WEATHER],
                                        tool_choice={"type": "function", "function": {"name": "get_weather"}})
    assert reply.choices[0].message.tool_calls[0].function.name == "get_weather"
    assert [t["function"]["name"] for t in sent(cluster)["tools"]] == ["get_weather"]
    reply = gpt.chat.completions.create(model="llama-3.1-8b", messages=ASK, tools=[WEATHER], tool_choice="none")
    assert reply.choices[0].message.content == TEXT and not reply.choices[0].message.tool_calls
    assert "tools" not in sent(cluster)


@pytest.mark.parametrize(("tools", "extra", "field"), [
    ([{"type": "function", "function": {"description": "no name"}}], {}, "tools.0.function.name"),
    ([{"type": "function", "function": {"name": "has space"}}], {}, "tools.0.function.name"),
    ([{"type": "retrieval", "function": {"name": "x"}}], {}, "tools.0.type"),
    ([{"type": "function", "function": {"name": "x", "parameters": "city"}}], {}, "tools.0.function.parameters"),
    ([{"type": "function", "function": {"name": "x", "parameters": {"type": "string"}}}], {},
     "tools.0.function.parameters"),
    ([WEATHER, WEATHER], {}, "tools.1.function.name"),
    ([WEATHER], {"tool_choice": "always"}, "tool_choice"),
    ([WEATHER], {"tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice.function.name"),
    (None, {"tool_choice": "required"}, "tool_choice"),
    ([WEATHER], {"messages": [*ASK, {"role": "tool", "content": "sunny"}]}, "messages.1.tool_call_id"),
    ([WEATHER], {"messages": [*ASK, {"role": "assistant", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "Lisbon"}}]}]},
     "messages.1.tool_calls.0.function.arguments"),
])
def test_bad_tools_are_refused_naming_the_field(cluster, tools, extra, field):
    body = {"model": "llama-3.1-8b", "messages": ASK, **({"tools": tools} if tools else {}), **extra}
    reply = httpx.post(cluster.base_url + "/v1/chat/completions", json=body, timeout=WAIT_S,
                       headers={"Authorization": "Bearer " + KEYS["alice"]["key"]})
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["param"] == field and error["message"].startswith(field + ":")
    with pytest.raises(openai.BadRequestError, match=field.replace(".", r"\.")):
        client(cluster, "alice").chat.completions.create(**body)


def test_bad_ollama_tools_are_refused_naming_the_field(cluster):
    headers = {"Authorization": "Bearer " + KEYS["alice"]["key"]}
    reply = httpx.post(cluster.base_url + "/api/chat", headers=headers, timeout=WAIT_S, json={
        "model": "llama-3.1-8b", "messages": ASK, "tools": [
            {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "array"}}}]})
    assert reply.status_code == 400 and reply.json()["error"].startswith("tools.0.function.parameters:")
    llama = ollama.Client(host=cluster.base_url, headers=headers)
    with pytest.raises(ollama.ResponseError) as refused:  # the client checks the shape, not this
        llama.chat(model="llama-3.1-8b", messages=ASK, tools=[WEATHER, WEATHER])
    assert refused.value.status_code == 400 and "tools.1.function.name" in refused.value.error
