"""A Responses API body of any shape is either a chat (messages, system prompt, options, tools)
or a 400 naming a field of the body as it was sent, never another error (a 500) and never a
field of the chat it becomes (``messages.2...``): property tests over bodies drawn from the
API's own item and tool shapes with wrong values mixed in. No cluster: the request's checks
run as the gateway runs them before any task."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from heddle.gateway.errors import GatewayError
from heddle.gateway.responses_api import ResponsesRequest

ODD = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.text(max_size=3),
                st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=2), st.integers(), max_size=2))
"""Values of the wrong kind for any field (those the body's model types, pydantic refuses by
their location, get values of their type: the checks behind them are what is drawn)."""
TEXT = st.one_of(st.sampled_from(["hi", "", "{}", '{"city": "Lisbon"}', "{"]), ODD)
PART = st.fixed_dictionaries({"type": st.sampled_from(["input_text", "input_text", "output_text", "refusal",
                                                      "input_file", "x"]),
                              "text": st.one_of(st.just("hi"), TEXT), "refusal": TEXT})
CONTENT = st.one_of(TEXT, st.lists(st.one_of(PART, PART, ODD), max_size=3))
MESSAGE = st.fixed_dictionaries({"role": st.one_of(st.sampled_from(["user", "assistant", "system", "developer",
                                                                    "tool"]), ODD),
                                 "content": CONTENT}, optional={"type": st.just("message")})
CALL = st.fixed_dictionaries({"type": st.just("function_call"), "call_id": st.one_of(st.sampled_from(["c1", "c2"]), ODD),
                              "name": st.one_of(st.sampled_from(["get_weather", "a b"]), ODD), "arguments": TEXT})
OUTPUT = st.fixed_dictionaries({"type": st.just("function_call_output"),
                                "call_id": st.one_of(st.sampled_from(["c1", "c2"]), ODD), "output": CONTENT})
OTHER = st.fixed_dictionaries({"type": st.sampled_from(["reasoning", "item_reference", "web_search_call"])})
ITEMS = st.lists(st.one_of(MESSAGE, MESSAGE, CALL, OUTPUT, OTHER, ODD), min_size=1, max_size=4)
INPUT = st.integers(0, 9).flatmap(lambda i: ODD if i == 0 else st.just("hi") if i == 1 else ITEMS)
"""Mostly items (a tenth a value of the wrong kind, a tenth a string)."""
TOOL = st.fixed_dictionaries({"type": st.one_of(st.just("function"), st.just("function"), ODD),
                              "name": st.one_of(st.sampled_from(["get_weather", "f", "a b"]), ODD)},
                             optional={"parameters": st.one_of(st.just({"type": "object"}), st.just({"type": "string"}), ODD),
                                       "description": TEXT, "strict": ODD})
BODY = st.fixed_dictionaries({"model": st.just("llama-3.1-8b"), "input": INPUT}, optional={
    "instructions": st.one_of(st.none(), st.text(max_size=3)), "tools": st.lists(TOOL, max_size=3),
    "tool_choice": st.one_of(st.sampled_from(["auto", "none", "required"]),
                             st.fixed_dictionaries({"type": st.just("function"), "name": TEXT}), ODD),
    "text": st.one_of(st.fixed_dictionaries({"format": st.one_of(
        st.fixed_dictionaries({"type": st.sampled_from(["text", "json_object", "json_schema", "x"])},
                              optional={"schema": st.one_of(st.just({"type": "object"}), ODD), "name": TEXT}), ODD)}), ODD),
    "reasoning": st.one_of(st.fixed_dictionaries({}, optional={"effort": st.one_of(st.sampled_from(
        ["none", "low", "high"]), ODD), "enabled": ODD}), ODD),
    "temperature": st.one_of(st.floats(-1, 3), ODD), "top_p": ODD, "top_logprobs": ODD,
    "previous_response_id": st.sampled_from([None, None, None, "resp_1"]), "max_output_tokens": st.integers(1, 50),
    "parallel_tool_calls": st.booleans()})
FIELD = re.compile(r"^(model|input|instructions|tools|tool_choice|text|reasoning|temperature|top_p|"
                   r"top_logprobs|previous_response_id|max_output_tokens|parallel_tool_calls)(\.|$)")
"""The body's own fields: what a 400 names (a path in the body as sent)."""


@settings(max_examples=400, deadline=None)
@given(BODY)
def test_any_body_is_a_chat_or_a_400_naming_a_field_as_sent(body):
    try:
        request = ResponsesRequest.model_validate(body)
    except ValidationError:
        return  # the app answers a 400 naming the pydantic error's location (app._parse)
    try:
        messages, system = request.chat_messages()
        request.generation()
        request.tool_spec()
    except GatewayError as exc:
        assert exc.status == 400 and exc.param is not None and FIELD.match(exc.param), (exc.param, exc.message)
        assert exc.message.startswith(exc.param), exc.message
        return
    assert messages and all(isinstance(m["content"], str) for m in messages)
    assert system is None or isinstance(system, str)
