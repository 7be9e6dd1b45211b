"""Generation options reach the model server: with the `openai` and `ollama` clients, through
the gateway and a real agent, the body the stand-in server receives carries them under that
server's own names (Ollama's ``options``/``format``, the OpenAI-compatible fields), whichever
protocol the caller spoke; a value out of its rule is a 400 naming the field, and no task runs."""

from __future__ import annotations

import json

import httpx
import ollama
import openai
import pytest

from tests.gateway.conftest import KEYS, OPENAI_NODE
from tests.gateway.gatewaykit import OPENAI_MODEL
from tests.live.clusterkit import WAIT_S
from tests.live.llmstandin import WORDS

TEXT = "".join(WORDS)
PROMPT = [{"role": "user", "content": "Give me a JSON lantern."}]
SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}


def gpt(cluster) -> openai.OpenAI:
    return openai.OpenAI(base_url=cluster.base_url + "/v1", api_key=KEYS["bob"]["key"],
                         max_retries=0, timeout=WAIT_S)


def llama(cluster) -> ollama.Client:
    return ollama.Client(host=cluster.base_url, headers={"Authorization": "Bearer " + KEYS["bob"]["key"]})


def received(cluster, node: str) -> dict:
    """The body the node's model server got last."""
    return cluster.standins[node].requests[-1][2]


def forget(cluster) -> None:
    """The stand-ins forget what they received (`only_body` then finds the one new)."""
    for standin in cluster.standins.values():
        with standin.lock:
            standin.requests.clear()


def only_body(cluster) -> dict:
    """The one body a model server received since `forget`."""
    (body,) = [r[2] for s in cluster.standins.values() for r in s.requests]
    return body


def test_openai_options_reach_an_openai_compatible_server_under_its_names(cluster):
    raw = gpt(cluster).chat.completions.with_raw_response.create(
        model="qwen2.5-7b", messages=PROMPT, max_tokens=30, temperature=0, top_p=0.5, seed=7,
        stop="END", presence_penalty=0.25, frequency_penalty=-0.5, n=1,
        response_format={"type": "json_schema", "json_schema": {"name": "lantern", "schema": SCHEMA}},
        extra_body={"top_k": 20, "min_p": 0.05, "repeat_penalty": 1.1})
    assert raw.headers["x-heddle-node"] == OPENAI_NODE and raw.parse().choices[0].message.content == TEXT
    body = received(cluster, OPENAI_NODE)
    assert {k: body[k] for k in ("temperature", "top_p", "seed", "stop", "presence_penalty",
                                 "frequency_penalty", "top_k", "min_p", "max_tokens")} == {
        "temperature": 0, "top_p": 0.5, "seed": 7, "stop": ["END"], "presence_penalty": 0.25,
        "frequency_penalty": -0.5, "top_k": 20, "min_p": 0.05, "max_tokens": 30}
    assert body["repeat_penalty"] == body["repetition_penalty"] == 1.1  # llama.cpp's name, vLLM's
    assert body["response_format"] == {"type": "json_schema",
                                       "json_schema": {"name": "lantern", "schema": SCHEMA}}
    assert "n" not in body and body["model"] == OPENAI_MODEL

    gpt(cluster).chat.completions.create(model="qwen2.5-7b", messages=PROMPT,
                                         response_format={"type": "json_object"})
    assert received(cluster, OPENAI_NODE)["response_format"] == {"type": "json_object"}


def test_ollama_options_reach_an_ollama_server_under_its_names_streaming_or_not(cluster):
    options = {"temperature": 0.2, "top_p": 0.9, "top_k": 30, "min_p": 0.1, "seed": 42,
               "stop": ["\n\n", "User:"], "repeat_penalty": 1.15, "presence_penalty": 0.5,
               "frequency_penalty": 0.5, "num_ctx": 8192, "num_predict": 25}
    forget(cluster)
    reply = llama(cluster).chat(model="llama3.1:8b-instruct-q4_K_M", messages=PROMPT,
                                options=options, format=SCHEMA, stream=False)
    assert reply.message.content == TEXT
    body = only_body(cluster)
    assert body["options"] == options and body["format"] == SCHEMA

    forget(cluster)
    parts = list(llama(cluster).generate(model="llama-3.1-8b", prompt="a lantern?", format="json",
                                         options={"temperature": 0, "seed": 1}, stream=True))
    assert "".join(p.response for p in parts) == TEXT
    body = only_body(cluster)
    assert body["options"] == {"num_predict": 256, "temperature": 0, "seed": 1}
    assert body["format"] == "json"


def test_openai_options_reach_an_ollama_server_as_its_options(cluster):
    with gpt(cluster).chat.completions.with_streaming_response.create(
            model="llama-3.1-8b", messages=PROMPT, max_tokens=20, temperature=1.5, seed=3,
            stop=["a", "b"], frequency_penalty=1, response_format={"type": "json_object"},
            stream=True) as raw:
        node = raw.headers["x-heddle-node"]
        text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    assert text == TEXT
    body = received(cluster, node)
    assert body["options"] == {"num_predict": 20, "temperature": 1.5, "seed": 3, "stop": ["a", "b"],
                               "frequency_penalty": 1}
    assert body["format"] == "json"


def test_the_same_request_sends_the_same_body_whatever_the_order_of_its_options(cluster):
    def ask(options: dict) -> str:
        llama(cluster).chat(model="qwen2.5-7b", messages=PROMPT, options=options, stream=False)
        return json.dumps(received(cluster, OPENAI_NODE))

    options = {"seed": 11, "temperature": 0.7, "stop": ["x"], "top_k": 5, "top_p": 0.8}
    first = ask(options)
    assert ask(dict(reversed(options.items()))) == first
    assert first.index('"temperature"') < first.index('"top_p"') < first.index('"seed"')


def test_an_option_a_server_cannot_take_is_named_in_the_answer(cluster):
    reply = httpx.post(cluster.base_url + "/api/chat", timeout=WAIT_S,
                       headers={"Authorization": "Bearer " + KEYS["bob"]["key"]},
                       json={"model": "qwen2.5-7b", "messages": PROMPT, "stream": False,
                             "options": {"num_ctx": 4096, "temperature": 0}})
    assert reply.json()["heddle"]["options_not_sent"] == ["num_ctx"]  # fixed at the server's load
    assert "num_ctx" not in received(cluster, OPENAI_NODE)


@pytest.mark.parametrize(("fields", "param", "expected"), [
    ({"temperature": 3}, "temperature", "a number from 0 to 2"),
    ({"top_p": "high"}, "top_p", "a number from 0 to 1"),
    ({"seed": 1.5}, "seed", "an integer"),
    ({"stop": ["a", ""]}, "stop", "a string or a list of non-empty strings"),
    ({"presence_penalty": -3}, "presence_penalty", "from -2 to 2"),
    ({"n": 2}, "n", "1 (heddle returns one choice)"),
    ({"response_format": {"type": "xml"}}, "response_format", "json_object"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
     "response_format.json_schema.schema", "a JSON schema object"),
])
def test_a_bad_openai_option_is_a_400_naming_the_field(cluster, fields, param, expected):
    asked = sum(len(s.requests) for s in cluster.standins.values())
    with pytest.raises(openai.BadRequestError) as refused:
        gpt(cluster).chat.completions.create(model="llama-3.1-8b", messages=PROMPT, extra_body=fields)
    error = refused.value.body
    assert refused.value.status_code == 400 and error["param"] == param
    assert error["message"].startswith(f"{param}: expected ") and expected in error["message"]
    assert sum(len(s.requests) for s in cluster.standins.values()) == asked  # no task ran


@pytest.mark.parametrize(("fields", "named"), [
    ({"options": {"temperature": "hot"}}, "options.temperature: expected a number from 0 to 2"),
    ({"options": {"top_k": -1}}, "options.top_k: expected an integer >= 0"),
    ({"options": {"stop": [""]}}, "options.stop: expected a list of non-empty strings"),
    ({"options": {"num_ctx": 0}}, "options.num_ctx: expected an integer >= 1"),
    ({"format": "yaml"}, 'format: expected "json" or a JSON schema object'),
])
def test_a_bad_ollama_option_is_a_400_naming_the_field(cluster, fields, named):
    for path, prompt in (("/api/chat", {"messages": PROMPT}), ("/api/generate", {"prompt": "hi"})):
        reply = httpx.post(cluster.base_url + path, timeout=WAIT_S,
                           headers={"Authorization": "Bearer " + KEYS["bob"]["key"]},
                           json={"model": "llama-3.1-8b", **prompt, **fields})
        assert reply.status_code == 400 and reply.json()["error"].startswith(named), reply.text


def test_legacy_completions_answer_a_prompt_streaming_or_not_with_its_options(cluster):
    """``POST /v1/completions`` as editors' autocomplete and older scripts call it: the prompt
    as it is (tests/gateway/test_completion.py has more)."""
    forget(cluster)
    reply = gpt(cluster).completions.create(model="llama-3.1-8b", prompt="def fib(n):", max_tokens=12,
                                            temperature=0, stop=["\n\n"], seed=9)
    assert reply.object == "text_completion" and reply.id.startswith("cmpl-")
    assert reply.choices[0].text == TEXT and reply.choices[0].finish_reason == "stop"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (12, len(WORDS))
    body = only_body(cluster)
    assert (body["prompt"], body["raw"]) == ("def fib(n):", True) and "messages" not in body
    assert body["options"] == {"num_predict": 12, "temperature": 0, "seed": 9, "stop": ["\n\n"]}

    stream = gpt(cluster).completions.create(model="qwen2.5-7b", prompt=["def fib(n):"], stream=True,
                                             stream_options={"include_usage": True}, top_p=0.5)
    chunks = list(stream)
    assert all(c.object == "text_completion" for c in chunks)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == TEXT
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage.completion_tokens == len(WORDS)
    assert chunks[-1].usage.model_extra["heddle"]["node"] == OPENAI_NODE
    body = received(cluster, OPENAI_NODE)
    assert (body["prompt"], body["top_p"]) == ("def fib(n):", 0.5)


@pytest.mark.parametrize(("asked", "param"), [
    ({"logprobs": True}, "logprobs"), ({"logprobs": True, "top_logprobs": 3}, "logprobs"),
    ({"top_logprobs": 2}, "top_logprobs"), ({"stream": True, "logprobs": True}, "logprobs"),
])
def test_a_chat_asking_for_logprobs_is_a_400_naming_the_field(cluster, asked, param):
    # none are returned: an app reading choices[0].logprobs would get null and nothing said
    ran = sum(len(s.requests) for s in cluster.standins.values())
    with pytest.raises(openai.BadRequestError) as refused:
        gpt(cluster).chat.completions.create(model="llama-3.1-8b", messages=PROMPT, **asked)
    assert refused.value.status_code == 400 and refused.value.body["param"] == param
    assert refused.value.body["message"].startswith(f"{param}: expected no {param}")
    assert sum(len(s.requests) for s in cluster.standins.values()) == ran  # no task ran
    fine = gpt(cluster).chat.completions.create(model="llama-3.1-8b", messages=PROMPT, logprobs=False,
                                                 top_logprobs=None, max_tokens=5)
    assert fine.choices[0].message.content and fine.choices[0].logprobs is None


@pytest.mark.parametrize(("fields", "param", "expected"), [
    ({"prompt": ["one", "two"]}, "prompt", "a non-empty string, or a list of one"),
    ({"prompt": [1, 2, 3]}, "prompt", "a non-empty string, or a list of one"),
    ({"echo": True}, "echo", "echo false"),
    ({"best_of": 3}, "best_of", "best_of 1"),
    ({"temperature": -1}, "temperature", "a number from 0 to 2"),
])
def test_a_legacy_completion_heddle_cannot_honour_is_a_400_naming_the_field(cluster, fields, param, expected):
    with pytest.raises(openai.BadRequestError) as refused:
        gpt(cluster).completions.create(model="llama-3.1-8b", **{"prompt": "hi", **fields})
    assert refused.value.body["param"] == param and expected in refused.value.body["message"]
