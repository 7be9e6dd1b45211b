"""The OpenAI-compatible routes: ``POST /v1/chat/completions`` (server-sent events or one JSON
reply, usage included), the legacy ``POST /v1/completions`` (a prompt string sent to the model as
it is, or with a ``suffix`` to fill in the middle, answered as ``text_completion``s the same
way), ``GET /v1/models`` and ``GET /v1/models/{model}``.

Honoured fields: ``model``, ``messages`` (text content; a list of text parts is joined; a user
message's ``image_url`` parts, base64 data URLs, for a model that takes images:
heddle.gateway.images; a part of another kind is a 400 naming it; an assistant's
``tool_calls``, a tool's result), ``max_tokens`` / ``max_completion_tokens``,
``stream``, ``stream_options.include_usage``, ``tools``, ``tool_choice``,
``parallel_tool_calls`` (chat completions: heddle.gateway.tools), and the generation options of
heddle.gateway.options (``temperature``, ``top_p``, ``seed``, ``stop``, the penalties,
``response_format``; ``n`` other than 1 refused), which reach the model server, and a
reasoning model's ``reasoning_effort`` / ``reasoning`` (heddle.gateway.thinking: its thinking
comes back as ``reasoning_content``). Fields asking
for what no model server returns here are a 400 naming the field: chat completions'
``logprobs: true`` and ``top_logprobs``, completions' ``echo``, ``best_of``, ``logprobs``
(heddle.gateway.options.UNHONOURED; their neutral values pass). Unknown fields
are ignored, as OpenAI-compatible servers do (apps send many), so these models do not forbid
extra fields.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from heddle.gateway.bodies import TaskBody
from heddle.gateway.errors import GatewayError
from heddle.gateway.images import ImageSet, attach
from heddle.gateway.options import completion, openai_generation, refused, unhonoured
from heddle.gateway.run import TaskRun, Thought
from heddle.gateway.thinking import openai_think, reasoning_usage
from heddle.gateway.tools import (
    OpenAITools,
    ToolMessage,
    openai_finish,
    openai_messages,
    openai_reply_calls,
)
from heddle.live.backends.generation import Generation, GenerationError

__all__ = ["CHAT", "TEXT", "ChatRequest", "CompletionRequest", "completion_chunks", "completion_reply",
           "error_event", "model_reply", "models_reply"]

CHAT, TEXT = "chat", "text"
"""The two shapes of an answer: a chat completion (``/v1/chat/completions``) or a legacy text
completion (``/v1/completions``)."""


TEXT_PARTS = ("text", "input_text", None)
IMAGE_PARTS = ("image_url", "input_image")


class _Message(ToolMessage):
    model_config = ConfigDict(extra="ignore")

    role: str
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.get("text") or "" for part in self.content
                           if part.get("type") in TEXT_PARTS)
        return self.content or ""

    def images(self, i: int, images: ImageSet) -> list[int]:
        """Its ``image_url`` parts (data URLs) added to ``images``: their indices. A part of
        another kind than text or image is a 400 naming it (never dropped in silence)."""
        found = []
        for j, part in enumerate(self.content if isinstance(self.content, list) else ()):
            kind, where = part.get("type"), f"messages.{i}.content.{j}"
            if kind in IMAGE_PARTS:
                url = part.get("image_url")
                found.append(images.add_url(url.get("url") if isinstance(url, dict) else url, where))
            elif kind not in TEXT_PARTS:
                raise GatewayError(400, f"{where}: content parts of type {kind!r} are not supported "
                                   "(text and image_url are)", "invalid_messages", param=where)
        return found


class _StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


class _Request(TaskBody):
    """What both completion routes take: the model, the output bound, streaming and the
    generation options (any JSON here, checked by `generation`: errors in its words)."""

    kind: ClassVar[str]  # CHAT or TEXT: the shape of the answer

    max_tokens: Annotated[int, Field(ge=1)] | None = None
    stream: bool = False
    stream_options: _StreamOptions | None = None
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
    reasoning_effort: Any = None
    reasoning: Any = None

    def generation(self) -> Generation:
        return openai_generation(self)

    def think_field(self) -> str:
        """The field that asked a reasoning model to think (`check_thinks` names it)."""
        return openai_think(self.reasoning_effort, self.reasoning)[1]

    def output_bound(self) -> int | None:
        return self.max_tokens

    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage


class ChatRequest(_Request, OpenAITools):
    kind = CHAT

    messages: list[_Message] = Field(min_length=1)
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    logprobs: Any = None
    top_logprobs: Any = None

    def generation(self) -> Generation:
        unhonoured(self, ("logprobs", "top_logprobs"))  # none are returned: refused, not ignored
        return super().generation()

    def output_bound(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    _images: ImageSet = PrivateAttr(default_factory=ImageSet)

    def chat_messages(self) -> tuple[list[dict[str, str]], str | None]:
        """(messages, system): system messages joined into the backends' system prompt; the
        user messages' images in `image_set`."""
        system = "\n\n".join(m.text() for m in self.messages if m.role in ("system", "developer"))
        messages = openai_messages(self.messages, _Message.text)
        attach(messages, self.messages, self._images, lambda i, m, images: m.images(i, images))
        return messages, system or None

    def image_set(self) -> ImageSet:
        return self._images


class CompletionRequest(_Request):
    """The legacy ``POST /v1/completions``: a completion task (heddle.live.backends.completion),
    its prompt sent to the model server as it is, no chat template around it (what every
    OpenAI-compatible server does on this route: an editor that writes the model's
    fill-in-the-middle template itself relies on it); with a ``suffix``, the server fills in
    the middle with the model's template."""

    kind = TEXT

    prompt: Any = None
    suffix: Any = None
    echo: Any = None
    best_of: Any = None
    logprobs: Any = None

    def completion(self) -> dict[str, Any] | None:
        prompt = self.prompt
        if isinstance(prompt, list) and len(prompt) == 1:
            prompt = prompt[0]
        if not (isinstance(prompt, str) and (prompt or self.suffix)):
            raise refused(GenerationError("prompt", "a non-empty string, or a list of one", self.prompt))
        unhonoured(self, ("echo", "best_of", "logprobs"))
        return completion(prompt, self.suffix, raw=not self.suffix)


def _usage(run: TaskRun) -> dict[str, Any]:
    prompt, completion = run.counts()
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion,
            **reasoning_usage(run.reported("reasoning_tokens")), "heddle": run.where()}


def _finish_reason(run: TaskRun) -> str:
    if run.tool_calls:
        return openai_finish(run.chat.tools)
    return "length" if run.cut_at_bound() else "stop"


def _head(run: TaskRun, kind: str, streamed: bool) -> dict[str, Any]:
    if kind == CHAT:
        ident, obj = f"chatcmpl-{run.task_id}", "chat.completion.chunk" if streamed else "chat.completion"
    else:
        ident, obj = f"cmpl-{run.task_id}", "text_completion"
    return {"id": ident, "object": obj, "created": run.created, "model": run.chat.model.name}


def _choice(kind: str, text: str | None, finish: str | None, first: bool = False,
            field: str = "content") -> dict[str, Any]:
    """A streamed event's choice (a piece of text, or None: the closing one); ``field``: the
    delta's field the piece goes in (``reasoning_content``: the model's thinking)."""
    if kind == TEXT:
        return {"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish}
    delta = {} if text is None else {"role": "assistant", field: text} if first else {field: text}
    return {"index": 0, "delta": delta, "finish_reason": finish}


def _reply_message(run: TaskRun) -> dict[str, Any]:
    thought = run.thinking_text
    thinking = {} if thought is None else {"reasoning_content": thought}
    if not run.tool_calls:
        return {"role": "assistant", "content": run.output_text, **thinking}
    return {"role": "assistant", "content": run.output_text or None, **thinking,
            **openai_reply_calls(run.tool_calls, run.chat.tools, delta=False)}


def completion_reply(run: TaskRun, kind: str) -> dict[str, Any]:
    """The non-streaming ``chat.completion`` or ``text_completion`` object."""
    if kind == CHAT:
        choice = {"index": 0, "message": _reply_message(run), "finish_reason": _finish_reason(run),
                  "logprobs": None}
    else:
        choice = _choice(TEXT, run.output_text, _finish_reason(run))
    return {**_head(run, kind, streamed=False), "choices": [choice], "usage": _usage(run)}


_HOLE = "\x00piece\x00"
_HOLE_JSON = json.dumps(_HOLE).encode()


def _event(doc: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(doc, separators=(",", ":")).encode() + b"\n\n"


def error_event(exc: GatewayError) -> bytes:
    """A failure mid-stream: an ``error`` event (the stream's last)."""
    return _event(exc.openai())


async def completion_chunks(run: TaskRun, kind: str, include_usage: bool):
    """The ``chat.completion.chunk`` (or legacy ``text_completion``) events; a failure
    mid-stream raises GatewayError (the stream then ends with `error_event`:
    `app._Request.stream`).

    The assistant's role rides on the first piece's delta (as Ollama's OpenAI endpoint sends
    it) and the closing events leave together: every event is a socket write to the caller,
    and on a busy machine each write that wakes the caller may hand it the core (the
    gateway's loop then waits: py-spy showed ~40% of its wall time inside those writes).
    A chat's thinking goes in ``delta.reasoning_content`` (heddle.gateway.thinking)."""
    head = _head(run, kind, streamed=True)
    # each piece's event is the same text around the piece's JSON string: one dumps per piece
    first_before, first_after = _event({**head, "choices": [_choice(kind, _HOLE, None, first=True)]}
                                       ).split(_HOLE_JSON)
    before, after = _event({**head, "choices": [_choice(kind, _HOLE, None)]}).split(_HOLE_JSON)
    if kind == CHAT:
        run.show_thinking = True
        thinking = [_event({**head, "choices": [_choice(kind, _HOLE, None, first, "reasoning_content")]}
                           ).split(_HOLE_JSON) for first in (True, False)]
    started = False
    async for text in run.pieces():
        if type(text) is Thought:
            around = thinking[started]
            started = True
            yield around[0] + json.dumps(text).encode() + around[1]
        elif started:
            yield before + json.dumps(text).encode() + after
        else:
            started = True
            yield first_before + json.dumps(text).encode() + first_after
    # no output: a chat's first event still (it carries the role), unless the model's calls do
    closing = [] if started or kind == TEXT or run.tool_calls else [first_before + b'""' + first_after]
    if run.tool_calls:  # the model's calls, each whole (the role with them if no text went first)
        delta = openai_reply_calls(run.tool_calls, run.chat.tools, delta=True)
        if not started:
            delta = {"role": "assistant", "content": None, **delta}
        closing.append(_event({**head, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}))
    closing.append(_event({**head, "choices": [_choice(kind, None, _finish_reason(run))]}))
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
