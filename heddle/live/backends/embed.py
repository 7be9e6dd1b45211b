"""Embeddings: a task whose payload has ``embed`` asks its backend for one vector per input
text, not for a chat completion.

The payload (the gateway's: heddle.gateway.embeddings) is ``{"embed": {"input": [text, ...],
"truncate": bool, "dimensions": int | null, "options": {...}}}``. A local server answers it in
one document: Ollama's ``POST /api/embed`` (``input``, ``truncate``, ``dimensions``,
``options``), an OpenAI-compatible server's ``POST /v1/embeddings`` (``input``, ``dimensions``,
``encoding_format: float``; these servers have no ``truncate`` or model options: an input
longer than the model's context is their error). The vectors go back on the attempt's token
stream (`heddle.live.executors.Progress.vectors`, protocol 1.10), never in its result, which
counts them (``embeddings``, ``dimensions``) beside the prompt tokens the server reports. A
server that ignores ``dimensions`` (vectors of another length come back) fails the attempt
saying so: the caller never gets vectors of a length it did not ask for. Claude (no
embeddings API) and MLX (mlx-lm has no embedding models) do not declare the feature
(heddle.live.features): the control plane never places the task there, and they refuse it
with that reason if it comes.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx2
from pydantic import BaseModel, ConfigDict, ValidationError

from heddle.live.agent.executors import ExecutionError, Progress
from heddle.live.backends.common import http_failure
from heddle.live.protocol import Assignment

if TYPE_CHECKING:
    from heddle.live.backends.local import LocalServer

__all__ = ["EMBED_KEY", "Embedding", "embedding", "run_embedding"]

EMBED_KEY = "embed"
"""The payload key of an embedding task."""


@dataclass(frozen=True, slots=True)
class Embedding:
    """What an embedding attempt asks for."""

    inputs: list[str]
    truncate: bool = True
    dimensions: int | None = None
    options: dict[str, Any] | None = None


def embedding(assignment: Assignment) -> Embedding | None:
    """The payload's embedding request, checked (ExecutionError naming the field), or None
    for any other task."""
    payload = assignment.payload
    if not isinstance(payload, dict) or EMBED_KEY not in payload:
        return None
    spec = payload[EMBED_KEY]
    if not isinstance(spec, dict):
        raise ExecutionError(f"embed: payload embed must be an object, got {type(spec).__name__}")
    inputs, dimensions = spec.get("input"), spec.get("dimensions")
    if not (isinstance(inputs, list) and inputs and all(isinstance(t, str) for t in inputs)):
        raise ExecutionError("embed: payload embed.input must be a non-empty list of strings")
    if dimensions is not None and (not isinstance(dimensions, int) or isinstance(dimensions, bool)
                                   or dimensions < 1):
        raise ExecutionError(f"embed: payload embed.dimensions must be a positive integer, got {dimensions!r}")
    options = spec.get("options")
    if options is not None and not isinstance(options, dict):
        raise ExecutionError("embed: payload embed.options must be an object")
    return Embedding(inputs, spec.get("truncate") is not False, dimensions, options)


def _ollama(name: str, ask: Embedding) -> tuple[str, dict[str, Any]]:
    body: dict[str, Any] = {"model": name, "input": ask.inputs, "truncate": ask.truncate}
    if ask.dimensions is not None:
        body["dimensions"] = ask.dimensions
    if ask.options:
        body["options"] = ask.options
    return "/api/embed", body


def _openai(name: str, ask: Embedding) -> tuple[str, dict[str, Any]]:
    body: dict[str, Any] = {"model": name, "input": ask.inputs, "encoding_format": "float"}
    if ask.dimensions is not None:
        body["dimensions"] = ask.dimensions
    return "/v1/embeddings", body


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str | None = None


class _OllamaAnswer(_Answer):
    """``/api/embed``'s answer (what of it is read)."""

    embeddings: list[list[float]]
    prompt_eval_count: int | None = None

    def read(self) -> tuple[list[list[float]], int | None]:
        return self.embeddings, self.prompt_eval_count


class _OpenAIItem(BaseModel):
    model_config = ConfigDict(extra="ignore")

    embedding: list[float]
    index: int = 0


class _OpenAIUsage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    prompt_tokens: int | None = None


class _OpenAIAnswer(_Answer):
    """``/v1/embeddings``' answer (what of it is read): the vectors by ``index``."""

    data: list[_OpenAIItem]
    usage: _OpenAIUsage | None = None

    def read(self) -> tuple[list[list[float]], int | None]:
        vectors = [d.embedding for d in sorted(self.data, key=lambda d: d.index)]
        return vectors, None if self.usage is None else self.usage.prompt_tokens


APIS = {"ollama": (_ollama, _OllamaAnswer), "openai": (_openai, _OpenAIAnswer)}
"""Each local server protocol's embedding request and its answer's model: read and checked in
one pass by pydantic's JSON parser (a fifth of json.loads' time for 100 vectors of 768)."""


def _checked(vectors: list[list[float]], ask: Embedding, where: str) -> list[list[float]]:
    """The server's vectors: one per input, all of one length (the one asked for, if any);
    ExecutionError saying what is wrong."""
    if len(vectors) != len(ask.inputs):
        raise ExecutionError(f"{where}: {len(vectors)} vectors for {len(ask.inputs)} inputs")
    sizes = {len(v) for v in vectors}
    if len(sizes) > 1 or 0 in sizes:
        raise ExecutionError(f"{where}: vectors of different lengths ({sorted(sizes)})")
    if ask.dimensions is not None and sizes != {ask.dimensions}:
        raise ExecutionError(f"{where}: asked for {ask.dimensions} dimensions, the server returned "
                             f"{sizes.pop()} (it does not shorten this model's vectors)")
    return vectors


def _object(data: bytes) -> dict[str, Any] | None:
    """``data``'s JSON object, or None if it is not one."""
    try:
        doc = json.loads(data)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


async def run_embedding(server: LocalServer, assignment: Assignment, ask: Embedding,
                        progress: Progress) -> dict[str, Any]:
    """One embedding request to ``server`` (its protocol: ``server.embed_api``); the vectors to
    ``progress``, the counts as the result."""
    if server.embed_api not in APIS:
        raise ExecutionError(f"{server.backend}: embeddings are not supported by this backend")
    request, answer = APIS[server.embed_api]
    name = await server._served_name(assignment)
    path, body = request(name, ask)
    where = f"{server.backend} at {server.url}"
    started = time.monotonic()
    try:
        async with server._client.stream("POST", path, body) as response:
            data = await response.read()
    except httpx2.HTTPError as exc:
        raise ExecutionError(http_failure(server.backend, server.url, exc)) from None
    if response.status_code >= 400:
        raise ExecutionError(f"{where}: HTTP {response.status_code} from POST {path}: "
                             f"{data[:300].decode(errors='replace')}")
    try:
        read = answer.model_validate_json(data)
    except ValidationError as exc:
        doc = _object(data)
        if doc is not None and "error" in doc:
            raise ExecutionError(f"{where}: {doc['error']}") from None
        err = exc.errors()[0]
        field = ".".join(str(part) for part in err["loc"]) or "the answer"
        raise ExecutionError(f"{where}: {field}: {err['msg']} (the answer starts {data[:100]!r})") from None
    raw, prompt_tokens = read.read()
    vectors = _checked(raw, ask, where)
    duration = time.monotonic() - started
    progress.first_token()
    progress.vectors(vectors)
    return {"backend": server.backend, "server": server.url, "model_used": read.model or name,
            "prompt_tokens": prompt_tokens, "output_tokens": 0,
            "embeddings": len(vectors), "dimensions": len(vectors[0]),
            # the whole request is the prefill: its time feeds the speed records as one
            "ttft_s": duration, "duration_s": duration, "cost_usd": 0.0,
            "account": assignment.task.account}
