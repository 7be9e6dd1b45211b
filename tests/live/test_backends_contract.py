"""The executor contract every LLM backend keeps (Ollama, OpenAI-compatible, Claude, MLX):
what a result reports, the output cap, a worker's output_schema, a failure mid-stream and a
cancelled attempt; the backend keeps serving after each."""

from __future__ import annotations

import asyncio

import pytest

from heddle.live.agent.executors import ExecutionError, Progress
from heddle.live.backends.worker import parse_worker
from tests.live.backendkit import BACKENDS, assignment, close, harness
from tests.live.llmstandin import WORDS

pytestmark = pytest.mark.filterwarnings("error:The model 'claude-:DeprecationWarning")
WAIT_S = 30.0


@pytest.fixture(params=BACKENDS)
async def h(request):
    made = harness(request.param)
    yield made
    await close(made)


async def test_a_result_reports_text_tokens_timings_and_the_model_used(h):
    progress = Progress()
    result = await h.executor.run(assignment(payload={"prompt": "hello"}, output_tokens=30, **h.task), progress)
    assert result["text"] == "".join(WORDS) and result["backend"] == h.name
    assert result["output_tokens"] == len(WORDS) and not result["output_tokens_counted"]
    assert result["prompt_tokens"] > 0 and result["model_used"]
    assert 0 <= result["ttft_s"] <= result["duration_s"] and result["decode_tokens_per_s"] > 0
    assert progress.first_token_at is not None
    assert h.sent()[1:] == ("hello", 30)  # the prompt, and the output capped at the task's tokens
    assert (result["cost_usd"] > 0) == (h.name == "claude")


async def test_a_worker_output_that_breaks_its_schema_fails_the_attempt(h):
    worker = parse_worker("name: label\nworker_kind: llm\nsystem_prompt: Label it.\nmax_output_tokens: 9\n"
                          "output_schema: {type: object, required: [label], properties: {label: {enum: [spam, ham]}}}\n")
    h.script(['{"label":', ' "ham"}'])
    ok = await h.executor.run(assignment(payload="buy now", options=worker.options(), **h.task), Progress())
    assert ok["output"] == {"label": "ham"}
    system, user, cap = h.sent()
    assert system.startswith("Label it.") and user == "buy now" and cap == 9
    h.script(['{"label":', ' "eggs"}'])
    with pytest.raises(ExecutionError, match=r"output_schema: worker label: \$.label: expected one of \['spam', 'ham'\], got 'eggs'") as bad:
        await h.executor.run(assignment(payload="buy now", options=worker.options(), **h.task), Progress())
    assert bad.value.result["text"] == '{"label": "eggs"}'  # reported with the failure (and its cost)


async def test_a_stream_that_breaks_fails_with_the_reason_and_the_backend_keeps_serving(h):
    h.script(cut_after=2)
    with pytest.raises(ExecutionError, match=rf"{h.name}") as failed:
        await h.executor.run(assignment(**h.task), Progress())
    assert "2" in str(failed.value)  # how far it got
    result = await h.executor.run(assignment(task_id="t2", **h.task), Progress())
    assert result["text"] == "".join(WORDS)


async def test_a_cancelled_attempt_stops_and_the_next_one_runs(h):
    hold = h.hold()
    h.script(hold=hold, hold_at=2)
    progress = Progress()
    running = asyncio.create_task(h.executor.run(assignment(**h.task), progress))
    async with asyncio.timeout(WAIT_S):
        while progress.first_token_at is None:
            await asyncio.sleep(0.01)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    hold.set()
    result = await h.executor.run(assignment(task_id="t2", **h.task), Progress())
    assert result["text"] == "".join(WORDS)
    if h.lm is not None:  # in-process: the cancelled generator stopped, never two at once
        assert h.lm.tokens_made <= 3 + len(WORDS) and h.lm.most_running == 1
