"""Tool (function) calling through the gateway, on both protocols: the request's tools checked
and carried in the task's payload, the conversation's tool calls and tool results put in one
shape for the agents, and the calls a model made written back in each protocol's shape.

The payload's shape (what the agents' backends read, `heddle.live.backends.tools`):

- ``tools``: ``[{"name", "description", "parameters"}]`` (the functions);
- ``tool_choice``: ``"auto"``, ``"none"``, ``"required"`` or ``{"name": ...}`` (left out: auto);
- ``parallel_tool_calls``: a bool, when the caller said;
- in ``messages``: an assistant message's calls as ``"tool_calls": [{"id", "name",
  "arguments"}]`` (``arguments`` a JSON object's text), and a tool's result as ``{"role":
  "tool", "content", "tool_call_id", "name"}``.

OpenAI's deprecated ``functions`` / ``function_call`` (older apps) are the same thing: the
functions become the tools, an assistant's ``function_call`` its one call, a ``function``
message a tool's result, and the model's first call comes back as ``function_call``.

Ids: OpenAI's callers name the call a result answers; Ollama's name the tool (``tool_name``)
or nothing, and their calls carry no id. The gateway gives such calls ids (``call_<message
index>_<call index>``) and matches each tool result to the earliest call not answered yet of its
name (of any name, when it gives none), so every backend gets what its server needs.

The model's calls come back on the attempt's closing chunk (protocol 1.9,
`heddle.live.protocol.TokenChunk.tool_calls`) or, when that chunk was lost, in the task's
result: nothing of this is on the way of a streamed token.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from heddle.gateway.bodies import TaskBody
from heddle.gateway.errors import GatewayError
from heddle.live.backends.tools import arguments_text, read_arguments
from heddle.live.protocol import ToolCall

__all__ = ["NAME_PATTERN", "OllamaTools", "OpenAITools", "ToolMessage", "ToolSpec", "arguments_object",
           "calls_from_result", "ollama_calls", "ollama_messages", "openai_calls", "openai_delta_calls",
           "openai_finish", "openai_messages", "openai_reply_calls", "tool_tokens"]

NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
"""A function's name, as OpenAI allows it (letters, digits, ``_``, ``-``, ``.``; 1-64)."""
CHOICES = ("auto", "none", "required")


class _Function(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str = Field(pattern=NAME_PATTERN)
    description: str | None = None
    parameters: dict[str, Any] | None = None


class _Tool(BaseModel):
    """``{"type": "function", "function": {...}}``: the one kind of tool both protocols have."""

    model_config = ConfigDict(extra="ignore")

    type: str = "function"
    function: _Function


class ToolSpec:
    """The tools of one request: what the payload carries (`payload`); ``legacy``: given as
    OpenAI's deprecated ``functions`` (the call is answered as ``function_call``)."""

    __slots__ = ("choice", "legacy", "parallel", "tools")

    def __init__(self, tools: list[dict[str, Any]], choice: str | dict[str, str] | None,
                 parallel: bool | None, legacy: bool = False) -> None:
        self.tools, self.choice, self.parallel, self.legacy = tools, choice, parallel, legacy

    def payload(self) -> dict[str, Any]:
        out: dict[str, Any] = {"tools": self.tools}
        if self.choice is not None:
            out["tool_choice"] = self.choice
        if self.parallel is not None:
            out["parallel_tool_calls"] = self.parallel
        return out


def _spec(tools: list[_Tool] | None, choice: Any, parallel: bool | None,
          legacy: bool = False) -> ToolSpec | None:
    """The request's tools checked (a 400 naming the field else), or None without tools.
    ``legacy``: given as ``functions`` and ``function_call`` (the fields the errors name)."""
    field, picking = ("functions", "function_call") if legacy else ("tools", "tool_choice")
    where = (lambda i: f"functions.{i}") if legacy else (lambda i: f"tools.{i}.function")
    names: list[str] = []
    for i, tool in enumerate(tools or ()):
        if tool.type != "function":
            raise GatewayError(400, f"tools.{i}.type: expected 'function', got {tool.type!r}",
                               "invalid_tools", param=f"tools.{i}.type")
        parameters = tool.function.parameters
        if parameters is not None and parameters.get("type", "object") != "object":
            raise GatewayError(400, f"{where(i)}.parameters: expected a JSON Schema of "
                               f"type 'object', got type {parameters.get('type')!r}",
                               "invalid_tools", param=f"{where(i)}.parameters")
        if tool.function.name in names:
            raise GatewayError(400, f"{where(i)}.name: {tool.function.name!r} is defined "
                               "twice", "invalid_tools", param=f"{where(i)}.name")
        names.append(tool.function.name)
    picked = _choice(choice, names, field, picking, legacy)
    if not names:
        if picked not in (None, "auto", "none"):
            raise GatewayError(400, f"{picking}: a tool is required but the request has no "
                               f"{field}", "invalid_tools", param=picking)
        return None
    return ToolSpec([{"name": t.function.name, "description": t.function.description or "",
                      "parameters": t.function.parameters or {"type": "object", "properties": {}}}
                     for t in tools or ()], picked, parallel, legacy)


def _choice(choice: Any, names: list[str], field: str, picking: str,
            legacy: bool) -> str | dict[str, str] | None:
    if choice is None or choice in CHOICES[:2] or (choice == "required" and not legacy):
        return choice
    name, param = None, f"{picking}.name" if legacy else f"{picking}.function.name"
    if legacy and isinstance(choice, dict):
        name = choice.get("name")
    elif isinstance(choice, dict) and choice.get("type", "function") == "function":
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(name, str):
        shapes = ("'auto', 'none' or {\"name\": ...}" if legacy else "'auto', 'none', 'required' or "
                  "{\"type\": \"function\", \"function\": {\"name\": ...}}")
        raise GatewayError(400, f"{picking}: expected {shapes}, got {json.dumps(choice)[:100]}",
                           "invalid_tools", param=picking)
    if name not in names:
        raise GatewayError(400, f"{param}: no function named {name!r} in {field} "
                           f"({', '.join(names) or 'none'})", "invalid_tools", param=param)
    return {"name": name}


class OpenAITools(TaskBody):
    """OpenAI's tool fields of a chat request (a base of `openai_api.ChatRequest`), and the
    deprecated ``functions`` / ``function_call`` older apps still send."""

    tools: list[_Tool] | None = None
    tool_choice: Any = None
    parallel_tool_calls: bool | None = None
    functions: list[_Function] | None = None
    function_call: Any = None

    def tool_spec(self) -> ToolSpec | None:
        if self.functions is None:
            return _spec(self.tools, self.tool_choice, self.parallel_tool_calls)
        if self.tools is not None:
            raise GatewayError(400, "functions: give tools or the deprecated functions, not both",
                               "invalid_tools", param="functions")
        return _spec([_Tool(function=f) for f in self.functions], self.function_call, False, legacy=True)


class OllamaTools(TaskBody):
    """Ollama's ``tools`` of ``/api/chat`` (a base of `ollama_api.OllamaChat`): no choice."""

    tools: list[_Tool] | None = None

    def tool_spec(self) -> ToolSpec | None:
        return _spec(self.tools, None, None)


class ToolMessage(BaseModel):
    """The tool fields of a message, both protocols' (a base of their message models)."""

    model_config = ConfigDict(extra="ignore")

    tool_calls: list[dict[str, Any]] | None = None
    function_call: dict[str, Any] | None = None  # OpenAI's deprecated call (one, no id)
    tool_call_id: str | None = None  # OpenAI's tool result
    tool_name: str | None = None  # Ollama's tool result
    name: str | None = None  # older clients' name of the tool a result is from


def _bad(where: str, what: str) -> GatewayError:
    return GatewayError.at(where, what, "invalid_messages")


def _arguments(raw: Any, where: str) -> str:
    """A call's arguments as a JSON object's text (OpenAI sends the text, Ollama the object)."""
    text = arguments_text(raw)
    if text is None:
        raise _bad(where, f"expected a JSON object's text, got {raw[:100]!r}" if isinstance(raw, str)
                   else f"expected an object, got {type(raw).__name__}")
    return text


def _calls(message: ToolMessage, i: int, openai: bool) -> list[dict[str, str]]:
    if message.function_call is not None and not message.tool_calls:  # deprecated: one call, no id
        return _calls(message.model_copy(update={"tool_calls": [{"function": message.function_call}],
                                                  "function_call": None}), i, openai=False)
    out = []
    for j, call in enumerate(message.tool_calls or ()):
        where = f"messages.{i}.tool_calls.{j}"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
            raise _bad(f"{where}.function.name", "expected the called function's name")
        ident = call.get("id")
        if not isinstance(ident, str) or not ident:
            if openai:
                raise _bad(f"{where}.id", "expected the call's id (a tool result names it)")
            ident = f"call_{i}_{j}"
        out.append({"id": ident, "name": function["name"],
                    "arguments": _arguments(function.get("arguments"), f"{where}.function.arguments")})
    return out


def _messages(messages: list[Any], text: Any, openai: bool) -> list[dict[str, Any]]:
    """The conversation without its system messages, in the payload's shape (`text(m)`: a
    message's text); tool results matched to their calls. None left: 400 naming ``messages``."""
    out: list[dict[str, Any]] = []
    open_calls: list[dict[str, str]] = []  # calls not answered yet, oldest first
    for i, m in enumerate(messages):
        if m.role in ("system", "developer"):
            continue
        doc: dict[str, Any] = {"role": m.role, "content": text(m)}
        if m.role == "assistant" and (m.tool_calls or m.function_call):
            doc["tool_calls"] = _calls(m, i, openai)
            open_calls.extend(doc["tool_calls"])
        elif m.role == "tool":
            doc |= _answered(m, i, open_calls, openai)
        elif m.role == "function":  # the deprecated result: it names its function, no id
            doc |= {"role": "tool", **_answered(m, i, open_calls, openai=False)}
        out.append(doc)
    if not out:
        raise _bad("messages", "expected at least one user message")
    return out


def _answered(m: ToolMessage, i: int, open_calls: list[dict[str, str]], openai: bool) -> dict[str, Any]:
    """A tool result's ``tool_call_id`` and ``name``: of the call it names, else (Ollama) of
    the earliest open call of its tool (of any tool, when it names none)."""
    name = m.tool_name or m.name
    if openai and not m.tool_call_id:
        raise _bad(f"messages.{i}.tool_call_id", "a tool message needs the id of the call it answers")
    if m.tool_call_id:
        match = [c for c in open_calls if c["id"] == m.tool_call_id][-1:]
    else:
        match = [c for c in open_calls if name in (None, c["name"])][:1]
    if match:
        open_calls.remove(match[0])
        return {"tool_call_id": match[0]["id"], "name": match[0]["name"]}
    return {"tool_call_id": m.tool_call_id, "name": name}


def openai_messages(messages: list[Any], text: Any) -> list[dict[str, Any]]:
    return _messages(messages, text, openai=True)


def ollama_messages(messages: list[Any], text: Any) -> list[dict[str, Any]]:
    return _messages(messages, text, openai=False)


def tool_tokens(tools: ToolSpec | None, messages: list[dict[str, Any]], chars_per_token: float) -> int:
    """The prompt tokens of the tools' schemas and of the conversation's calls (the models see
    both in their prompt: chat templates write the schemas out as JSON)."""
    chars = len(json.dumps(tools.tools)) if tools is not None else 0
    chars += sum(len(c["name"]) + len(c["arguments"]) for m in messages for c in m.get("tool_calls") or ())
    return round(chars / chars_per_token)


# -- the model's calls, back to the caller ------------------------------------------------------
def calls_from_result(result: dict[str, Any]) -> tuple[ToolCall, ...]:
    """The calls in a task's result (its closing chunk lost): none if it has none or a bad list."""
    raw = result.get("tool_calls")
    if not isinstance(raw, list):
        return ()
    try:
        return tuple(ToolCall.model_validate(c) for c in raw)
    except ValidationError:
        return ()


def openai_reply_calls(calls: tuple[ToolCall, ...], spec: ToolSpec | None, delta: bool) -> dict[str, Any]:
    """The calls of a reply's message (``delta``: of a streamed event): ``tool_calls``, or the
    deprecated ``function_call`` (the first call) when the request gave ``functions``."""
    if spec is not None and spec.legacy:
        return {"function_call": {"name": calls[0].name, "arguments": calls[0].arguments}}
    return {"tool_calls": openai_delta_calls(calls) if delta else openai_calls(calls)}


def openai_finish(spec: ToolSpec | None) -> str:
    """The finish reason of an answer that calls: ``tool_calls`` (``function_call``)."""
    return "function_call" if spec is not None and spec.legacy else "tool_calls"


def openai_calls(calls: tuple[ToolCall, ...]) -> list[dict[str, Any]]:
    """``message.tool_calls`` of a chat completion."""
    return [{"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in calls]


def openai_delta_calls(calls: tuple[ToolCall, ...]) -> list[dict[str, Any]]:
    """``delta.tool_calls`` of a chunk: each call whole, with its index."""
    return [{"index": i, **call} for i, call in enumerate(openai_calls(calls))]


def ollama_calls(calls: tuple[ToolCall, ...]) -> list[dict[str, Any]]:
    """``message.tool_calls`` as Ollama writes them: the arguments as an object."""
    return [{"function": {"name": c.name, "arguments": arguments_object(c)}} for c in calls]


def arguments_object(call: ToolCall) -> dict[str, Any]:
    """A call's arguments as an object, for the protocols that write them so (Ollama's
    ``arguments``, Anthropic's ``input``): a model's text that is not a JSON object goes as
    ``{}`` (their clients expect a mapping)."""
    return read_arguments(call.arguments) or {}
