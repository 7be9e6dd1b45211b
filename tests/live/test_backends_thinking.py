"""A reasoning model's thinking through each backend (Ollama, OpenAI-compatible, Claude over real
HTTP to stand-in servers speaking each server's format): the task's ``think`` in the body as
the server takes it, the thinking handed on apart from the answer and before it, in the
result (``thinking``, ``reasoning_tokens``), and a bad ``think`` refused naming it. MLX (no
switch: it lacks the ``thinking`` feature, tests/live/test_features.py) splits a model's
in-band ``<think>`` block from its answer."""

from __future__ import annotations

import pytest

from heddle.live.agent.executors import ExecutionError, Progress
from heddle.live.backends import ClaudeExecutor, OllamaExecutor, OpenAIExecutor
from heddle.live.backends.claude import MIN_THINKING_BUDGET, thinking_budget
from heddle.live.backends.mlx import _InBand
from tests.live.backendkit import assignment, close, harness
from tests.live.llmstandin import THOUGHTS, WORDS, StandIn
from tests.live.mlxstandin import Script

GPT_OSS = {"model": "gpt-oss-20b", "quant": "mxfp4"}
CLAUDE = {"model": None, "quant": None, "tier": "standard", "account": "team"}


def reasoning_server(name: str) -> tuple[StandIn, object]:
    if name == "ollama":
        server = StandIn("gpt-oss:20b")
        server.tags[0]["details"] = {"parameter_size": "20.9B", "quantization_level": "MXFP4"}
        return server, OllamaExecutor(server.url)
    if name == "openai":
        server = StandIn("gpt-oss-20b-MXFP4.gguf")
        return server, OpenAIExecutor(server.url)
    server = StandIn("claude")
    return server, ClaudeExecutor("sk-test", server.url)


def recorder() -> tuple[Progress, list[tuple[str, str]]]:
    """A progress whose sinks record each piece with its kind, in arrival order."""
    seen: list[tuple[str, str]] = []
    progress = Progress()
    progress.on_text = lambda piece: seen.append(("text", piece))
    progress.on_thinking = lambda piece: seen.append(("thinking", piece))
    return progress, seen


SENT_AS = {
    ("ollama", True): {"think": True}, ("ollama", "high"): {"think": "high"},
    ("ollama", False): {"think": False},
    ("openai", True): {"chat_template_kwargs": {"enable_thinking": True}},
    ("openai", "high"): {"reasoning_effort": "high"},
    ("openai", False): {"chat_template_kwargs": {"enable_thinking": False}},
    ("claude", True): {"thinking": {"type": "enabled", "budget_tokens": 2000}},
    ("claude", "high"): {"thinking": {"type": "enabled", "budget_tokens": 3200}},
    ("claude", False): {"thinking": {"type": "disabled"}},
}
"""Each backend's body for ``think`` with an output bound of 4000 tokens."""


@pytest.mark.parametrize("think", [True, "high", False], ids=["true", "high", "false"])
@pytest.mark.parametrize("name", ["ollama", "openai", "claude"])
async def test_the_thinking_streams_apart_from_the_answer_and_before_it(name, think):
    server, executor = reasoning_server(name)
    try:
        progress, seen = recorder()
        payload = {"messages": [{"role": "user", "content": "five words"}], "max_tokens": 4000,
                   "think": think}
        result = await executor.run(assignment(payload=payload, **(CLAUDE if name == "claude" else GPT_OSS)),
                                     progress)
        body = server.requests[-1][2]
        assert {k: body[k] for k in SENT_AS[name, think]} == SENT_AS[name, think]
        thoughts = THOUGHTS if think is not False else []
        assert seen == [("thinking", t) for t in thoughts] + [("text", w) for w in WORDS]
        assert result["text"] == "".join(WORDS)
        assert "options_not_sent" not in result
        if think is False:
            assert "thinking" not in result and "reasoning_tokens" not in result
            return
        assert result["thinking"] == "".join(THOUGHTS)
        assert result["output_tokens"] == len(WORDS) + len(THOUGHTS)  # thinking counts as output
        if name == "claude":  # its deltas are not a token each, and it says no count
            assert "reasoning_tokens" not in result
        else:
            assert result["reasoning_tokens"] == len(THOUGHTS)
    finally:
        await executor.close()
        server.stop()


async def test_openai_compatible_thinking_under_delta_reasoning_too():
    server, executor = reasoning_server("openai")
    server.reasoning_field = "reasoning"  # Ollama's OpenAI endpoint, OpenRouter
    try:
        progress, seen = recorder()
        result = await executor.run(assignment(payload={"prompt": "hi"}, **GPT_OSS), progress)
        assert "reasoning_effort" not in server.requests[-1][2]  # absent: the server's default
        assert seen[:len(THOUGHTS)] == [("thinking", t) for t in THOUGHTS]
        assert result["thinking"] == "".join(THOUGHTS)
    finally:
        await executor.close()
        server.stop()


async def test_ollama_refusing_to_make_a_model_think_fails_the_attempt_with_its_words():
    h = harness("ollama")  # llama3.1: no thinking
    try:
        with pytest.raises(ExecutionError, match="does not support thinking"):
            await h.executor.run(assignment(payload={"prompt": "hi", "think": True}, **h.task), Progress())
    finally:
        await close(h)


@pytest.mark.parametrize("bound, think, budget", [
    (4000, "low", 1024), (4000, True, 2000), (4000, "high", 3200), (1100, "high", 1024), (1025, "low", 1024),
    (1024, True, None), (4000, False, None), (4000, None, None)])
def test_claudes_thinking_budget_is_the_levels_share_of_the_bound(bound, think, budget):
    assert thinking_budget(think, bound) == budget
    assert budget is None or MIN_THINKING_BUDGET <= budget < bound


async def test_claude_with_no_room_to_think_answers_and_says_think_was_not_sent():
    server, executor = reasoning_server("claude")
    try:
        payload = {"prompt": "hi", "max_tokens": 500, "think": "high"}
        result = await executor.run(assignment(payload=payload, **CLAUDE), Progress())
        assert "thinking" not in server.requests[-1][2]
        assert result["options_not_sent"] == ["think"] and result["text"] == "".join(WORDS)
    finally:
        await executor.close()
        server.stop()


async def test_mlx_splits_in_band_thinking_from_the_answer():
    h = harness("mlx")
    try:
        # a Qwen3-style output: the thinking in band, the tags and the newlines pieces of their own
        h.lm.scripts.append(Script(words=["<think>", "\n", *THOUGHTS, "\n", "</", "think>", "\n\n", *WORDS]))
        progress, seen = recorder()
        result = await h.executor.run(assignment(payload={"prompt": "hi"}, **h.task), progress)
        assert result["text"] == "".join(WORDS) and result["thinking"] == "\n" + "".join(THOUGHTS) + "\n"
        kinds = [kind for kind, _ in seen]
        assert kinds == sorted(kinds, key=lambda kind: kind == "text")  # the thinking first
    finally:
        await close(h)


@pytest.mark.parametrize("pieces, thought, answer", [
    (["<think>", "a", "</think>", "b"], "a", "b"),
    (["<th", "ink>a</thi", "nk>\n\nb"], "a", "b"),
    (["<think>\n\n</think>\n\n", "b"], "\n\n", "b"),  # thinking off: an empty block
    (["Hello", " <think>"], "", "Hello <think>"),  # a tag later on is the answer's
    (["<", "b>bold"], "", "<b>bold"),
    (["<think>", "cut sho"], "cut sho", ""),  # the output ended while thinking
])
def test_in_band_thinking_is_split_however_the_pieces_fall(pieces, thought, answer):
    inband = _InBand()
    parts = [inband.split(piece) for piece in pieces] + [inband.rest()]
    assert ("".join(t for t, _ in parts), "".join(a for _, a in parts)) == (thought, answer)


@pytest.mark.parametrize("think", ["max", 1, "", {"effort": "low"}])
async def test_a_bad_think_is_refused_naming_it(think):
    h = harness("ollama")
    try:
        with pytest.raises(ExecutionError, match="payload think: expected true, false"):
            await h.executor.run(assignment(payload={"prompt": "hi", "think": think}, **h.task), Progress())
        assert h.calls() == 0
    finally:
        await close(h)
