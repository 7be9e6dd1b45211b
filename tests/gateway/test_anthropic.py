"""The Anthropic Messages API through the gateway with the `anthropic` client (what Claude Code
and agent frameworks speak), against real agents running stand-in Ollama and OpenAI-compatible
servers: a message streamed (the SDK's own stream parser reads the events) and not, usage and
where it ran; a tool use round trip; personal work on its owner's node; a loosening, a missing
key, a saturated fleet and bad fields refused in Anthropic's error shape; a disconnect cancelling
the task; count_tokens; the model listing both SDKs read."""

from __future__ import annotations

import json

import anthropic
import httpx
import openai
import pydantic
import pytest

from tests.gateway.conftest import KEYS, OPENAI_NODE
from tests.gateway.test_gateway import TEXT, alice_busy, client, held
from tests.gateway.test_tools import answered, sent
from tests.live.clusterkit import WAIT_S
from tests.live.llmstandin import THOUGHTS, TOOL_ARGUMENTS, WORDS, Plan, ollama_stream

PROMPT = [{"role": "user", "content": "Tell me a story about a lantern."}]
THOUGHT = "".join(THOUGHTS)
WEATHER = {"name": "get_weather", "description": "The weather forecast for a city.",
           "input_schema": {"type": "object", "required": ["city"],
                            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}}}
STORY = {"type": "object", "properties": {"story": {"type": "string"}}, "required": ["story"]}
ASK = [{"role": "user", "content": "What will the weather be in Lisbon?"}]
SERVERS = {  # (node, key, model) of the Ollama stand-in and of the OpenAI-compatible one
    "ollama": ("alice-mac", "alice", "llama-3.1-8b"),  # alice's personal work: only her node
    "openai": (OPENAI_NODE, "bob", "qwen2.5-7b"),  # bob's public work; only dave-pc serves qwen
}


def claude(cluster, who: str, bearer: bool = False, **headers: str) -> anthropic.Anthropic:
    """The anthropic client at the gateway: the key as ``X-API-Key`` (what the SDK sends for
    ``api_key``) or, ``bearer``, as ``Authorization: Bearer`` (Claude Code's ANTHROPIC_AUTH_TOKEN)."""
    key = KEYS[who]["key"]
    return anthropic.Anthropic(base_url=cluster.base_url, max_retries=0, timeout=WAIT_S,
                               default_headers=headers or None,
                               **({"auth_token": key, "api_key": None} if bearer else {"api_key": key}))


def post(cluster, path: str, body: dict, who: str = "alice", **headers: str) -> httpx.Response:
    return httpx.post(cluster.base_url + path, json=body, timeout=WAIT_S,
                      headers={"x-api-key": KEYS[who]["key"], "anthropic-version": "2023-06-01", **headers})


@pytest.fixture
def standin(cluster):
    for node, _, _ in SERVERS.values():
        cluster.standins[node].plans.clear()  # a plan an earlier test left unused
    return cluster.standins["alice-mac"]


@pytest.mark.parametrize("bearer", [False, True])
def test_anthropic_client_gets_a_message_with_usage_and_where_it_ran(cluster, bearer):
    raw = claude(cluster, "bob", bearer).messages.with_raw_response.create(
        model="llama-3.1-8b", max_tokens=40, messages=PROMPT, system="You tell short stories.",
        stop_sequences=["THE END"], metadata={"user_id": "u-1"},
        output_config={"format": {"type": "json_schema", "schema": STORY}},
        extra_body={"temperature": 0.2, "top_k": 20})  # SDK 2.12 has no field for them; older ones, apps do
    message = raw.parse()
    assert message.type == "message" and message.role == "assistant" and message.model == "llama-3.1-8b"
    assert [(b.type, b.text) for b in message.content] == [("text", TEXT)]
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert (message.usage.input_tokens, message.usage.output_tokens) == (12, len(WORDS))  # the server's
    where = message.usage.model_extra["heddle"]
    assert where["node"] == raw.headers["x-heddle-node"] and where["privacy"] == "public"
    body = cluster.standins[where["node"]].requests[-1][2]
    assert body["messages"] == [{"role": "system", "content": "You tell short stories."}, *PROMPT]
    assert body["options"] == {"temperature": 0.2, "top_k": 20, "stop": ["THE END"], "num_predict": 40}
    assert body["format"] == STORY


def test_anthropic_client_streams_the_events_the_sdk_reads(cluster):
    gpt = claude(cluster, "bob")
    with gpt.messages.stream(model="llama3.1:8b-instruct-q4_K_M", max_tokens=64, messages=PROMPT,
                             system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}]
                             ) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(pieces) == TEXT
    assert [(b.type, b.text) for b in final.content] == [("text", TEXT)]
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (12, len(WORDS))

    events = list(gpt.messages.create(model="llama-3.1-8b", max_tokens=64, messages=PROMPT, stream=True))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["message_start", "content_block_start"] and kinds[-3:] == [
        "content_block_stop", "message_delta", "message_stop"]
    assert set(kinds[2:-3]) == {"content_block_delta"}
    assert "".join(e.delta.text for e in events[2:-3]) == TEXT
    assert events[0].message.usage.input_tokens > 0  # the gateway's estimate; the delta has the server's
    assert events[-2].delta.stop_reason == "end_turn" and events[-2].usage.input_tokens == 12
    assert events[-2].usage.model_extra["heddle"]["privacy"] == "public"


@pytest.mark.parametrize("case", ["text", "tools", "thinking"])
def test_every_event_and_reply_validates_as_the_sdks_own_types(cluster, standin, case):
    """Strictly (the SDK's parser builds its objects without validating): each streamed event
    is a ``RawMessageStreamEvent`` or Anthropic's ``ping``, in Anthropic's order, and the reply a
    ``Message``; an error an ``ErrorResponse``."""
    body = {"model": "llama-3.1-8b", "max_tokens": 50, "messages": PROMPT, **{
        "text": {}, "tools": {"messages": ASK, "tools": [WEATHER]},
        "thinking": {"model": "gpt-oss:20b", "max_tokens": 2048, "thinking": {"type": "enabled", "budget_tokens": 1024}},
    }[case]}
    event_type = pydantic.TypeAdapter(anthropic.types.RawMessageStreamEvent)
    names = []
    with httpx.stream("POST", cluster.base_url + "/v1/messages", json={**body, "stream": True}, timeout=WAIT_S,
                      headers={"x-api-key": KEYS["bob" if case == "thinking" else "alice"]["key"],
                               "anthropic-version": "2023-06-01"}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line]
    for name, data in zip(lines[::2], lines[1::2], strict=True):
        kind, doc = name.removeprefix("event: "), json.loads(data.removeprefix("data: "))
        assert doc["type"] == kind
        if kind != "ping":
            event_type.validate_python(doc)
        if names[-1:] != [kind]:  # the text's pieces: as many deltas as came apart
            names.append(kind)
    block = ["content_block_start", "content_block_delta", "content_block_stop"]  # the text, or the call
    blocks = 2 if case == "thinking" else 1  # the thinking, then the text
    assert names == ["message_start", "ping", *block * blocks, "message_delta", "message_stop"]
    reply = post(cluster, "/v1/messages", body, "bob" if case == "thinking" else "alice")
    message = anthropic.types.Message.model_validate(reply.json())
    assert [b.type for b in message.content] == {"text": ["text"], "tools": ["tool_use"],
                                                 "thinking": ["thinking", "text"]}[case]
    refused = post(cluster, "/v1/messages", {**body, "max_tokens": 0})
    anthropic.types.ErrorResponse.model_validate(refused.json())


@pytest.mark.parametrize("server", SERVERS)
@pytest.mark.parametrize("stream", [False, True])
def test_tool_use_round_trip(cluster, standin, server, stream):
    node, who, model = SERVERS[server]
    gpt = claude(cluster, who)
    asked = {"model": model, "max_tokens": 100, "tools": [WEATHER], "tool_choice": {"type": "auto"}}
    if stream:
        with gpt.messages.stream(messages=ASK, **asked) as events:
            message = events.get_final_message()
    else:
        message = gpt.messages.create(messages=ASK, **asked)
    assert message.stop_reason == "tool_use"
    (call,) = [b for b in message.content if b.type == "tool_use"]
    assert call.name == "get_weather" and call.input == TOOL_ARGUMENTS and call.id
    assert sent(cluster, node)["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": WEATHER["description"], "parameters": WEATHER["input_schema"]}}]

    history = [*ASK, {"role": "assistant", "content": message.content},
               {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id,
                                             "content": [{"type": "text", "text": "sunny, 24 C"}]}]}]
    answer = gpt.messages.create(messages=history, **asked)
    assert answer.stop_reason == "end_turn" and [b.text for b in answer.content] == [TEXT]
    assert sent(cluster, node)["messages"][1:] == answered(server, call.id)


@pytest.mark.parametrize(("model", "path", "switch"), [("gpt-oss:20b", "/api/chat", "think"),
                                                       ("gpt-oss-20b:q8_0", "/v1/chat/completions", "reasoning_effort")])
@pytest.mark.parametrize("stream", [False, True])
def test_a_reasoning_models_thinking_is_a_thinking_block_before_the_answer(cluster, model, path, switch, stream):
    """Claude Code's ``thinking`` reaches the server as its own switch (a budget of half of
    max_tokens: the medium level), and the thinking comes back as Anthropic's thinking block."""
    gpt = claude(cluster, "bob")
    asked = {"model": model, "max_tokens": 2048, "messages": PROMPT,
             "thinking": {"type": "enabled", "budget_tokens": 1024}}
    cluster.wait_idle(OPENAI_NODE)  # (each time: else a q8_0 request may be placed off dave-pc)
    if stream:
        with gpt.messages.stream(**asked) as events:
            kinds = [e.type for e in events if e.type in ("thinking", "text")]  # the SDK's own events
            message, node = events.get_final_message(), events.response.headers["x-heddle-node"]
        assert kinds == sorted(kinds, key=lambda kind: kind == "text") and set(kinds) == {"thinking", "text"}
    else:
        message = gpt.messages.create(**asked)
        node = message.usage.model_extra["heddle"]["node"]
    assert [(b.type, getattr(b, "thinking", None) or b.text) for b in message.content] == [
        ("thinking", THOUGHT), ("text", TEXT)]
    assert message.usage.output_tokens == len(WORDS) + len(THOUGHTS)
    body = next(b for p, _, b in reversed(cluster.standins[node].requests) if p == path)
    assert body[switch] == "medium"

    # asked not to think, and not asked: the answer alone (the model may think unasked)
    for thinking in ({"type": "disabled"}, None):
        cluster.wait_idle(OPENAI_NODE)
        message = gpt.messages.create(**{**asked, "thinking": thinking} if thinking else {
            k: v for k, v in asked.items() if k != "thinking"})
        assert [b.type for b in message.content] == ["text"] and message.content[0].text == TEXT


def test_personal_work_runs_on_its_owners_node_and_a_loosening_is_refused(cluster):
    raw = claude(cluster, "alice").messages.with_raw_response.create(
        model="llama-3.1-8b", max_tokens=20, messages=PROMPT)
    assert raw.headers["x-heddle-node"] == "alice-mac" and raw.headers["x-heddle-privacy"] == "personal"
    where = raw.parse().usage.model_extra["heddle"]
    assert (where["node"], where["privacy"], where["owner"]) == ("alice-mac", "personal", "alice")

    with pytest.raises(anthropic.PermissionDeniedError) as refused:
        claude(cluster, "alice", **{"X-Heddle-Privacy": "public"}).messages.create(
            model="llama-3.1-8b", max_tokens=20, messages=PROMPT)
    assert refused.value.body["type"] == "error"
    assert refused.value.body["error"]["type"] == "permission_error"
    assert "loosen" in refused.value.body["error"]["message"]
    with pytest.raises(anthropic.AuthenticationError) as unknown:
        anthropic.Anthropic(base_url=cluster.base_url, api_key="sk-nobody-000", max_retries=0).messages.create(
            model="llama-3.1-8b", max_tokens=20, messages=PROMPT)
    assert unknown.value.body["error"]["type"] == "authentication_error"
    with pytest.raises(anthropic.NotFoundError) as missing:
        claude(cluster, "bob").messages.create(model="gpt-9-ultra", max_tokens=20, messages=PROMPT)
    assert missing.value.body["error"]["type"] == "not_found_error"


def test_a_saturated_fleet_answers_429_with_retry_after(cluster):
    with alice_busy(cluster) as first, pytest.raises(anthropic.RateLimitError) as saturated:
        claude(cluster, "alice", **{"X-Heddle-Max-Wait": "0"}).messages.create(
            model="llama-3.1-8b", max_tokens=20, messages=PROMPT)
    assert int(saturated.value.response.headers["retry-after"]) >= 1
    assert saturated.value.body["error"]["type"] == "rate_limit_error"
    assert "no free place" in saturated.value.body["error"]["message"]
    assert first[0].choices[0].message.content == TEXT


@pytest.mark.parametrize(("change", "field"), [
    ({"max_tokens": None}, "max_tokens"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"messages": [{"role": "user", "content": [{"type": "document", "source": {
        "type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}}]}]}, "messages.0.content.0.type"),
    ({"messages": [{"role": "user", "content": [{"type": "image", "source": {
        "type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}]}]}, "messages.0.content.0"),
    ({"model": "gemma-3-12b", "messages": [{"role": "user", "content": [{"type": "image", "source": {
        "type": "url", "url": "https://example.com/a.png"}}]}]}, "messages.0.content.0"),  # nothing fetched
    ({"model": "gemma-3-12b", "messages": [*ASK, {"role": "assistant", "content": [
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}]}]}]},
     "messages.2.content.0.content.0.type"),
    ({"messages": [{"role": "system", "content": "Be brief."}]}, "messages.0.role"),
    ({"messages": [*ASK, {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                                       "content": "sunny"}]}]}, "messages.1.content.0.tool_use_id"),
    ({"messages": [*ASK, {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1",
                                                            "name": "get_weather", "input": "Lisbon"}]}]},
     "messages.1.content.0.input"),
    ({"thinking": {"type": "enabled", "budget_tokens": 1024}, "max_tokens": 2048}, "thinking"),  # llama: no
    ({"model": "gpt-oss:20b", "thinking": {"type": "enabled", "budget_tokens": 500}}, "thinking.budget_tokens"),
    ({"model": "gpt-oss:20b", "thinking": {"type": "enabled", "budget_tokens": 2048}}, "thinking.budget_tokens"),
    ({"model": "gpt-oss:20b", "thinking": {"type": "sometimes"}}, "thinking"),
    ({"temperature": 3}, "temperature"),
    ({"stop_sequences": "THE END"}, "stop_sequences"),
    ({"output_config": {"format": {"type": "json_schema", "schema": "story"}}}, "output_config.format.schema"),
    ({"output_config": {"format": {"type": "json_object"}}}, "output_config.format"),
    ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools.0.type"),
    ({"tools": [{**WEATHER, "input_schema": {"type": "string"}}]}, "tools.0.input_schema"),
    ({"tools": [WEATHER, WEATHER]}, "tools.1.name"),
    ({"tools": [WEATHER], "tool_choice": {"type": "tool", "name": "nope"}}, "tool_choice.name"),
    ({"tool_choice": {"type": "any"}}, "tool_choice"),
])
def test_bad_fields_are_refused_naming_them_in_anthropics_shape(cluster, change, field):
    body = {k: v for k, v in ({"model": "llama-3.1-8b", "max_tokens": 20, "messages": PROMPT} | change).items()
            if v is not None}
    before = len(cluster.standins["alice-mac"].requests)
    reply = post(cluster, "/v1/messages", body)
    assert reply.status_code == 400, reply.text
    error = reply.json()
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert error["error"]["message"].startswith(field + ":") and error["error"]["param"] == field
    assert len(cluster.standins["alice-mac"].requests) == before  # nothing ran


def test_a_caller_that_disconnects_cancels_its_task(cluster):
    gate = held(cluster, "alice-mac")
    try:
        with httpx.stream("POST", cluster.base_url + "/v1/messages", timeout=WAIT_S,
                          headers={"x-api-key": KEYS["alice"]["key"]},
                          json={"model": "llama-3.1-8b", "max_tokens": 50, "messages": PROMPT,
                                "stream": True}) as r:
            task = r.headers["x-heddle-task"]
            next(line for line in r.iter_lines() if '"text":"alpha' in line)
        # the connection is closed here, mid-stream
        assert cluster.wait_task(task, "cancelled").node == "alice-mac"
    finally:
        gate.set()


def test_a_failure_mid_stream_is_an_error_event_the_sdk_raises(cluster, standin):
    standin.plans.append(Plan(chunks=ollama_stream(standin.model, garbage_at=3)))
    pieces: list[str] = []
    with (pytest.raises(anthropic.APIStatusError) as failed,
          claude(cluster, "alice").messages.stream(model="llama-3.1-8b", max_tokens=50, messages=PROMPT) as stream):
        pieces.extend(stream.text_stream)
    assert TEXT.startswith("".join(pieces))  # the text so far, then the error
    assert failed.value.body["type"] == "error" and failed.value.body["error"]["type"] == "api_error"
    assert "failed" in failed.value.body["error"]["message"]


def test_a_max_tokens_over_the_models_window_is_cut_to_what_the_prompt_leaves(cluster):
    """Claude Code asks for tens of thousands of output tokens; qwen2.5-7b's window is 32768, so the
    scheduler would refuse prompt + output (as it does on the OpenAI route): the Messages API's
    max_tokens is a ceiling, and the task asks for what the window leaves."""
    gpt = claude(cluster, "bob")
    asked = {"model": "qwen2.5-7b", "messages": PROMPT, "system": "You tell short stories."}
    prompt = gpt.messages.count_tokens(**asked).input_tokens
    message = gpt.messages.create(max_tokens=64000, **asked)
    assert [b.text for b in message.content] == [TEXT] and message.stop_reason == "end_turn"
    assert sent(cluster, OPENAI_NODE)["max_tokens"] == 32768 - prompt
    with pytest.raises(openai.BadRequestError, match="context"):
        client(cluster, "bob").chat.completions.create(model="qwen2.5-7b", max_tokens=64000, messages=[
            {"role": "system", "content": asked["system"]}, *PROMPT])


def test_count_tokens_is_the_gateways_count_of_the_request(cluster):
    gpt = claude(cluster, "bob")
    plain = gpt.messages.count_tokens(model="llama-3.1-8b", messages=ASK).input_tokens
    with_tools = gpt.messages.count_tokens(model="llama-3.1-8b", messages=ASK, tools=[WEATHER],
                                           system="You check the weather.").input_tokens
    assert 0 < plain < with_tools
    # what message_start says of the same request (the task's own estimate)
    start = next(iter(gpt.messages.create(model="llama-3.1-8b", max_tokens=20, messages=ASK, tools=[WEATHER],
                                          system="You check the weather.", stream=True)))
    assert start.type == "message_start" and start.message.usage.input_tokens == with_tools
    reply = post(cluster, "/v1/messages/count_tokens", {"model": "gpt-9-ultra", "messages": ASK}, "bob")
    assert reply.status_code == 404 and reply.json()["error"]["type"] == "not_found_error"


def test_the_model_listing_serves_both_sdks(cluster):
    listed = claude(cluster, "bob").models.list()
    ids = [m.id for m in listed.data]
    assert "llama-3.1-8b:q4_k_m" in ids and all(m.type == "model" and m.display_name for m in listed.data)
    assert listed.has_more is False and listed.first_id == ids[0]
    assert claude(cluster, "bob").models.retrieve("llama-3.1-8b:q4_k_m").id == "llama-3.1-8b:q4_k_m"
    assert [m.id for m in client(cluster, "bob").models.list().data] == ids
    with pytest.raises(anthropic.NotFoundError) as missing:
        claude(cluster, "bob").models.retrieve("llama-3.1-70b:q4_k_m")
    assert missing.value.body["error"]["type"] == "not_found_error"
    keyless = httpx.get(cluster.base_url + "/v1/models", headers={"anthropic-version": "2023-06-01"})
    assert keyless.status_code == 401 and keyless.json()["error"]["type"] == "authentication_error"
