"""A completion task (payload ``completion``: a raw prompt, or a prompt and a suffix to fill in
the middle) as each backend sends it: what its stand-in server received (Ollama's
``/api/generate``, the OpenAI-compatible ``/v1/completions``, over real HTTP) or what MLX handed
the stand-in mlx-lm, the text streamed back from each protocol's own field, and the refusals of
what a backend cannot do (Claude: both; MLX: a suffix) naming the field and the backend."""

from __future__ import annotations

import pytest

from heddle.live.agent.executors import ExecutionError, Progress
from tests.live.backendkit import assignment, close, harness
from tests.live.llmstandin import WORDS

TEXT = "".join(WORDS)
FIM = "<|fim_prefix|>def area(r):\n    <|fim_suffix|>\n    return a<|fim_middle|>"
"""An editor's own fill-in-the-middle prompt (Qwen2.5-Coder's markers), sent raw."""
SAMPLING = {"temperature": 0.2, "top_p": 0.9, "seed": 5, "stop": ["\n\n"]}


@pytest.fixture(params=["ollama", "openai"])
async def served(request):
    made = harness(request.param)
    yield made
    await close(made)


def sent(h) -> tuple[str, dict]:
    path, _, body = h.server.requests[-1]
    return path, body


async def test_a_raw_prompt_goes_as_it_is_to_the_servers_completion_route(served):
    payload = {"completion": {"prompt": FIM, "raw": True}, "max_tokens": 16, "sampling": SAMPLING}
    progress = Progress()
    result = await served.executor.run(assignment(payload=payload, **served.task), progress)
    assert result["text"] == TEXT and result["output_tokens"] == len(WORDS)
    assert result["prompt_tokens"] == 12  # the server's count
    path, body = sent(served)
    assert "messages" not in body and "system" not in body and body["prompt"] == FIM
    if served.name == "ollama":
        assert path == "/api/generate" and body["raw"] is True and "suffix" not in body
        assert body["options"] == {"num_predict": 16, **SAMPLING}
    else:  # /v1/completions takes every prompt as it is: no raw field there
        assert path == "/v1/completions" and "raw" not in body and "suffix" not in body
        assert body["max_tokens"] == 16 and body["stream_options"] == {"include_usage": True}
        assert {k: body[k] for k in SAMPLING} == SAMPLING


async def test_a_suffix_goes_with_the_prompt_for_the_server_to_fill_in_the_middle(served):
    payload = {"completion": {"prompt": "def area(r):\n    ", "suffix": "\n    return a"}}
    result = await served.executor.run(assignment(payload=payload, **served.task), Progress())
    assert result["text"] == TEXT
    path, body = sent(served)
    assert path == {"ollama": "/api/generate", "openai": "/v1/completions"}[served.name]
    assert (body["prompt"], body["suffix"]) == ("def area(r):\n    ", "\n    return a")
    assert "raw" not in body and "messages" not in body


async def test_a_chat_still_goes_to_the_chat_route(served):
    await served.executor.run(assignment(payload={"prompt": "hi"}, **served.task), Progress())
    path, body = sent(served)
    assert path in ("/api/chat", "/v1/chat/completions") and body["messages"][-1]["content"] == "hi"


@pytest.mark.parametrize(("backend", "completion", "named"), [
    ("claude", {"prompt": FIM, "raw": True}, "claude at http://127.0.0.1:"),
    ("claude", {"prompt": "def f(", "suffix": ")"}, "claude at http://127.0.0.1:"),
    ("mlx", {"prompt": "def f(", "suffix": ")"}, "mlx at in-process:"),
])
async def test_a_backend_without_it_refuses_naming_the_field_and_itself(backend, completion, named):
    h = harness(backend)
    try:
        with pytest.raises(ExecutionError) as refused:
            await h.executor.run(assignment(payload={"completion": completion}, **h.task), Progress())
        assert h.calls() == 0  # nothing reached the server (nothing billed)
    finally:
        await close(h)
    field = "suffix" if "suffix" in completion else "raw"
    reason = str(refused.value)
    assert reason.startswith(named) and f": {field}: " in reason and "a node whose backend runs it" in reason


async def test_mlx_hands_a_raw_prompt_to_mlx_lm_without_the_chat_template():
    h = harness("mlx")
    try:
        payload = {"completion": {"prompt": FIM, "raw": True}, "max_tokens": 3}
        result = await h.executor.run(assignment(payload=payload, **h.task), Progress())
    finally:
        await close(h)
    assert result["text"] == "".join(WORDS[:3])
    assert h.lm.calls[-1]["prompt"] == FIM  # the string itself: no <|user|> turn around it


@pytest.mark.parametrize(("completion", "reason"), [
    ({"prompt": "def f("}, "llm: payload completion needs raw true or a suffix"),
    ({"prompt": 5, "raw": True}, "llm: payload completion.prompt: expected a string, got 5"),
    ({"prompt": "x", "suffix": 1}, "llm: payload completion.suffix: expected a string, got 1"),
    ({"prompt": "x", "raw": "yes"}, "llm: payload completion.raw: expected true or false, got 'yes'"),
    ({"prompt": "", "raw": True}, "llm: payload completion.prompt: expected a non-empty string (or a suffix)"),
    ("def f(", "llm: payload completion must be an object, got str"),
])
async def test_a_bad_completion_fails_naming_the_field(served, completion, reason):
    with pytest.raises(ExecutionError) as failed:
        await served.executor.run(assignment(payload={"completion": completion}, **served.task), Progress())
    assert str(failed.value).startswith(reason)
    assert served.calls() == 0
