"""A task's generation options (payload ``sampling`` and ``format``) as each backend sends them:
the body its stand-in server received (Ollama, OpenAI-compatible, Claude over real HTTP; MLX's
calls into the stand-in mlx-lm), the fields it could not send named in the result, the same
body for the same options in any order, and a bad payload refused naming the field."""

from __future__ import annotations

import json

import pytest

from heddle.live.agent.executors import ExecutionError, Progress
from heddle.live.backends import OpenAIExecutor
from tests.live.backendkit import BACKENDS, assignment, close, harness
from tests.live.llmstandin import WORDS, StandIn

pytestmark = pytest.mark.filterwarnings("error:The model 'claude-:DeprecationWarning")

SAMPLING = {"temperature": 0.3, "top_p": 0.9, "top_k": 40, "min_p": 0.05, "seed": 1234,
            "stop": ["\n\nUser:"], "presence_penalty": 0.5, "frequency_penalty": -0.5,
            "repeat_penalty": 1.1, "num_ctx": 8192}
SCHEMA = {"type": "object", "properties": {"label": {"type": "string"}}, "required": ["label"]}
SCHEMA_FORMAT = {"type": "json_schema", "schema": SCHEMA, "name": "label"}

NOT_SENT = {"ollama": None, "openai": ["num_ctx"], "mlx": ["num_ctx", "format"],
            "claude": ["temperature", "top_p", "top_k", "min_p", "seed", "presence_penalty",
                       "frequency_penalty", "repeat_penalty", "num_ctx"]}
"""What each backend cannot send of SAMPLING and SCHEMA_FORMAT (the module docs say why)."""


@pytest.fixture(params=BACKENDS)
async def h(request):
    made = harness(request.param)
    yield made
    await close(made)


def body_of(h) -> dict:
    return h.server.requests[-1][2]


async def test_each_backend_sends_the_options_under_its_servers_names(h):
    payload = {"prompt": "label this", "max_tokens": 20, "sampling": SAMPLING, "format": SCHEMA_FORMAT}
    result = await h.executor.run(assignment(payload=payload, **h.task), Progress())
    assert result["text"] == "".join(WORDS)
    assert result.get("options_not_sent") == NOT_SENT[h.name]
    if h.name == "ollama":
        body = body_of(h)
        assert body["options"] == {"num_predict": 20, **SAMPLING} and body["format"] == SCHEMA
    elif h.name == "openai":
        body = body_of(h)
        assert {k: body[k] for k in SAMPLING if k != "num_ctx"} == {k: v for k, v in SAMPLING.items()
                                                                    if k != "num_ctx"}
        assert body["repetition_penalty"] == 1.1 and "num_ctx" not in body
        assert body["response_format"] == {"type": "json_schema",
                                           "json_schema": {"name": "label", "schema": SCHEMA}}
    elif h.name == "claude":
        body = body_of(h)
        assert body["stop_sequences"] == ["\n\nUser:"]
        assert body["output_config"] == {"format": {"type": "json_schema", "schema": SCHEMA}}
        assert not set(SAMPLING) & set(body)
    else:
        call = h.lm.calls[-1]
        assert call["sampler"] == ("sampler", {"temp": 0.3, "top_p": 0.9, "min_p": 0.05, "top_k": 40})
        assert call["logits_processors"] == ("processors", {
            "repetition_penalty": 1.1, "presence_penalty": 0.5, "frequency_penalty": -0.5})
        assert call["seed"] == 1234


@pytest.mark.parametrize("sampling", [None, {}, {"stop": [], "seed": None}])
async def test_no_options_send_what_was_sent_before(h, sampling):
    payload = {"prompt": "hi"} if sampling is None else {"prompt": "hi", "sampling": sampling}
    result = await h.executor.run(assignment(payload=payload, **h.task), Progress())
    assert "options_not_sent" not in result
    if h.lm is not None:
        call = h.lm.calls[-1]
        assert "sampler" not in call and "logits_processors" not in call and call["seed"] is None
        return
    body = body_of(h)
    assert not ({*SAMPLING, "format", "response_format", "repetition_penalty", "stop_sequences",
                 "output_config"} & set(body))
    if h.name == "ollama":
        assert set(body["options"]) == {"num_predict"}


async def test_the_same_options_in_any_order_make_the_same_body(h):
    bodies = []
    for sampling in (SAMPLING, dict(reversed(SAMPLING.items()))):
        await h.executor.run(assignment(payload={"prompt": "hi", "sampling": sampling}, **h.task), Progress())
        if h.lm is not None:  # MLX runs in process: the calls into mlx-lm, in their order
            call = h.lm.calls[-1]
            bodies.append(json.dumps([call["sampler"], call["logits_processors"], call["seed"]]))
        else:
            bodies.append(json.dumps(body_of(h)))
    assert bodies[0] == bodies[1]


@pytest.mark.parametrize(("payload", "reason"), [
    ({"sampling": {"temperature": 5}}, "llm: payload sampling.temperature: expected a number from 0 to 2, got 5"),
    ({"sampling": {"seed": "7"}}, "llm: payload sampling.seed: expected an integer, got '7'"),
    ({"sampling": {"stop": "END"}}, "llm: payload sampling.stop: expected a list of non-empty strings"),
    ({"sampling": {"mirostat": 2}}, "llm: payload sampling.mirostat: expected one of temperature, top_p"),
    ({"sampling": [0.5]}, "llm: payload sampling: expected an object, got [0.5]"),
    ({"format": "json"}, 'llm: payload format: expected {"type": "json"} or'),
    ({"format": {"type": "json_schema"}}, "llm: payload format.schema: expected a JSON schema object, got None"),
])
async def test_a_bad_payload_fails_naming_the_field(h, payload, reason):
    with pytest.raises(ExecutionError) as failed:
        await h.executor.run(assignment(payload={"prompt": "hi", **payload}, **h.task), Progress())
    assert str(failed.value).startswith(reason)
    assert h.calls() == 0  # nothing reached the server


async def test_a_json_object_goes_as_each_server_takes_it():
    server = StandIn()
    try:
        for backend, expected in (("openai", {"type": "json_object"}),
                                  ("lm-studio", {"type": "json_schema", "json_schema": {
                                      "name": "response", "schema": {"type": "object"}}})):
            lm = OpenAIExecutor(server.url, kinds=("openai",), backend=backend)
            try:
                await lm.run(assignment(payload={"prompt": "hi", "format": {"type": "json"}},
                                        model="llama-3.1-8b", quant="q4_k_m"), Progress())
            finally:
                await lm.close()
            assert server.requests[-1][2]["response_format"] == expected, backend
    finally:
        server.stop()


async def test_claude_takes_no_json_mode_without_a_schema_nor_a_whitespace_stop_and_says_so():
    h = harness("claude")
    try:
        payload = {"prompt": "hi", "format": {"type": "json"}, "sampling": {"stop": ["\n\n", "END"]}}
        result = await h.executor.run(assignment(payload=payload, **h.task), Progress())
    finally:
        await close(h)
    assert result["options_not_sent"] == ["stop", "format"]
    body = body_of(h)
    assert body["stop_sequences"] == ["END"] and "output_config" not in body


@pytest.mark.parametrize(("words", "stop", "text", "finish"), [
    (["alpha", " be", "ta gam", "ma"], ["beta g"], "alpha ", "stop"),  # across three tokens
    (["alpha", " be", "ta"], ["beta gamma"], "alpha beta", "length"),  # held back, then let go
    (["alpha", "\n", "\nUser: more"], ["x", "\n\nUser:"], "alpha", "stop"),
])
async def test_mlx_ends_the_output_before_a_stop_sequence(words, stop, text, finish):
    h = harness("mlx")
    chunks: list[str] = []
    progress = Progress()
    progress.on_text = chunks.append
    h.script(words)
    try:
        result = await h.executor.run(assignment(payload={"prompt": "hi", "max_tokens": len(words),
                                                          "sampling": {"stop": stop}}, **h.task), progress)
    finally:
        await close(h)
    assert (result["text"], result["finish_reason"]) == (text, finish)
    assert "".join(chunks) == text  # what streamed never included the stop's start
