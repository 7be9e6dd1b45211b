"""Fill in the middle and raw prompts, as editors' autocomplete asks for them: with the `ollama`
client's ``generate(raw=True)`` and ``generate(suffix=...)`` and the `openai` client's
``completions.create(prompt=..., suffix=...)``, streaming and not, through the gateway and a
real agent, the model server receives the prompt as it was sent (no chat template around it)
and the suffix, on its own completion route (Ollama's ``/api/generate``, the OpenAI-compatible
``/v1/completions``) whichever protocol the caller spoke; a field out of its rule is a 400
naming it, and no task runs."""

from __future__ import annotations

import httpx
import pytest

from heddle.gateway.keys import Rules
from heddle.gateway.tasks import Chat, ModelRef, chat_task
from heddle.models.ids import Privacy
from tests.gateway.conftest import KEYS, OPENAI_NODE
from tests.gateway.test_options import forget, gpt, llama
from tests.live.clusterkit import WAIT_S
from tests.live.llmstandin import WORDS

TEXT = "".join(WORDS)
FIM = "<|fim_prefix|>def area(r):\n    <|fim_suffix|>\n    return a<|fim_middle|>"
"""Continue's own fill-in-the-middle prompt for Qwen2.5-Coder, sent raw."""
FIM_STOPS = ["<|endoftext|>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
             "<|repo_name|>", "<|file_sep|>", "<|im_start|>", "<|im_end|>", "\n\n\n"]
"""An editor's stop sequences for that model: its markers, more than OpenAI's own API takes (4)."""
BEFORE, AFTER = "def area(r):\n    ", "\n    return a"
ROUTES = {"llama-3.1-8b": "/api/generate", "qwen2.5-7b": "/v1/completions"}
"""Each model's node and so its server's completion route (qwen2.5-7b: the OpenAI-compatible one)."""
FILLS = {"qwen2.5-coder-7b": "/api/generate", "qwen2.5-coder-1.5b": "/v1/completions"}
"""The same for the code models, which fill in the middle (the catalog's ``fim``)."""


def only_request(cluster) -> tuple[str, str, dict]:
    """(node, path, body) of the one request a model server received since `forget`."""
    (request,) = [(node, r[0], r[2]) for node, s in cluster.standins.items() for r in s.requests]
    return request


@pytest.mark.parametrize("model", ROUTES)
@pytest.mark.parametrize("stream", [False, True])
def test_ollama_generate_raw_reaches_the_server_as_it_was_sent(cluster, model, stream):
    forget(cluster)
    reply = llama(cluster).generate(model=model, prompt=FIM, raw=True, stream=stream,
                                    options={"temperature": 0, "num_predict": 16})
    parts = list(reply) if stream else [reply]
    assert "".join(p.response for p in parts) == TEXT and parts[-1].done
    assert parts[-1].eval_count == len(WORDS)
    node, path, body = only_request(cluster)
    assert path == ROUTES[model] and (node == OPENAI_NODE) == (model == "qwen2.5-7b")
    assert body["prompt"] == FIM and "messages" not in body and "suffix" not in body
    if path == "/api/generate":
        assert body["raw"] is True and body["options"] == {"num_predict": 16, "temperature": 0}
    else:  # that route takes every prompt as it is
        assert "raw" not in body and (body["max_tokens"], body["temperature"]) == (16, 0)


@pytest.mark.parametrize("model", FILLS)
@pytest.mark.parametrize("stream", [False, True])
def test_ollama_generate_with_a_suffix_fills_in_the_middle(cluster, model, stream):
    forget(cluster)
    reply = llama(cluster).generate(model=model, prompt=BEFORE, suffix=AFTER, stream=stream)
    parts = list(reply) if stream else [reply]
    assert "".join(p.response for p in parts) == TEXT
    _, path, body = only_request(cluster)
    assert path == FILLS[model] and (body["prompt"], body["suffix"]) == (BEFORE, AFTER)
    assert "raw" not in body and "messages" not in body


@pytest.mark.parametrize("model", FILLS)
@pytest.mark.parametrize("stream", [False, True])
def test_openai_completions_with_a_suffix_fill_in_the_middle(cluster, model, stream):
    forget(cluster)
    reply = gpt(cluster).completions.create(model=model, prompt=BEFORE, suffix=AFTER, max_tokens=24,
                                            stop=["\n\n"], stream=stream,
                                            **({"stream_options": {"include_usage": True}} if stream else {}))
    chunks = list(reply) if stream else [reply]
    assert all(c.object == "text_completion" for c in chunks)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == TEXT
    assert chunks[-1].usage.completion_tokens == len(WORDS)
    _, path, body = only_request(cluster)
    assert path == FILLS[model] and (body["prompt"], body["suffix"]) == (BEFORE, AFTER)
    assert "messages" not in body and "raw" not in body  # the server's template takes the suffix
    stop = body["options"]["stop"] if path == "/api/generate" else body["stop"]
    assert stop == ["\n\n"]


@pytest.mark.parametrize("model", ROUTES)
def test_openai_completions_send_an_editors_own_template_as_it_is(cluster, model):
    """What OpenAI-compatible servers do with ``/v1/completions``' prompt, and what an editor
    that writes the model's fill-in-the-middle markers itself relies on: no chat template."""
    forget(cluster)
    reply = gpt(cluster).completions.create(model=model, prompt=FIM, max_tokens=24, stop=FIM_STOPS)
    assert reply.choices[0].text == TEXT
    _, path, body = only_request(cluster)
    assert path == ROUTES[model] and body["prompt"] == FIM and "messages" not in body
    assert body.get("raw") is (True if path == "/api/generate" else None)
    assert (body["options"]["stop"] if path == "/api/generate" else body["stop"]) == FIM_STOPS


def test_a_prompt_without_raw_or_suffix_is_still_a_chat_message(cluster):
    """Ollama's ``/api/generate`` puts such a prompt in the model's template, as does heddle
    (the chat route): editors that want it unwrapped say ``raw``."""
    forget(cluster)
    llama(cluster).generate(model="llama-3.1-8b", prompt="hi", system="be brief", raw=False, suffix="")
    _, path, body = only_request(cluster)
    assert path == "/api/chat" and body["messages"] == [{"role": "system", "content": "be brief"},
                                                        {"role": "user", "content": "hi"}]


@pytest.mark.parametrize(("fields", "named"), [
    ({"raw": "yes"}, "raw: expected true or false, got 'yes'"),
    ({"suffix": 5}, "suffix: expected a string, got 5"),
    ({"raw": True, "system": "be brief"}, "system: expected no system prompt with raw or a suffix"),
    ({"keep_alive": "soon"}, 'keep_alive: expected a duration such as "5m"'),
    ({"template": "{{ .Prompt }}"}, "template: expected no template (the model server applies the model's own"),
])
def test_a_bad_generate_is_a_400_naming_the_field(cluster, fields, named):
    forget(cluster)
    reply = httpx.post(cluster.base_url + "/api/generate", timeout=WAIT_S,
                       headers={"Authorization": "Bearer " + KEYS["bob"]["key"]},
                       json={"model": "llama-3.1-8b", "prompt": "def f(", **fields})
    assert reply.status_code == 400 and reply.json()["error"].startswith(named), reply.text
    assert not any(s.requests for s in cluster.standins.values())  # no task ran


def test_a_suffix_for_a_model_that_does_not_fill_in_the_middle_is_a_400_and_show_says_insert(cluster):
    """Ollama lists ``insert`` for a model whose template takes a suffix, and refuses a suffix
    for any other; heddle's rule for both is the catalog's ``fim``."""
    forget(cluster)
    for model in ("llama-3.1-8b", "qwen2.5-7b", "claude-haiku-4.5"):
        reply = httpx.post(cluster.base_url + "/api/generate", timeout=WAIT_S,
                           headers={"Authorization": "Bearer " + KEYS["bob"]["key"]},
                           json={"model": model, "prompt": BEFORE, "suffix": AFTER})
        assert reply.status_code == 400, reply.text
        assert reply.json()["error"].startswith(f"suffix: {model} does not fill in the middle")
        assert "qwen2.5-coder-7b" in reply.json()["error"]  # what to ask instead
    refused = httpx.post(cluster.base_url + "/v1/completions", timeout=WAIT_S,
                         headers={"Authorization": "Bearer " + KEYS["bob"]["key"]},
                         json={"model": "qwen2.5-7b", "prompt": BEFORE, "suffix": AFTER}).json()["error"]
    assert refused["param"] == "suffix" and refused["code"] == "invalid_value"
    assert not any(s.requests for s in cluster.standins.values())  # no task ran
    shown = {model: llama(cluster).show(model).capabilities
             for model in ("qwen2.5-coder:7b", "qwen2.5-coder-1.5b", "llama-3.1-8b")}
    assert shown == {"qwen2.5-coder:7b": ["completion", "tools", "insert"],
                     "qwen2.5-coder-1.5b": ["completion", "insert"], "llama-3.1-8b": ["completion", "tools"]}


@pytest.mark.parametrize(("fields", "param", "expected"), [
    ({"suffix": ["a"]}, "suffix", "a string"),
    ({"prompt": ""}, "prompt", "a non-empty string"),
])
def test_a_bad_legacy_completion_is_a_400_naming_the_field(cluster, fields, param, expected):
    reply = httpx.post(cluster.base_url + "/v1/completions", timeout=WAIT_S,
                       headers={"Authorization": "Bearer " + KEYS["bob"]["key"]},
                       json={"model": "llama-3.1-8b", "prompt": "def f(", **fields})
    error = reply.json()["error"]
    assert reply.status_code == 400 and error["param"] == param and expected in error["message"]


def test_a_completions_prompt_is_counted_from_its_prompt_and_suffix():
    """The task's prompt tokens, which placement and the fit check use: the prompt and the suffix
    at 4 characters a token, the fill-in-the-middle markers, no chat template."""
    rules = Rules(owner="bob", privacy=Privacy.PUBLIC, account=None, tier=None, deadline_s=None, max_wait_s=0)
    ref = ModelRef("llama-3.1-8b", "llama-3.1-8b", "q4_k_m")
    filled = chat_task(Chat(ref, [], 8, completion={"prompt": "a" * 400, "suffix": "b" * 200}), rules, "j", None)
    raw = chat_task(Chat(ref, [], 8, completion={"prompt": "a" * 400, "raw": True}), rules, "j", None)
    assert (filled.task.prompt_tokens, raw.task.prompt_tokens) == (150 + 3, 100)
    assert filled.payload == {"completion": {"prompt": "a" * 400, "suffix": "b" * 200}, "max_tokens": 8}
