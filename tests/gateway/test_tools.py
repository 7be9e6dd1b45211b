"""Tool calling through the gateway with the `openai` and `ollama` clients, against real agents
running stand-in Ollama and OpenAI-compatible servers (each streams its call as the real server
does: Ollama whole, the OpenAI-compatible one in argument pieces): the caller gets the model's
call (name, parsed arguments, id), streamed and not, sends the tool's result back, and the
result reaches the model server in the server's own shape; bad tool definitions are refused
with 400 naming the field."""

from __future__ import annotations

import json

import httpx
import ollama
import openai
import pytest

from heddle.gateway.keys import Rules
from heddle.gateway.openai_api import ChatRequest as OpenAIChat
from heddle.gateway.tasks import CHARS_PER_TOKEN, Chat, ModelRef, chat_task
from heddle.models.ids import Privacy
from tests.gateway.conftest import KEYS, OPENAI_NODE
from tests.gateway.test_gateway import TEXT, client
from tests.live.clusterkit import WAIT_S
from tests.live.llmstandin import TOOL_ARGUMENTS

NODE = "alice-mac"  # alice's personal work runs only there: the server the requests reach
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather forecast for a city.",
    "parameters": {"type": "object", "required": ["city"],
                   "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}}}}
ASK = [{"role": "user", "content": "What will the weather be in Lisbon?"}]
SERVERS = {  # (node, key, model) of the Ollama stand-in and of the OpenAI-compatible one
    "ollama": (NODE, "alice", "llama-3.1-8b"),
    "openai": (OPENAI_NODE, "bob", "qwen2.5-7b"),  # bob's public work; only dave-pc serves qwen
}


def sent(cluster, node: str = NODE) -> dict:
    """The last request the node's model server got."""
    return cluster.standins[node].requests[-1][2]


def answered(server: str, call_id: str) -> list[dict]:
    """The call and the tool's result as the model server gets them, in its own shape."""
    if server == "ollama":  # the arguments an object, the result naming its tool
        return [{"role": "assistant", "content": "", "tool_calls": [
                    {"function": {"name": "get_weather", "arguments": TOOL_ARGUMENTS}}]},
                {"role": "tool", "content": "sunny, 24 C", "tool_name": "get_weather"}]
    return [{"role": "assistant", "content": None, "tool_calls": [  # the arguments' text, the id
                {"id": call_id, "type": "function",
                 "function": {"name": "get_weather", "arguments": json.dumps(TOOL_ARGUMENTS)}}]},
            {"role": "tool", "tool_call_id": call_id, "content": "sunny, 24 C"}]


@pytest.fixture
def standin(cluster):
    for node in (NODE, OPENAI_NODE):
        cluster.standins[node].plans.clear()  # a plan an earlier test left unused
    return cluster.standins[NODE]


@pytest.mark.parametrize("server", SERVERS)
@pytest.mark.parametrize("stream", [False, True])
def test_openai_client_gets_the_tool_call_and_sends_the_result_back(cluster, standin, stream, server):
    node, who, model = SERVERS[server]
    gpt = client(cluster, who)
    if stream:
        chunks = list(gpt.chat.completions.create(model=model, messages=ASK, tools=[WEATHER], stream=True))
        deltas = [c.choices[0] for c in chunks if c.choices]
        calls = [t for d in deltas for t in d.delta.tool_calls or ()]
        assert deltas[0].delta.role == "assistant" and deltas[-1].finish_reason == "tool_calls"
        assert len(calls) == 1 and calls[0].index == 0
        call_id, name, arguments = calls[0].id, calls[0].function.name, calls[0].function.arguments
    else:
        reply = gpt.chat.completions.create(model=model, messages=ASK, tools=[WEATHER], tool_choice="auto")
        choice = reply.choices[0]
        assert choice.finish_reason == "tool_calls" and choice.message.content is None
        (call,) = choice.message.tool_calls
        call_id, name, arguments = call.id, call.function.name, call.function.arguments
        assert reply.usage.prompt_tokens == 30  # the server's count
        assert reply.usage.model_extra["heddle"]["node"] == node
    assert name == "get_weather" and json.loads(arguments) == TOOL_ARGUMENTS and call_id
    if server == "openai":
        assert call_id == "call_standin_1"  # the server's own id
    first = sent(cluster, node)
    assert first["tools"] == [WEATHER]  # as the caller wrote it (both servers take this shape)
    assert first.get("tool_choice") == (None if stream or server == "ollama" else "auto")

    history = [*ASK, {"role": "assistant", "content": None, "tool_calls": [
        {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": call_id, "content": "sunny, 24 C"}]
    answer = gpt.chat.completions.create(model=model, messages=history, tools=[WEATHER])
    assert answer.choices[0].message.content == TEXT and answer.choices[0].finish_reason == "stop"
    assert sent(cluster, node)["messages"][1:] == answered(server, call_id)


@pytest.mark.parametrize("server", SERVERS)
@pytest.mark.parametrize("stream", [False, True])
def test_ollama_client_gets_the_tool_call_and_sends_the_result_back(cluster, standin, stream, server):
    node, who, model = SERVERS[server]
    llama = ollama.Client(host=cluster.base_url, headers={"Authorization": "Bearer " + KEYS[who]["key"]})
    if stream:
        parts = list(llama.chat(model=model, messages=ASK, tools=[WEATHER], stream=True))
        calls = [c for p in parts for c in p.message.tool_calls or ()]
        assert parts[-1].done and parts[-1].done_reason == "stop"
    else:
        reply = llama.chat(model=model, messages=ASK, tools=[WEATHER])
        calls = reply.message.tool_calls
        assert reply.done_reason == "stop" and reply.prompt_eval_count == 30
    assert [(c.function.name, dict(c.function.arguments)) for c in calls] == [("get_weather", TOOL_ARGUMENTS)]
    assert sent(cluster, node)["tools"] == [WEATHER]

    # Ollama's calls have no id: the result names its tool, and the gateway matches the two
    history = [*ASK, {"role": "assistant", "content": "", "tool_calls": [c.model_dump() for c in calls]},
               {"role": "tool", "content": "sunny, 24 C", "tool_name": "get_weather"}]
    answer = llama.chat(model=model, messages=history, tools=[WEATHER])
    assert answer.message.content == TEXT and not answer.message.tool_calls
    assert sent(cluster, node)["messages"][1:] == answered(server, "call_1_0")


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


def test_the_prompt_tokens_count_the_tool_schemas_and_the_calls():
    rules = Rules("alice", Privacy.PERSONAL, None, None, None, 30.0)
    ref = ModelRef("llama-3.1-8b", "llama-3.1-8b", "q4_k_m")
    request = OpenAIChat.model_validate({"model": "llama-3.1-8b", "messages": ASK, "tools": [WEATHER]})
    messages, _ = request.chat_messages()
    plain = chat_task(Chat(ref, messages, 20), rules, "gw-a-1", None)
    tools = request.tool_spec()
    with_tools = chat_task(Chat(ref, messages, 20, tools=tools), rules, "gw-a-1", None)
    schemas = len(json.dumps(tools.payload()["tools"])) / CHARS_PER_TOKEN
    assert with_tools.task.prompt_tokens - plain.task.prompt_tokens == round(schemas) > 20
    assert with_tools.payload["tools"] == [WEATHER["function"]] and "tools" not in plain.payload


def test_api_show_says_which_models_call_tools(cluster):
    """Continue's agent mode (and other apps) read an Ollama model's ``capabilities``."""
    llama = ollama.Client(host=cluster.base_url, headers={"Authorization": "Bearer " + KEYS["bob"]["key"]})
    assert llama.show("llama3.1:8b-instruct-q4_K_M").capabilities == ["completion", "tools"]
    assert llama.show("qwen2.5-7b").capabilities == ["completion", "tools"]
    assert llama.show("llama-2-7b").capabilities == ["completion"]  # its template takes no tools
    assert llama.show("nomic-embed-text-v1.5").capabilities == ["embedding"]
    assert llama.show("claude-sonnet-4.6").capabilities == ["completion", "tools", "vision", "thinking"]


@pytest.mark.parametrize("stream", [False, True])
def test_the_deprecated_functions_get_a_function_call_and_its_result_goes_back(cluster, standin, stream):
    """Older apps send ``functions`` / ``function_call`` and a ``function`` message back."""
    gpt = client(cluster, "alice")
    asked = {"model": "llama-3.1-8b", "messages": ASK, "functions": [WEATHER["function"]],
             "function_call": "auto"}
    if stream:
        deltas = [c.choices[0] for c in gpt.chat.completions.create(**asked, stream=True) if c.choices]
        (call,) = [d.delta.function_call for d in deltas if d.delta.function_call]
        assert deltas[-1].finish_reason == "function_call"
    else:
        choice = gpt.chat.completions.create(**asked).choices[0]
        call = choice.message.function_call
        assert choice.finish_reason == "function_call" and not choice.message.tool_calls
    assert call.name == "get_weather" and json.loads(call.arguments) == TOOL_ARGUMENTS
    assert sent(cluster)["tools"] == [WEATHER]

    history = [*ASK, {"role": "assistant", "content": None,
                      "function_call": {"name": call.name, "arguments": call.arguments}},
               {"role": "function", "name": "get_weather", "content": "sunny, 24 C"}]
    answer = gpt.chat.completions.create(**{**asked, "messages": history})
    assert answer.choices[0].message.content == TEXT
    assert sent(cluster)["messages"][1:] == answered("ollama", "")


@pytest.mark.parametrize(("extra", "field"), [
    ({"tools": [WEATHER]}, "functions"),
    ({"function_call": {"name": "nope"}}, "function_call.name"),
    ({"function_call": "required"}, "function_call"),
])
def test_bad_deprecated_functions_are_refused_naming_the_field(cluster, extra, field):
    body = {"model": "llama-3.1-8b", "messages": ASK, "functions": [WEATHER["function"]], **extra}
    reply = httpx.post(cluster.base_url + "/v1/chat/completions", json=body, timeout=WAIT_S,
                       headers={"Authorization": "Bearer " + KEYS["alice"]["key"]})
    assert reply.status_code == 400 and reply.json()["error"]["param"] == field, reply.text
