"""OpenAI's Responses API, ``POST /v1/responses``: what newer OpenAI-based tools call (Codex
CLI, the Agents SDK, the openai SDK's ``client.responses``). A request becomes the same neutral
chat as a chat completion's (messages, system prompt, output bound, generation options, tools)
and runs through the same path (`app.GatewayApp._answer`: keys, rules, placement, 429,
disconnects); its answer is a ``response`` object, or that object's server-sent events.

Taken: ``model``, ``input`` (a string: one user message; or a list of items: messages of role
user, assistant, system or developer whose content is a string or ``input_text`` /
``output_text`` parts, ``function_call`` and ``function_call_output`` items), ``instructions``
(the system prompt, before the system and developer messages), a user message's
``input_image`` parts (a base64 data URL in ``image_url``, for a vision model:
heddle.gateway.images), ``max_output_tokens``,
``temperature``, ``top_p``, ``text.format`` (``text``, ``json_object``, ``json_schema``:
heddle.gateway.options), ``tools`` of type ``function`` (flat: ``name``, ``description``,
``parameters``, ``strict``), ``tool_choice``, ``parallel_tool_calls`` (heddle.gateway.tools),
``stream``, ``reasoning.effort`` (a reasoning model's thinking switch: heddle.gateway.thinking;
its thinking comes back as a ``reasoning`` item of ``reasoning_text``, streamed as
``response.reasoning_text.delta``s); ``reasoning`` items in the input (a reasoning model's own,
sent back) are left out. ``metadata``, ``user``, ``include``,
``truncation``, ``store`` and the other fields are ignored.

``POST /v1/responses/input_tokens`` counts the same body's prompt tokens as its task would
(`app.GatewayApp._count`).

Nothing is kept: heddle stores no responses (``store`` is accepted and the response says
``"store": false``), so what needs a stored response or conversation is a 400 naming its field
(``previous_response_id``, ``conversation``, ``background``, an ``item_reference`` item, a
stored ``prompt``; an ``input_image``'s ``file_id``), and so is what no model server here takes
(``input_file`` and ``input_audio`` parts, images in a tool's output, tools other than
functions, ``top_logprobs``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import Field, PrivateAttr, ValidationError

from heddle.gateway.bodies import TaskBody
from heddle.gateway.errors import GatewayError
from heddle.gateway.images import ImageSet, attach
from heddle.gateway.options import responses_generation, unhonoured
from heddle.gateway.run import TaskRun, Thought
from heddle.gateway.thinking import openai_think
from heddle.gateway.tools import OpenAITools, ToolMessage, ToolSpec, openai_messages
from heddle.live.backends.generation import Generation

__all__ = ["ResponseEvents", "ResponsesRequest", "response_reply"]

STATELESS = {"previous_response_id": "a stored response", "conversation": "a stored conversation",
             "background": "a stored response to poll", "prompt": "a stored prompt template"}
"""Fields that ask for state heddle does not keep (their absent or neutral values pass)."""
TEXT_PARTS = ("input_text", "output_text")
ROLES = ("user", "assistant", "system", "developer")


class _Item(ToolMessage):
    """An input item as a chat message (its content's text joined, its images' indices)."""

    role: str
    content: str = ""
    images: list[int] = Field(default_factory=list)


def _bad(where: str, what: str, code: str = "invalid_input") -> GatewayError:
    return GatewayError.at(where, what, code)


def _kind(value: Any) -> str:
    return json.dumps(value)[:100]


def _text(content: Any, where: str, images: ImageSet | None = None, seen: list[int] | None = None) -> str:
    """A message's content: a string, or its text parts joined; its ``input_image`` parts (a
    data URL: heddle.gateway.images) added to ``images``, their indices to ``seen`` (None: a
    tool's output, which takes none)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise _bad(where, f"expected a string or a list of content parts, got {_kind(content)}")
    texts = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in TEXT_PARTS and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "refusal" and isinstance(part.get("refusal"), str):
            texts.append(part["refusal"])
        elif kind == "input_image" and images is not None and seen is not None:
            if part.get("file_id") is not None and part.get("image_url") is None:
                raise _bad(f"{where}.{j}.file_id", "a file_id names a stored file; heddle keeps none: "
                           "send the image as a data URL in image_url", "unsupported_content")
            seen.append(images.add_url(part.get("image_url"), f"{where}.{j}"))
        elif kind in ("input_image", "input_file", "input_audio"):
            raise _bad(f"{where}.{j}.type", f"{kind} is not taken: heddle's gateway sends text "
                       "to its model servers (input_text parts)", "unsupported_content")
        else:
            raise _bad(f"{where}.{j}", f"expected an input_text or output_text part with its "
                       f"text, got {_kind(part)}")
    return "".join(texts)


def _items(raw: Any, images: ImageSet) -> tuple[list[_Item], dict[str, str]]:
    """``input`` as chat messages, and where each of their tool fields came from in ``input``
    (a chat message's path -> the item's), so an error names the field as it was sent."""
    if isinstance(raw, str):
        if not raw:
            raise _bad("input", "expected a non-empty string or a list of items")
        return [_Item(role="user", content=raw)], {}
    if not isinstance(raw, list) or not raw:
        raise _bad("input", f"expected a non-empty string or a list of items, got {_kind(raw)}")
    out: list[_Item] = []
    paths: dict[str, str] = {}
    for i, item in enumerate(raw):
        where = f"input.{i}"
        if not isinstance(item, dict):
            raise _bad(where, f"expected an item object, got {_kind(item)}")
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "message":
            role = item.get("role")
            if role not in ROLES:
                raise _bad(f"{where}.role", f"expected one of {', '.join(ROLES)}, got {_kind(role)}")
            seen: list[int] = []
            text = _text(item.get("content"), f"{where}.content", images, seen)
            out.append(_Item(role=role, content=text, images=seen))
        elif kind == "function_call":
            call = {"id": item.get("call_id"), "type": "function",
                    "function": {"name": item.get("name"), "arguments": item.get("arguments")}}
            last = out[-1] if out else None
            if last is None or last.role != "assistant" or last.tool_call_id:
                last = _Item(role="assistant")
                out.append(last)
            last.tool_calls = [*(last.tool_calls or ()), call]
            at = f"messages.{len(out) - 1}.tool_calls.{len(last.tool_calls) - 1}"
            paths |= {f"{at}.id": f"{where}.call_id", f"{at}.function.name": f"{where}.name",
                      f"{at}.function.arguments": f"{where}.arguments"}
        elif kind == "function_call_output":
            call_id = item.get("call_id")  # none (or not a string): named below, as the chat's is
            out.append(_Item(role="tool", tool_call_id=call_id if isinstance(call_id, str) and call_id else None,
                             content=_text(item.get("output"), f"{where}.output")))
            paths[f"messages.{len(out) - 1}.tool_call_id"] = f"{where}.call_id"
        elif kind == "reasoning":
            continue  # a reasoning model's own thinking, sent back: no server here takes it
        elif kind == "item_reference":
            raise _bad(f"{where}.type", "item_reference names a stored item; heddle keeps no "
                       "responses: send the item itself", "unsupported_parameter")
        else:
            raise _bad(f"{where}.type", "expected message, function_call or function_call_output, "
                       f"got {_kind(kind)}")
    return out, paths


def _renamed(exc: GatewayError, paths: dict[str, str]) -> GatewayError:
    """``exc`` naming the field as the request sent it (``paths``: see `_items`)."""
    sent = paths.get(exc.param or "")
    if sent is None:
        return exc
    return GatewayError(exc.status, exc.message.replace(exc.param, sent, 1), exc.code, param=sent)


class ResponsesRequest(TaskBody):
    """A ``POST /v1/responses`` body (unknown fields ignored: `TaskBody`)."""

    input: Any = None
    instructions: str | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: Any = None
    top_p: Any = None
    text: Any = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    parallel_tool_calls: bool | None = None
    stream: bool = False
    reasoning: Any = None
    top_logprobs: Any = None
    previous_response_id: Any = None
    conversation: Any = None
    background: Any = None
    prompt: Any = None
    _images: ImageSet = PrivateAttr(default_factory=ImageSet)

    def image_set(self) -> ImageSet:
        return self._images

    def chat_messages(self) -> tuple[list[dict[str, Any]], str | None]:
        for name, what in STATELESS.items():
            if getattr(self, name) not in (None, False):
                raise _bad(name, f"{name} needs {what}, and heddle keeps no responses: send the "
                           "whole conversation in input", "unsupported_parameter")
        items, paths = _items(self.input, self._images)
        try:
            messages = openai_messages(items, lambda m: m.content)
        except GatewayError as exc:  # none left is "messages: ...", which the request calls input
            raise _renamed(exc, {"messages": "input", **paths}) from None
        attach(messages, items, self._images, lambda i, m, images: m.images)
        system = [self.instructions or ""] + [m.content for m in items if m.role in ("system", "developer")]
        return messages, "\n\n".join(s for s in system if s) or None

    def output_bound(self) -> int | None:
        return self.max_output_tokens

    def generation(self) -> Generation:
        unhonoured(self, ("top_logprobs",))
        return responses_generation(self)

    def tool_spec(self) -> ToolSpec | None:
        """The flat function tools as the chat's (``tools.0.name``, not ``.function.name``)."""
        tools = []
        for i, tool in enumerate(self.tools or ()):
            if tool.get("type") != "function":
                raise _bad(f"tools.{i}.type", "expected 'function' (heddle's model servers call "
                           f"functions only), got {_kind(tool.get('type'))}", "invalid_tools")
            tools.append({"type": "function", "function": {
                k: tool[k] for k in ("name", "description", "parameters") if k in tool}})
        choice = self.tool_choice
        if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("name"), str):
            choice = {"type": "function", "function": {"name": choice.get("name")}}
        elif choice not in (None, "auto", "none", "required"):  # allowed_tools, a hosted tool...
            raise _bad("tool_choice", "expected 'auto', 'none', 'required' or {\"type\": \"function\", "
                       f"\"name\": ...}}, got {_kind(choice)}", "invalid_tools")
        paths = {f"tools.{i}.function.{k}": f"tools.{i}.{k}" for i in range(len(tools))
                 for k in ("name", "description", "parameters")} | {"tool_choice.function.name": "tool_choice.name"}
        try:
            return OpenAITools(model=self.model, tools=tools if self.tools is not None else None,
                               tool_choice=choice, parallel_tool_calls=self.parallel_tool_calls).tool_spec()
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise _renamed(_bad(where, err["msg"], "invalid_tools"), paths) from None
        except GatewayError as exc:
            raise _renamed(exc, paths) from None

    def think_field(self) -> str:
        """The field that asked a reasoning model to think (`check_thinks` names it)."""
        return openai_think(None, self.reasoning)[1]


# -- the answer ---------------------------------------------------------------------------------
def _usage(run: TaskRun) -> dict[str, Any]:
    prompt, completion = run.counts()
    return {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": completion,
            "output_tokens_details": {"reasoning_tokens": int(run.reported("reasoning_tokens") or 0)},
            "total_tokens": prompt + completion, "heddle": run.where()}


def _status(run: TaskRun) -> str:
    """How the answer ended: ``incomplete`` when cut at its output bound."""
    return "incomplete" if run.cut_at_bound() else "completed"


def _response(run: TaskRun, body: ResponsesRequest, status: str, output: list[dict[str, Any]],
              usage: dict[str, Any] | None = None, error: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``response`` object: what the request asked for, and ``output`` as it stands."""
    return {
        "id": f"resp_{run.task_id}", "object": "response", "created_at": run.created,
        "status": status, "error": error,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": body.instructions, "max_output_tokens": body.max_output_tokens,
        "model": run.chat.model.name, "output": output,
        "parallel_tool_calls": body.parallel_tool_calls is not False,
        "previous_response_id": None, "reasoning": body.reasoning,
        "store": False, "temperature": body.temperature, "top_p": body.top_p,
        "text": body.text if isinstance(body.text, dict) else {"format": {"type": "text"}},
        "tool_choice": body.tool_choice if body.tool_choice is not None else "auto",
        "tools": body.tools or [], "truncation": "disabled", "usage": usage, "metadata": {},
    }


def _message(run: TaskRun, text: str, status: str) -> dict[str, Any]:
    return {"type": "message", "id": f"msg_{run.task_id}", "status": status, "role": "assistant",
            "content": [_part(text)]}


def _part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": []}


def _reasoning(run: TaskRun, text: str, status: str) -> dict[str, Any]:
    """The model's thinking as a ``reasoning`` item: its raw text (``reasoning_text``), no
    summary (heddle asks no model for one)."""
    return {"type": "reasoning", "id": f"rs_{run.task_id}", "summary": [], "content": [_thought(text)],
            "status": status}


def _thought(text: str) -> dict[str, Any]:
    return {"type": "reasoning_text", "text": text}


@dataclass(frozen=True, slots=True)
class _Kind:
    """An output item whose one content part is streamed as text: the answer's message, or the
    model's thinking."""

    part: str  # the part's type, and the ``response.<part>.delta`` / ``.done`` events'
    item: Callable[[TaskRun, str, str], dict[str, Any]]  # (run, text, status) -> the item
    text_part: Callable[[str], dict[str, Any]]
    extra: dict[str, Any]  # the text events' other fields


MESSAGE = _Kind("output_text", _message, _part, {"logprobs": []})
REASONING = _Kind("reasoning_text", _reasoning, _thought, {})


def _call(run: TaskRun, index: int, status: str, arguments: str | None = None) -> dict[str, Any]:
    call = run.tool_calls[index]
    return {"type": "function_call", "id": f"fc_{run.task_id}_{index}", "call_id": call.id,
            "name": call.name, "arguments": call.arguments if arguments is None else arguments,
            "status": status}


def _output(run: TaskRun, thinking_first: bool = True) -> list[dict[str, Any]]:
    """The answer's items: the model's thinking (if any: first, unless it came only after the
    answer had begun streaming), its text (if any, or no calls), then each call."""
    thought = run.thinking_text
    thinking = [] if thought is None else [_reasoning(run, thought, "completed")]
    text = [_message(run, run.output_text, _status(run))] if run.output_text or not run.tool_calls else []
    calls = [_call(run, i, "completed") for i in range(len(run.tool_calls))]
    return thinking + text + calls if thinking_first else text + thinking + calls


async def response_reply(run: TaskRun, body: ResponsesRequest) -> dict[str, Any]:
    """The ``response`` object, in one reply."""
    async for _ in run.pieces():
        pass
    return _response(run, body, _status(run), _output(run), _usage(run))


_SEQ, _PIECE = "\x00seq\x00", "\x00piece\x00"
DELTA = "response.output_text.delta"


def _frame(kind: str, doc: dict[str, Any]) -> bytes:
    """One server-sent event: its type as the event's name, the document as its data."""
    return (f"event: {kind}\ndata: ".encode()
            + json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n")


class _Open:
    """A text item being streamed: its kind, place and id, and its delta event's text around
    the sequence number and the piece (one ``dumps`` a piece)."""

    __slots__ = ("after", "before", "ident", "index", "kind", "middle")

    def __init__(self, kind: _Kind, index: int, ident: str) -> None:
        self.kind, self.index, self.ident = kind, index, ident
        event = f"response.{kind.part}.delta"
        self.before, rest = _frame(event, {
            "type": event, "sequence_number": _SEQ, "item_id": ident, "output_index": index,
            "content_index": 0, "delta": _PIECE, **kind.extra}).split(json.dumps(_SEQ).encode())
        self.middle, self.after = rest.split(json.dumps(_PIECE).encode())

    def delta(self, seq: int, piece: str) -> bytes:
        return self.before + str(seq).encode() + self.middle + json.dumps(piece).encode() + self.after


class ResponseEvents:
    """A streamed response's server-sent events, numbered (``sequence_number``) as the
    Responses API numbers them: ``response.created`` and ``.in_progress`` at once; a reasoning
    model's thinking as a ``reasoning`` item (``response.reasoning_text.delta`` a piece); the
    answer's ``message`` item and its part as its first text comes, a
    ``response.output_text.delta`` a piece; each item's ``.done`` events as the next begins or
    the answer ends; each call's item with its arguments; then ``response.completed``
    (``response.incomplete`` at the output bound). A stream that cannot go on ends with
    `error`'s ``error`` and ``response.failed`` events (`app._Request.stream`)."""

    def __init__(self, run: TaskRun, body: ResponsesRequest) -> None:
        self.run, self.body = run, body
        self.seq = 0
        self.open: _Open | None = None  # the text item being streamed
        self.opened: list[_Kind] = []  # the text items streamed, in order
        run.show_thinking = True  # the thinking has its own items here

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._events()

    def _event(self, kind: str, **fields: Any) -> bytes:
        self.seq += 1
        return _frame(kind, {"type": kind, "sequence_number": self.seq - 1, **fields})

    async def _events(self) -> AsyncIterator[bytes]:
        run, body = self.run, self.body
        yield (self._event("response.created", response=_response(run, body, "in_progress", []))
               + self._event("response.in_progress", response=_response(run, body, "in_progress", [])))
        async for piece in run.pieces():
            kind = REASONING if type(piece) is Thought else MESSAGE
            opening = b""
            if self.open is None or self.open.kind is not kind:
                if kind in self.opened:  # thinking after the answer began: in the response only
                    continue
                opening = self._close() + self._open(kind)
            assert self.open is not None
            self.seq += 1
            yield opening + self.open.delta(self.seq - 1, piece)
        closing = [self._close()]
        if MESSAGE not in self.opened and not run.tool_calls:  # an answer, even empty, unless calls
            closing += [self._open(MESSAGE), self._close()]
        first_call = len(self.opened)  # the calls' output items follow the text items
        closing += [self._called(first_call + i, i) for i in range(len(run.tool_calls))]
        status = _status(run)
        output = _output(run, thinking_first=REASONING in self.opened or not self.opened)
        closing.append(self._event(f"response.{status}", response=_response(run, body, status, output,
                                                                             _usage(run))))
        yield b"".join(closing)

    def _open(self, kind: _Kind) -> bytes:
        item = kind.item(self.run, "", "in_progress")
        self.open = _Open(kind, len(self.opened), item["id"])
        self.opened.append(kind)
        return (self._event("response.output_item.added", output_index=self.open.index,
                            item={**item, "content": []})
                + self._event("response.content_part.added", item_id=self.open.ident,
                              output_index=self.open.index, content_index=0, part=kind.text_part("")))

    def _text(self, kind: _Kind) -> str:
        return (self.run.thinking_text or "") if kind is REASONING else self.run.output_text

    def _close(self) -> bytes:
        """The open text item's ``.done`` events (nothing if none is open)."""
        if self.open is None:
            return b""
        at, self.open = self.open, None
        kind, text = at.kind, self._text(at.kind)
        place = {"item_id": at.ident, "output_index": at.index, "content_index": 0}
        status = _status(self.run) if kind is MESSAGE else "completed"
        return (self._event(f"response.{kind.part}.done", **place, text=text, **kind.extra)
                + self._event("response.content_part.done", **place, part=kind.text_part(text))
                + self._event("response.output_item.done", output_index=at.index,
                              item=kind.item(self.run, text, status)))
    def _called(self, output: int, i: int) -> bytes:
        """A call's events: its item, its arguments (whole, in one delta), its item done."""
        call = _call(self.run, i, "completed")
        ident = call["id"]
        return (self._event("response.output_item.added", output_index=output,
                            item=_call(self.run, i, "in_progress", arguments=""))
                + self._event("response.function_call_arguments.delta", item_id=ident,
                              output_index=output, delta=call["arguments"])
                + self._event("response.function_call_arguments.done", item_id=ident,
                              output_index=output, arguments=call["arguments"])
                + self._event("response.output_item.done", output_index=output, item=call))

    def error(self, exc: GatewayError) -> bytes:
        """The stream's end when it cannot go on: an ``error`` event (OpenAI's error fields),
        then ``response.failed`` with the output so far."""
        run = self.run
        output = [kind.item(run, self._text(kind), "incomplete") for kind in self.opened]
        failed = {"code": "rate_limit_exceeded" if exc.status == 429 else "server_error",
                  "message": exc.message}
        return (self._event("error", code=exc.code, message=exc.message, param=exc.param)
                + self._event("response.failed", response=_response(
                    run, self.body, "failed", output, error=failed)))
