"""OpenAI's Responses API (``POST /v1/responses``) with the `openai` client's ``responses``,
against real agents running stand-in model servers: the answer streamed (the SDK's event
parser and ``responses.stream`` accept the events) and not, ``output_text``, usage and where it
ran; a function call round trip; JSON schema output reaching the server; personal work on its
owner's node and a loosening refused; what needs stored state refused with a 400 naming the
field, and bad input named; a stream that cannot go on ends in the API's error events (a
caller that disconnects cancels its task: test_gateway)."""

from __future__ import annotations

import json

import anthropic
import httpx
import openai
import pydantic
import pytest

from tests.gateway.conftest import KEYS, OPENAI_NODE
from tests.gateway.test_gateway import TEXT, client
from tests.live.clusterkit import WAIT_S
from tests.live.llmstandin import THOUGHTS, TOOL_ARGUMENTS, WORDS, Plan, ollama_stream

THOUGHT = "".join(THOUGHTS)
NODE = "alice-mac"  # alice's personal work runs only there
ASK = "Tell me a story about a lantern."
WEATHER = {"type": "function", "name": "get_weather", "description": "The weather forecast for a city.",
           "parameters": {"type": "object", "required": ["city"],
                          "properties": {"city": {"type": "string"}}}, "strict": False}
SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"],
          "additionalProperties": False}


EVENT = pydantic.TypeAdapter(openai.types.responses.ResponseStreamEvent)


def streamed(cluster, body: dict, who: str = "alice") -> list[dict]:
    """The streamed events as they came, each validated strictly as the SDK's types (its own
    parser builds its objects without validating), its SSE name its type."""
    with httpx.stream("POST", cluster.base_url + "/v1/responses", json={**body, "stream": True},
                      headers={"Authorization": "Bearer " + KEYS[who]["key"]}, timeout=WAIT_S) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line]
    docs = []
    for name, data in zip(lines[::2], lines[1::2], strict=True):
        doc = json.loads(data.removeprefix("data: "))
        assert name == "event: " + doc["type"]
        EVENT.validate_python(doc)
        docs.append(doc)
    assert [d["sequence_number"] for d in docs] == list(range(len(docs)))
    return docs


def sent(cluster, node: str = NODE) -> dict:
    """The last request the node's model server got."""
    return cluster.standins[node].requests[-1][2]


@pytest.fixture
def standins(cluster):
    for standin in cluster.standins.values():
        standin.plans.clear()  # a plan an earlier test left unused
    return cluster.standins


def test_openai_client_gets_a_response_with_output_text_usage_and_where_it_ran(cluster, standins):
    raw = client(cluster, "alice").responses.with_raw_response.create(
        model="llama-3.1-8b", input=ASK, instructions="Be brief.", max_output_tokens=40,
        temperature=0.5, store=True, metadata={"app": "test"})
    reply = raw.parse()
    assert reply.output_text == TEXT and reply.status == "completed"
    assert reply.id.startswith("resp_") and reply.object == "response"
    (message,) = reply.output
    assert (message.type, message.role, message.status) == ("message", "assistant", "completed")
    assert message.content[0].type == "output_text" and message.content[0].annotations == []
    assert (reply.usage.input_tokens, reply.usage.output_tokens, reply.usage.total_tokens) == (
        12, len(WORDS), 12 + len(WORDS))
    where = reply.usage.model_extra["heddle"]
    assert (where["node"], where["privacy"], raw.headers["x-heddle-node"]) == (NODE, "personal", NODE)
    assert reply.model_extra["store"] is False  # heddle keeps no responses, whatever store says
    body = sent(cluster)
    assert body["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": ASK}]
    assert body["options"]["num_predict"] == 40 and body["options"]["temperature"] == 0.5


def test_openai_client_streams_a_response_its_parser_and_stream_helper_accept(cluster, standins):
    gpt = client(cluster, "bob")
    events = list(gpt.responses.create(model="llama-3.1-8b", stream=True, input=[
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": [{"type": "input_text", "text": ASK}]}]))
    kinds = [e.type for e in events]
    assert kinds[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done",
                          "response.output_item.done", "response.completed"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == TEXT
    final = events[-1].response
    assert final.output_text == TEXT and final.usage.output_tokens == len(WORDS)
    assert final.usage.model_extra["heddle"]["privacy"] == "public"

    with gpt.responses.stream(model="llama-3.1-8b", input=ASK) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        done = stream.get_final_response()
    assert "".join(deltas) == TEXT and done.output_text == TEXT and done.status == "completed"


@pytest.mark.parametrize("tools", [False, True])
def test_every_event_and_reply_validates_as_the_sdks_own_types(cluster, standins, tools):
    body = {"model": "llama-3.1-8b", "input": ASK, **({"tools": [WEATHER]} if tools else {})}
    names = []
    for doc in streamed(cluster, body):
        if names[-1:] != [doc["type"]]:  # the text's pieces: as many deltas as came apart
            names.append(doc["type"])
    item = (["response.function_call_arguments.delta", "response.function_call_arguments.done"] if tools
            else ["response.content_part.added", "response.output_text.delta", "response.output_text.done",
                  "response.content_part.done"])
    assert names == ["response.created", "response.in_progress", "response.output_item.added", *item,
                     "response.output_item.done", "response.completed"]
    reply = httpx.post(cluster.base_url + "/v1/responses", json=body, timeout=WAIT_S,
                       headers={"Authorization": "Bearer " + KEYS["alice"]["key"]})
    response = openai.types.responses.Response.model_validate(reply.json())
    assert [o.type for o in response.output] == (["function_call"] if tools else ["message"])


def test_a_reasoning_models_thinking_is_a_reasoning_item_streamed_before_the_answer(cluster, standins):
    cluster.wait_idle(OPENAI_NODE)  # else a q8_0 request may be placed off dave-pc (gatewaykit)
    docs = streamed(cluster, {"model": "gpt-oss-20b:q8_0", "input": ASK,  # dave-pc only
                              "reasoning": {"effort": "high", "summary": "auto"}}, who="bob")
    names = []
    for doc in docs:
        if names[-1:] != [doc["type"]]:
            names.append(doc["type"])
    opened = ["response.output_item.added", "response.content_part.added"]
    closed = ["response.content_part.done", "response.output_item.done"]
    assert names == ["response.created", "response.in_progress",
                     *opened, "response.reasoning_text.delta", "response.reasoning_text.done", *closed,
                     *opened, "response.output_text.delta", "response.output_text.done", *closed,
                     "response.completed"]
    assert "".join(d["delta"] for d in docs if d["type"] == "response.reasoning_text.delta") == THOUGHT
    assert "".join(d["delta"] for d in docs if d["type"] == "response.output_text.delta") == TEXT
    final = docs[-1]["response"]
    assert [o["type"] for o in final["output"]] == ["reasoning", "message"]
    assert final["usage"]["output_tokens_details"]["reasoning_tokens"] == len(THOUGHTS)
    assert sent(cluster, OPENAI_NODE)["reasoning_effort"] == "high"

    reply = client(cluster, "bob").responses.create(model="gpt-oss:20b", input=ASK,  # an Ollama node
                                                    reasoning={"effort": "low"})
    thinking, message = reply.output
    assert thinking.type == "reasoning" and thinking.content[0].text == THOUGHT and thinking.summary == []
    assert reply.output_text == TEXT and message.type == "message"
    assert sent(cluster, reply.usage.model_extra["heddle"]["node"])["think"] == "low"


def test_an_answer_cut_at_the_output_bound_is_incomplete(cluster, standins):
    chunks = ollama_stream(standins[NODE].model)
    standins[NODE].plans.append(Plan(chunks=[*chunks[:-1], chunks[-1].replace(b'"stop"', b'"length"')]))
    reply = client(cluster, "alice").responses.create(model="llama-3.1-8b", input=ASK, max_output_tokens=16)
    assert reply.status == "incomplete" and reply.incomplete_details.reason == "max_output_tokens"
    assert reply.output_text == TEXT and reply.output[0].status == "incomplete"


@pytest.mark.parametrize("stream", [False, True])
def test_a_function_call_round_trip(cluster, standins, stream):
    gpt = client(cluster, "alice")
    ask = [{"role": "user", "content": "What will the weather be in Lisbon?"}]
    if stream:
        with gpt.responses.stream(model="llama-3.1-8b", input=ask, tools=[WEATHER]) as events:
            kinds = [e.type for e in events]
            reply = events.get_final_response()
        assert "response.function_call_arguments.done" in kinds and kinds[-1] == "response.completed"
    else:
        reply = gpt.responses.create(model="llama-3.1-8b", input=ask, tools=[WEATHER], tool_choice="auto")
    (call,) = reply.output
    assert (call.type, call.name, call.status) == ("function_call", "get_weather", "completed")
    assert json.loads(call.arguments) == TOOL_ARGUMENTS and call.call_id and reply.output_text == ""
    assert sent(cluster)["tools"] == [{"type": "function", "function": {
        k: WEATHER[k] for k in ("name", "description", "parameters")}}]

    # the call and the tool's output go back as items; the model answers in text
    history = [*ask, call.model_dump(exclude_none=True),
               {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 24 C"}]
    answer = gpt.responses.create(model="llama-3.1-8b", input=history, tools=[WEATHER])
    assert answer.output_text == TEXT and [o.type for o in answer.output] == ["message"]
    assert sent(cluster)["messages"][1:] == [
        {"role": "assistant", "content": "", "tool_calls": [
            {"function": {"name": "get_weather", "arguments": TOOL_ARGUMENTS}}]},
        {"role": "tool", "content": "sunny, 24 C", "tool_name": "get_weather"}]


def test_json_schema_output_reaches_the_model_server(cluster, standins):
    reply = client(cluster, "bob").responses.create(
        model="qwen2.5-7b", input=ASK,  # only dave-pc serves qwen: an OpenAI-compatible server
        text={"format": {"type": "json_schema", "name": "lantern", "schema": SCHEMA, "strict": True}})
    assert reply.output_text == TEXT and reply.usage.model_extra["heddle"]["node"] == OPENAI_NODE
    assert sent(cluster, OPENAI_NODE)["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "lantern", "schema": SCHEMA}}


def test_personal_work_stays_home_and_a_loosening_is_refused(cluster, standins):
    for _ in range(2):
        raw = client(cluster, "alice").responses.with_raw_response.create(model="llama-3.1-8b", input=ASK)
        assert raw.headers["x-heddle-node"] == NODE and raw.headers["x-heddle-privacy"] == "personal"
    with pytest.raises(openai.PermissionDeniedError) as refused:
        client(cluster, "alice").responses.create(model="llama-3.1-8b", input=ASK,
                                                  extra_headers={"X-Heddle-Privacy": "public"})
    assert refused.value.code == "privacy_loosening"


@pytest.mark.parametrize(("fields", "param", "words"), [
    ({"previous_response_id": "resp_abc"}, "previous_response_id", "keeps no responses"),
    ({"conversation": "conv_abc"}, "conversation", "keeps no responses"),
    ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input.0.type", "keeps no responses"),
    ({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "file-1"}]}]},
     "input.0.content.0.type", "input_file is not taken"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "https://x/y.png"}]}]},
     "input.0.content.0", "does not fetch image URLs"),
    ({"input": [{"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{"}]},
     "input.0.arguments", "JSON object"),
    ({"input": [{"type": "function_call_output", "output": "sunny"}]}, "input.0.call_id", "id of the call"),
    ({"input": [{"type": "function_call_output", "call_id": 7, "output": "sunny"}]}, "input.0.call_id",
     "id of the call"),
    ({"input": [{"role": "tool", "content": "x"}]}, "input.0.role", "user, assistant"),
    ({"input": []}, "input", "non-empty"),
    ({"tools": [{"type": "web_search"}]}, "tools.0.type", "functions only"),
    ({"tools": [{"type": "function", "name": "get weather"}]}, "tools.0.name", "pattern"),
    ({"tools": [WEATHER], "tool_choice": {"type": "function", "name": "nope"}}, "tool_choice.name",
     "no function named 'nope'"),
    ({"tools": [WEATHER], "tool_choice": {"type": "allowed_tools", "mode": "auto", "tools": []}},
     "tool_choice", "'required' or {\"type\": \"function\", \"name\""),
    ({"text": {"format": {"type": "json_schema", "name": "x"}}}, "text.format.schema", "JSON schema"),
    ({"temperature": 3}, "temperature", "from 0 to 2"),
    ({"top_logprobs": 2}, "top_logprobs", "no logprobs"),
    ({"reasoning": {"effort": "high"}}, "reasoning.effort", "does not support thinking"),
    ({"reasoning": {"effort": "lots"}}, "reasoning.effort", "one of none"),
])
def test_bad_fields_are_refused_naming_them_and_run_nothing(cluster, standins, fields, param, words):
    before = sum(len(s.requests) for s in standins.values())
    reply = httpx.post(cluster.base_url + "/v1/responses", timeout=WAIT_S,
                       headers={"Authorization": "Bearer " + KEYS["bob"]["key"]},
                       json={"model": "llama-3.1-8b", "input": ASK, **fields})
    error = reply.json()["error"]
    assert reply.status_code == 400 and error["param"] == param and words in error["message"], error
    assert sum(len(s.requests) for s in standins.values()) == before


def test_input_tokens_are_counted_as_the_task_counts_them_running_none(cluster, standins):
    gpt = client(cluster, "bob")
    asked = sum(len(s.requests) for s in standins.values())
    plain = gpt.responses.input_tokens.count(model="llama-3.1-8b", input=ASK, instructions="Be brief.")
    assert plain.object == "response.input_tokens" and plain.input_tokens > 0
    tooled = gpt.responses.input_tokens.count(model="llama-3.1-8b", input=ASK, instructions="Be brief.",
                                              tools=[WEATHER])
    assert tooled.input_tokens > plain.input_tokens  # the tools' schemas are in the prompt
    claude = anthropic.Anthropic(base_url=cluster.base_url, api_key=KEYS["bob"]["key"], max_retries=0,
                                 timeout=WAIT_S)
    assert claude.messages.count_tokens(model="llama-3.1-8b", system="Be brief.", messages=[
        {"role": "user", "content": ASK}]).input_tokens == plain.input_tokens  # one count, both APIs
    with pytest.raises(openai.BadRequestError) as stateful:
        gpt.responses.input_tokens.count(model="llama-3.1-8b", input=ASK, previous_response_id="resp_1")
    assert stateful.value.param == "previous_response_id"
    assert sum(len(s.requests) for s in standins.values()) == asked  # no task ran


def test_a_stored_response_cannot_be_retrieved_or_deleted(cluster):
    gpt = client(cluster, "bob")
    for call in (gpt.responses.retrieve, gpt.responses.delete, gpt.responses.cancel):
        with pytest.raises(openai.NotFoundError) as missing:
            call("resp_gw-bob-0-chat")
        assert missing.value.code == "response_not_found" and "keeps no responses" in missing.value.message


def test_a_stream_that_cannot_go_on_ends_with_an_error_and_response_failed(cluster, standins):
    # the model server closes the connection mid-answer: the caller gets what came, then the
    # reason as an error event and the response failed, numbered on, and the body's end
    standins[NODE].plans.append(Plan(chunks=ollama_stream(standins[NODE].model), cut_after=3))
    events = streamed(cluster, {"model": "llama-3.1-8b", "input": ASK})
    error, failed = events[-2:]
    assert error["type"] == "error" and error["code"] == "task_failed" and NODE in error["message"]
    assert failed["type"] == "response.failed" and failed["response"]["status"] == "failed"
    assert failed["response"]["error"]["message"] == error["message"]
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert text == "".join(WORDS[:3]) and failed["response"]["output"][0]["content"][0]["text"] == text
