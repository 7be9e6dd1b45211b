"""The Anthropic Messages API: ``POST /v1/messages`` (server-sent events with Anthropic's event
sequence, or one ``message``), ``POST /v1/messages/count_tokens``, and the fields Anthropic's
clients read in ``GET /v1/models`` (one listing serves both SDKs). What Claude Code (with
``ANTHROPIC_BASE_URL``), the anthropic SDKs and agent frameworks speaking this API send
becomes the same task as a chat of the OpenAI or Ollama routes: the same keys, headers,
placement, 429, disconnect cancel and where-it-ran.

Honoured fields: ``model``, ``max_tokens`` (required, as Anthropic's API has it: a 400 naming
it when absent), ``system`` (a string or text blocks), ``messages`` (``user`` and
``assistant`` turns; content a string or blocks: ``text``, ``tool_use``, ``tool_result``, a user's
``image`` blocks with a base64 source for a vision model, heddle.gateway.images; an
assistant's earlier ``thinking`` blocks are dropped, as the API drops them from the context),
``stream``, ``temperature``, ``top_p``, ``top_k``, ``stop_sequences``,
``output_config.format`` (a JSON schema), ``thinking`` (a reasoning model's switch:
heddle.gateway.thinking; its thinking comes back as a ``thinking`` block), ``tools`` (client
tools: name, description, ``input_schema``) and ``tool_choice`` (``auto``, ``any``, ``tool``,
``none``; ``disable_parallel_tool_use``), onto heddle.gateway.options and heddle.gateway.tools.
Refused with a 400 naming the field: document blocks and images in a tool's result (no backend
here reads them), an image's ``url`` source (the gateway fetches nothing), Anthropic's server
tools (``web_search``, ``bash``... run at Anthropic only). ``metadata`` and unknown fields
are ignored, as the compatible servers do (Claude Code sends fields newer than this module).
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from heddle.gateway.bodies import TaskBody
from heddle.gateway.errors import GatewayError
from heddle.gateway.images import ImageSet
from heddle.gateway.options import anthropic_generation
from heddle.gateway.run import TaskRun, Thought
from heddle.gateway.tasks import Chat, prompt_tokens
from heddle.gateway.tools import NAME_PATTERN, ToolSpec, arguments_object
from heddle.live.backends.generation import Generation
from heddle.live.backends.images import IMAGES_KEY
from heddle.models import catalog

__all__ = ["CountTokensRequest", "MessagesRequest", "error_event", "message_events", "message_reply",
           "model_info", "with_model_info"]

STOP_REASONS = frozenset({"end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal",
                          "model_context_window_exceeded"})
"""The Messages API's stop reasons (anthropic SDK 2.12's ``StopReason``): a Claude offer's own
is passed on as it is."""
CHOICES = {"auto": "auto", "any": "required", "none": "none"}
"""``tool_choice.type`` -> the payload's choice (``tool``: the named one)."""
EPOCH = "1970-01-01T00:00:00Z"
"""A listed model's ``created_at``: the Models API's value for a release date it does not know."""
_NAME = re.compile(NAME_PATTERN)


def _bad(where: str, what: str) -> GatewayError:
    return GatewayError.at(where, what)


def _shown(value: Any) -> str:
    return json.dumps(value, default=str)[:100]


def _blocks(content: Any, where: str) -> list[dict[str, Any]]:
    """A message's (or a tool result's, or the system prompt's) content as blocks, each with a
    ``type``: a string is one text block."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise _bad(where, f"expected a string or a list of content blocks, got {_shown(content)}")
    for j, block in enumerate(content):
        if not (isinstance(block, dict) and isinstance(block.get("type"), str)):
            raise _bad(f"{where}.{j}", f"expected a content block with a type, got {_shown(block)}")
    return content


def _text(block: dict[str, Any], where: str) -> str:
    text = block.get("text")
    if not isinstance(text, str):
        raise _bad(f"{where}.text", f"expected a string, got {_shown(text)}")
    return text


def _unreadable(kind: str, where: str) -> GatewayError:
    if kind == "image":  # in a tool's result: the model servers take images in user turns only
        return _bad(f"{where}.type", "an image in a tool's result is not taken here (the model "
                    "servers behind this gateway take images in a user turn): send it as an image "
                    "block of the user turn beside the tool_result")
    return _bad(f"{where}.type", f"{kind} blocks are not taken here (the models behind this "
                "gateway read text and images): send text, image, tool_use or tool_result blocks")


def _texts(content: Any, where: str, allowed: str) -> str:
    """The text of content made of text blocks only (a system prompt, a tool's result)."""
    parts = []
    for j, block in enumerate(_blocks(content, where)):
        if block["type"] != "text":
            if block["type"] in ("image", "document"):
                raise _unreadable(block["type"], f"{where}.{j}")
            raise _bad(f"{where}.{j}.type", f"expected {allowed}, got {block['type']!r}")
        parts.append(_text(block, f"{where}.{j}"))
    return "\n\n".join(parts)


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: str
    content: Any = None


class _Conversation(TaskBody):
    """What ``/v1/messages`` and ``count_tokens`` both take: the model, the conversation and
    its tools, and the generation options (any JSON here, checked by `generation`)."""

    messages: list[_Message] = Field(min_length=1)
    system: Any = None
    tools: Any = None
    tool_choice: Any = None
    thinking: Any = None
    temperature: Any = None
    top_p: Any = None
    top_k: Any = None
    stop_sequences: Any = None
    output_config: Any = None
    metadata: Any = None  # the caller's user id: nothing to do with it here
    _images: ImageSet = PrivateAttr(default_factory=ImageSet)

    def image_set(self) -> ImageSet:
        return self._images

    def chat_messages(self) -> tuple[list[dict[str, Any]], str | None]:
        """(messages, system) in the payload's shape (heddle.gateway.tools): an assistant's
        ``tool_use`` blocks its ``tool_calls``, each ``tool_result`` block a ``tool`` message
        naming its call (a 400 naming the block for an id no earlier ``tool_use`` has)."""
        system = None if self.system is None else _texts(self.system, "system", "text blocks")
        out: list[dict[str, Any]] = []
        names: dict[str, str] = {}  # tool_use id -> the tool's name
        for i, m in enumerate(self.messages):
            where = f"messages.{i}.content"
            if m.role == "assistant":
                out.append(_assistant(_blocks(m.content, where), where, names))
            elif m.role == "user":
                out.extend(_user(_blocks(m.content, where), where, names, self._images))
            else:
                raise _bad(f"messages.{i}.role", f"expected 'user' or 'assistant', got {m.role!r} "
                           "(the system prompt goes in the top-level system field)")
        return out, system or None

    def generation(self) -> Generation:
        return anthropic_generation(self)

    def think_field(self) -> str:
        return "thinking"

    def shows_thinking(self) -> bool:
        """The caller asked for the model's thinking (``thinking`` enabled or adaptive): the
        answer has it as a ``thinking`` block, as the API answers (else the answer alone)."""
        return isinstance(self.thinking, dict) and self.thinking.get("type") in ("enabled", "adaptive")

    def tool_spec(self) -> ToolSpec | None:
        return _tool_spec(self.tools, self.tool_choice)


class MessagesRequest(_Conversation):
    """``POST /v1/messages``."""

    max_tokens: Annotated[int, Field(ge=1)]
    stream: bool = False

    def output_bound(self) -> int:
        return self.max_tokens

    def fit(self, chat: Chat) -> Chat:
        """The chat with its output bound cut to what the model's context window leaves after
        the prompt: Anthropic's ``max_tokens`` is a ceiling (the API stops at the window, stop
        reason ``model_context_window_exceeded``), and clients such as Claude Code ask for tens of
        thousands of tokens, more than a local model's window leaves (qwen2.5-7b's is 32768),
        which the scheduler would reject (prompt + output over the window). A prompt over the
        window alone is left for the scheduler to refuse with that reason."""
        if chat.model.quant is None or chat.max_tokens is None:  # a cloud offer: its own window
            return chat
        room = catalog.model(chat.model.model).step_context_tokens - prompt_tokens(chat)
        return replace(chat, max_tokens=int(room)) if 1 <= room < chat.max_tokens else chat


class CountTokensRequest(_Conversation):
    """``POST /v1/messages/count_tokens``: a conversation, no output."""

    def output_bound(self) -> None:
        return None


def _assistant(blocks: list[dict[str, Any]], where: str, names: dict[str, str]) -> dict[str, Any]:
    texts, calls = [], []
    for j, block in enumerate(blocks):
        kind, at = block["type"], f"{where}.{j}"
        if kind == "text":
            texts.append(_text(block, at))
        elif kind == "tool_use":
            ident, name, arguments = block.get("id"), block.get("name"), block.get("input", {})
            if not (isinstance(ident, str) and ident):
                raise _bad(f"{at}.id", f"expected the call's id, got {_shown(ident)}")
            if not (isinstance(name, str) and name):
                raise _bad(f"{at}.name", f"expected the tool's name, got {_shown(name)}")
            if not isinstance(arguments, dict):
                raise _bad(f"{at}.input", f"expected an object, got {_shown(arguments)}")
            names[ident] = name
            calls.append({"id": ident, "name": name, "arguments": json.dumps(arguments, ensure_ascii=False)})
        elif kind in ("thinking", "redacted_thinking"):
            continue  # an earlier turn's thinking: the API leaves it out of the context too
        else:
            raise _bad(f"{at}.type", f"expected text or tool_use in an assistant turn, got {kind!r}")
    doc: dict[str, Any] = {"role": "assistant", "content": "\n\n".join(texts)}
    if calls:
        doc["tool_calls"] = calls
    return doc


def _image(block: dict[str, Any], at: str, images: ImageSet) -> int:
    """An ``image`` block's index in ``images``: a base64 source (a ``url`` one is refused:
    the gateway fetches nothing on a caller's behalf)."""
    source = block.get("source")
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "base64":
        return images.add_base64(source.get("data"), at)
    if kind == "url":
        return images.add_url(source.get("url"), at)
    raise _bad(f"{at}.source", "expected a base64 source ({\"type\": \"base64\", \"media_type\", "
               f"\"data\"}}), got {_shown(source)}")


def _user(blocks: list[dict[str, Any]], where: str, names: dict[str, str],
          images: ImageSet) -> list[dict[str, Any]]:
    """A user turn: its tool results (``tool`` messages) and its text with its images (a user
    message's ``images``: heddle.gateway.images), in their order."""
    out: list[dict[str, Any]] = []
    texts: list[str] = []
    seen: list[int] = []  # the images of the user message being gathered

    def said() -> None:
        message: dict[str, Any] = {"role": "user", "content": "\n\n".join(texts)}
        if seen:
            message[IMAGES_KEY] = list(seen)
        out.append(message)
        texts.clear()
        seen.clear()

    for j, block in enumerate(blocks):
        kind, at = block["type"], f"{where}.{j}"
        if kind == "text":
            texts.append(_text(block, at))
        elif kind == "image":
            seen.append(_image(block, at, images))
        elif kind == "tool_result":
            if texts or seen:
                said()
            ident = block.get("tool_use_id")
            if ident not in names:
                raise _bad(f"{at}.tool_use_id", f"no tool_use with id {_shown(ident)} in an earlier "
                           "assistant turn")
            out.append({"role": "tool", "content": _texts(block.get("content", ""), f"{at}.content",
                                                          "text blocks"),
                        "tool_call_id": ident, "name": names[ident]})
        elif kind == "document":
            raise _unreadable(kind, at)
        else:
            raise _bad(f"{at}.type", f"expected text, image or tool_result in a user turn, got {kind!r}")
    if texts or seen or not out:
        said()
    return out


def _tool_spec(tools: Any, choice: Any) -> ToolSpec | None:
    """The request's client tools and choice in the payload's shape; 400 naming the field."""
    if tools is not None and not isinstance(tools, list):
        raise _bad("tools", f"expected a list of tools, got {_shown(tools)}")
    out: list[dict[str, Any]] = []
    for i, tool in enumerate(tools or ()):
        where = f"tools.{i}"
        if not isinstance(tool, dict):
            raise _bad(where, f"expected a tool object, got {_shown(tool)}")
        if tool.get("type") not in (None, "custom"):
            raise _bad(f"{where}.type", f"{tool['type']!r} is one of Anthropic's server tools, which "
                       "run at Anthropic only: give client tools (name, description, input_schema)")
        name, schema = tool.get("name"), tool.get("input_schema")
        if not (isinstance(name, str) and _NAME.match(name)):
            raise _bad(f"{where}.name", f"expected 1-64 letters, digits, '_', '-' or '.', got {_shown(name)}")
        if name in (t["name"] for t in out):
            raise _bad(f"{where}.name", f"{name!r} is defined twice")
        if not (isinstance(schema, dict) and schema.get("type", "object") == "object"):
            raise _bad(f"{where}.input_schema", f"expected a JSON Schema of type 'object', got {_shown(schema)}")
        description = tool.get("description")
        if description is not None and not isinstance(description, str):
            raise _bad(f"{where}.description", f"expected a string, got {_shown(description)}")
        out.append({"name": name, "description": description or "", "parameters": schema})
    picked, parallel = _choice(choice, [t["name"] for t in out])
    if not out:
        if picked not in (None, "auto", "none"):
            raise _bad("tool_choice", "a tool is required but the request has no tools")
        return None
    return ToolSpec(out, picked, parallel)


def _choice(choice: Any, names: list[str]) -> tuple[str | dict[str, str] | None, bool | None]:
    if choice is None:
        return None, None
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind not in (*CHOICES, "tool"):
        raise _bad("tool_choice", '{"type": "auto"}, {"type": "any"}, {"type": "tool", "name": ...} '
                   f'or {{"type": "none"}}, got {_shown(choice)}')
    parallel = None if not choice.get("disable_parallel_tool_use") else False
    if kind != "tool":
        return CHOICES[kind], parallel
    name = choice.get("name")
    if name not in names:
        raise _bad("tool_choice.name", f"no tool named {_shown(name)} in tools ({', '.join(names) or 'none'})")
    return {"name": name}, parallel


# -- the answer ----------------------------------------------------------------------------------
def _stop_reason(run: TaskRun, body: MessagesRequest) -> str:
    if run.tool_calls:
        return "tool_use"
    finish = run.usage.get("finish_reason")
    if run.cut_at_bound():
        cut = run.chat.max_tokens is not None and run.chat.max_tokens < body.max_tokens
        return "model_context_window_exceeded" if cut else "max_tokens"
    return finish if finish in STOP_REASONS and finish != "tool_use" else "end_turn"


def _usage(run: TaskRun) -> dict[str, Any]:
    prompt, completion = run.counts()
    return {"input_tokens": prompt, "output_tokens": completion, "heddle": run.where()}


def _tool_use(call: Any) -> dict[str, Any]:
    return {"type": "tool_use", "id": call.id, "name": call.name, "input": arguments_object(call)}


def _head(run: TaskRun) -> dict[str, Any]:
    return {"id": f"msg_{run.task_id}", "type": "message", "role": "assistant",
            "model": run.chat.model.name}


async def message_reply(run: TaskRun, body: MessagesRequest) -> dict[str, Any]:
    """The non-streamed ``message``: the model's thinking (when asked for) as a ``thinking``
    block, its text block (when there is text, or nothing else) and its calls as ``tool_use``
    blocks."""
    async for _ in run.pieces():
        pass
    thought, text = run.thinking_text if body.shows_thinking() else None, run.output_text
    content = [_BLOCKS[THINKING] | {THINKING: thought}] if thought else []
    content += [{"type": "text", "text": text}] if text or not run.tool_calls else []
    return {**_head(run), "content": content + [_tool_use(c) for c in run.tool_calls],
            "stop_reason": _stop_reason(run, body), "stop_sequence": None, "usage": _usage(run)}


def _event(kind: str, doc: dict[str, Any]) -> bytes:
    return (b"event: " + kind.encode() + b"\ndata: "
            + json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n")


def error_event(exc: GatewayError) -> bytes:
    """A failure mid-stream: an ``error`` event (the stream's last), which the SDKs raise."""
    return _event("error", exc.anthropic())


_HOLE = "\x00piece\x00"
TEXT, THINKING = "text", "thinking"
_BLOCKS = {TEXT: {"type": TEXT, TEXT: ""}, THINKING: {"type": THINKING, THINKING: "", "signature": ""}}
"""A content block as it opens: text, or the model's thinking (its ``signature`` empty: no
model here signs its thinking; the API drops a turn's thinking from the context anyway)."""
_DELTAS = {TEXT: "text_delta", THINKING: "thinking_delta"}


def _stop(index: int) -> bytes:
    return _event("content_block_stop", {"type": "content_block_stop", "index": index})


class _Block:
    """The content block a stream has open: its index, kind, and its delta events' bytes around
    a piece's JSON string (one dumps per piece)."""

    __slots__ = ("after", "before", "index", "kind")

    def __init__(self, index: int, kind: str) -> None:
        self.index, self.kind = index, kind
        self.before, self.after = _event("content_block_delta", {
            "type": "content_block_delta", "index": index,
            "delta": {"type": _DELTAS[kind], kind: _HOLE}}).split(json.dumps(_HOLE).encode())

    def opening(self) -> bytes:
        return _event("content_block_start", {"type": "content_block_start", "index": self.index,
                                              "content_block": _BLOCKS[self.kind]})

    def delta(self, piece: str) -> bytes:
        return self.before + json.dumps(piece, ensure_ascii=False).encode() + self.after


async def message_events(run: TaskRun, body: MessagesRequest):
    """The Messages API's stream: ``message_start`` and a ``ping`` at once, then the model's
    thinking (when asked for) and its text as content blocks (``content_block_start``, a
    ``thinking_delta`` / ``text_delta`` per piece, ``content_block_stop``), its calls as
    ``tool_use`` blocks (each whole: its ``input_json_delta`` is the arguments' text), then
    ``message_delta`` (stop reason, usage with where it ran) and ``message_stop``. A failure
    mid-stream raises GatewayError (the stream then ends with `error_event`:
    `app._Request.stream`). The input tokens in ``message_start`` are the gateway's estimate;
    ``message_delta`` has the server's count."""
    start = {**_head(run), "content": [], "stop_reason": None, "stop_sequence": None,
             "usage": {"input_tokens": run.item.task.prompt_tokens, "output_tokens": 0}}
    yield _event("message_start", {"type": "message_start", "message": start}) + _event("ping", {"type": "ping"})
    run.show_thinking = body.shows_thinking()
    block: _Block | None = None
    async for piece in run.pieces():
        kind = THINKING if type(piece) is Thought else TEXT
        if block is not None and block.kind == kind:
            yield block.delta(piece)
            continue
        ending = b"" if block is None else _stop(block.index)
        block = _Block(0 if block is None else block.index + 1, kind)
        yield ending + block.opening() + block.delta(piece)
    closing = []
    if block is None and not run.tool_calls:  # an answer of nothing still has its (empty) text block
        block = _Block(0, TEXT)
        closing.append(block.opening())
    if block is not None:
        closing.append(_stop(block.index))
    for index, call in enumerate(run.tool_calls, start=0 if block is None else block.index + 1):
        closing += [
            _event("content_block_start", {"type": "content_block_start", "index": index, "content_block": {
                "type": "tool_use", "id": call.id, "name": call.name, "input": {}}}),
            _event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": {
                "type": "input_json_delta", "partial_json": json.dumps(arguments_object(call), ensure_ascii=False)}}),
            _stop(index)]
    closing += [_event("message_delta", {"type": "message_delta", "delta": {
                    "stop_reason": _stop_reason(run, body), "stop_sequence": None}, "usage": _usage(run)}),
                _event("message_stop", {"type": "message_stop"})]
    yield b"".join(closing)


# -- GET /v1/models ------------------------------------------------------------------------------
def with_model_info(listing: dict[str, Any]) -> dict[str, Any]:
    """The OpenAI listing (`openai_api.models_reply`) with what Anthropic's ``models.list()``
    reads beside it: each model's ``type``, ``display_name``, ``created_at`` (and
    ``lifecycle``), the page's ``has_more``, ``first_id`` and ``last_id``. OpenAI's client
    keeps the extra fields aside; one answer serves both."""
    data = [model_info(m) for m in listing["data"]]
    ids = [m["id"] for m in data]
    return {**listing, "data": data, "has_more": False, "first_id": ids[0] if ids else None,
            "last_id": ids[-1] if ids else None}


def model_info(model: dict[str, Any]) -> dict[str, Any]:
    """One model of OpenAI's listing (`openai_api.model_reply`) with Anthropic's ``ModelInfo``
    fields beside (``models.retrieve`` of either SDK)."""
    return {**model, "type": "model", "display_name": model["id"], "created_at": EPOCH, "lifecycle": "active"}
