"""Embeddings on each backend: Ollama's ``/api/embed`` and an OpenAI-compatible server's
``/v1/embeddings`` over real HTTP to stand-ins (the vectors go to the token sink, the result
counts them), a server that ignores ``dimensions`` fails the attempt saying so, an answer
with a vector missing fails it; Claude and MLX refuse with the reason."""

from __future__ import annotations

import pytest

from heddle.live.agent.executors import ExecutionError, Progress
from tests.live.backendkit import BACKENDS, assignment, close, harness
from tests.live.llmstandin import EMBEDDING_DIMENSIONS, Plan, embedding_doc, embedding_vector

TEXTS = ["the first text", "the second one", "a third"]
TASK = {"model": "nomic-embed-text-v1.5", "quant": "f16"}


LOCAL = ("ollama", "openai")
"""The backends whose servers have an embeddings API; the others refuse."""


@pytest.fixture(params=LOCAL)
async def h(request):
    made = harness(request.param)
    if made.server is not None:  # an Ollama and an OpenAI-compatible name of the model
        name = "nomic-embed-text:latest" if made.name == "ollama" else "nomic-embed-text-v1.5-f16.gguf"
        made.server.tags.append({"name": name, "details": {"quantization_level": "F16"}})
        made.server.loaded.append(name)
    yield made
    await close(made)


def embed(texts: list[str], **spec) -> dict:
    return {"embed": {"input": texts, **spec}}


def sink() -> tuple[Progress, list[list[float]]]:
    got: list[list[float]] = []
    return Progress(on_vectors=got.extend), got


async def test_local_servers_answer_with_the_vectors_and_report_counts(h):
    progress, got = sink()
    result = await h.executor.run(assignment(payload=embed(TEXTS), **TASK), progress)
    assert got == [embedding_vector(t) for t in TEXTS]
    assert result["embeddings"] == 3 and result["dimensions"] == EMBEDDING_DIMENSIONS
    assert result["output_tokens"] == 0 and result["prompt_tokens"] == sum(len(t.split()) + 2 for t in TEXTS)
    assert "text" not in result and result["backend"] == h.name
    path, _, body = h.server.requests[-1]
    assert path == ("/api/embed" if h.name == "ollama" else "/v1/embeddings") and body["input"] == TEXTS

    progress, got = sink()
    await h.executor.run(assignment(payload=embed(TEXTS[:1], dimensions=8), **TASK), progress)
    assert got == [embedding_vector(TEXTS[0], 8)]


async def test_a_server_that_ignores_dimensions_or_drops_a_vector_fails_the_attempt(h):
    h.server.embedder = lambda path, body: embedding_doc(path, {**body, "dimensions": None})
    with pytest.raises(ExecutionError, match="asked for 8 dimensions, the server returned 768"):
        await h.executor.run(assignment(payload=embed(TEXTS, dimensions=8), **TASK), sink()[0])
    h.server.embedder = lambda path, body: embedding_doc(path, {**body, "input": body["input"][:1]})
    with pytest.raises(ExecutionError, match="1 vectors for 3 inputs"):
        await h.executor.run(assignment(payload=embed(TEXTS), **TASK), sink()[0])
    h.server.embedder = embedding_doc
    h.server.plans.append(Plan(status=500))  # scripted plans are a chat's: an embedding is still answered
    progress, got = sink()
    await h.executor.run(assignment(payload=embed(TEXTS), **TASK), progress)
    assert len(got) == 3


async def test_without_a_token_stream_the_vectors_have_nowhere_to_go(h):
    with pytest.raises(ExecutionError, match="stream_tokens"):
        await h.executor.run(assignment(payload=embed(TEXTS), **TASK), Progress())


@pytest.fixture(params=[b for b in BACKENDS if b not in LOCAL])
async def refusing(request):
    made = harness(request.param)
    yield made
    await close(made)


async def test_claude_and_mlx_refuse_embeddings_with_the_reason(refusing):
    h = refusing
    reason = "no embeddings endpoint" if h.name == "claude" else "embeddings are not supported"
    with pytest.raises(ExecutionError, match=reason):
        await h.executor.run(assignment(payload=embed(TEXTS), **h.task), sink()[0])
    assert h.calls() == 0
