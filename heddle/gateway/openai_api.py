"""The OpenAI-compatible routes: ``POST /v1/chat/completions`` (server-sent events or one JSON
reply, usage included), ``GET /v1/models`` and ``GET /v1/models/{model}``.

Honoured fields: ``model``, ``messages`` (text content; a list of text parts is joined),
``max_tokens`` / ``max_completion_tokens``, ``stream``, ``stream_options.include_usage``, and
the generation options of heddle.gateway.options (``temperature``, ``top_p``, ``seed``,
``stop``, the penalties, ``response_format``; ``n`` other than 1 refused), which reach the
model server. Unknown fields are ignored, as OpenAI-compatible servers do (apps send many),
so these models do not forbid extra fields.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from heddle.gateway.errors import GatewayError
from heddle.gateway.options import openai_generation
from heddle.gateway.run import TaskRun
from heddle.live.backends.generation import Generation

__all__ = ["ChatRequest", "chat_chunks", "chat_reply", "error_event", "model_reply", "models_reply"]


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: str
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.get("text") or "" for part in self.content
                           if part.get("type") in ("text", "input_text", None))
        return self.content or ""


class _StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1)
    messages: list[_Message] = Field(min_length=1)
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    stream: bool = False
    stream_options: _StreamOptions | None = None
    # generation options: any JSON here, checked by `generation` (errors in its words)
    temperature: Any = None
    top_p: Any = None
    top_k: Any = None
    min_p: Any = None
    seed: Any = None
    stop: Any = None
    presence_penalty: Any = None
    frequency_penalty: Any = None
    repeat_penalty: Any = None
    response_format: Any = None
    n: Any = None

    def generation(self) -> Generation:
        return openai_generation(self)

    def chat_messages(self) -> tuple[list[dict[str, str]], str | None]:
        """(messages, system): system messages joined into the backends' system prompt."""
        system = "\n\n".join(m.text() for m in self.messages if m.role in ("system", "developer"))
        messages = [{"role": m.role, "content": m.text()} for m in self.messages
                    if m.role not in ("system", "developer")]
        if not messages:
            raise GatewayError(400, "messages: expected at least one user message",
                               "invalid_messages", param="messages")
        return messages, system or None


def _usage(run: TaskRun) -> dict[str, Any]:
    prompt, completion = run.counts()
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion, "heddle": run.where()}


def _finish_reason(run: TaskRun) -> str:
    return "length" if run.usage.get("finish_reason") == "length" else "stop"


def chat_reply(run: TaskRun) -> dict[str, Any]:
    """The non-streaming ``chat.completion`` object."""
    return {
        "id": f"chatcmpl-{run.task_id}", "object": "chat.completion", "created": run.created,
        "model": run.chat.model.name,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": run.output_text},
                     "finish_reason": _finish_reason(run), "logprobs": None}],
        "usage": _usage(run),
    }


_HOLE = "\x00piece\x00"
_HOLE_JSON = json.dumps(_HOLE).encode()


def _event(doc: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(doc, separators=(",", ":")).encode() + b"\n\n"


def error_event(exc: GatewayError) -> bytes:
    """A failure mid-stream: an ``error`` event (the stream's last)."""
    return _event(exc.openai())


async def chat_chunks(run: TaskRun, include_usage: bool):
    """The ``chat.completion.chunk`` events; a failure mid-stream raises GatewayError (the
    stream then ends with `error_event`: `app._Request.stream`).

    The assistant's role rides on the first piece's delta (as Ollama's OpenAI endpoint sends
    it) and the closing events leave together: every event is a socket write to the caller,
    and on a busy machine each write that wakes the caller may hand it the core (the
    gateway's loop then waits: py-spy showed ~40% of its wall time inside those writes)."""
    head = {"id": f"chatcmpl-{run.task_id}", "object": "chat.completion.chunk",
            "created": run.created, "model": run.chat.model.name}
    # each piece's event is the same text around the piece's JSON string: one dumps per piece
    first_before, first_after = _event({**head, "choices": [{"index": 0, "delta": {
        "role": "assistant", "content": _HOLE}, "finish_reason": None}]}).split(_HOLE_JSON)
    before, after = _event({**head, "choices": [{"index": 0, "delta": {"content": _HOLE},
                                                 "finish_reason": None}]}).split(_HOLE_JSON)
    started = False
    async for text in run.pieces():
        if started:
            yield before + json.dumps(text).encode() + after
        else:
            started = True
            yield first_before + json.dumps(text).encode() + first_after
    closing = [] if started else [first_before + b'""' + first_after]  # no output: the role still
    closing.append(_event({**head, "choices": [{"index": 0, "delta": {},
                                                "finish_reason": _finish_reason(run)}]}))
    if include_usage:
        closing.append(_event({**head, "choices": [], "usage": _usage(run)}))
    closing.append(b"data: [DONE]\n\n")
    yield b"".join(closing)


def model_reply(ident: str, owner: str) -> dict[str, Any]:
    """One model as ``GET /v1/models`` lists it and ``GET /v1/models/{model}`` answers."""
    return {"id": ident, "object": "model", "created": 0, "owned_by": owner}


def models_reply(models: list[tuple[str, str]]) -> dict[str, Any]:
    """``GET /v1/models``: (id, owned_by) pairs."""
    return {"object": "list", "data": [model_reply(ident, owner) for ident, owner in models]}
