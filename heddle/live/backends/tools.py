"""Tool (function) calling in the LLM backends: the task payload's tools (the gateway's shape,
`heddle.gateway.tools`) written in each server's shape, and the calls a model makes read from
each server's stream into one shape, ``{"id", "name", "arguments"}`` (``arguments`` the JSON
object's text), which the result carries as ``tool_calls`` and the closing token chunk too
(protocol 1.9).

- Ollama (``/api/chat``): ``tools``; an assistant's calls with their arguments as an object, a
  tool's result as ``{"role": "tool", "tool_name"}``. Ollama has no ``tool_choice``: "none"
  sends no tools, a named tool sends only that one, "required" sends them all (the model may
  still answer in text). Its calls come whole, in a message's ``tool_calls``, with no id: each
  gets one here.
- OpenAI-compatible servers: ``tools``, ``tool_choice`` and ``parallel_tool_calls`` as OpenAI
  has them; streamed calls are put together from their ``delta.tool_calls`` fragments (an
  ``index`` each; the id and name in the first, the arguments in pieces).
- Claude (Messages API): ``tools`` with ``input_schema``, ``tool_choice`` (auto, any, tool,
  none; ``disable_parallel_tool_use``), calls as ``tool_use`` blocks and results as
  ``tool_result`` blocks of a user turn; streamed calls from ``content_block_start`` and their
  ``input_json_delta`` pieces.
- MLX: no tools (its ``features`` lack them: heddle.live.features refuses the task).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from heddle.live.agent.executors import ExecutionError
from heddle.live.features import tool_turns

__all__ = [
    "CallPieces",
    "ToolUse",
    "arguments_text",
    "claude_tool_kwargs",
    "new_call_id",
    "ollama_calls",
    "ollama_tool_body",
    "openai_tool_body",
    "read_arguments",
    "tool_use",
]


@dataclass(frozen=True, slots=True)
class ToolUse:
    """A task's tools: ``[{"name", "description", "parameters"}]``, the choice (None: auto)
    and whether calls may go in parallel (None: the server's default)."""

    tools: tuple[dict[str, Any], ...]
    choice: str | dict[str, str] | None = None
    parallel: bool | None = None


def tool_use(source: dict[str, Any]) -> ToolUse | None:
    """The payload's tools, checked (ExecutionError naming the field), or None."""
    tools = source.get("tools")
    if tools is None:
        return None
    if not (isinstance(tools, list) and all(
            isinstance(t, dict) and isinstance(t.get("name"), str) and t["name"] for t in tools)):
        raise ExecutionError("llm: payload tools must be a list of {name, description, parameters} objects")
    choice = source.get("tool_choice")
    if not (choice in (None, "auto", "none", "required")
            or (isinstance(choice, dict) and isinstance(choice.get("name"), str))):
        raise ExecutionError(f"llm: payload tool_choice must be auto, none, required or {{name}}, got {choice!r}")
    parallel = source.get("parallel_tool_calls")
    if parallel is not None and not isinstance(parallel, bool):
        raise ExecutionError(f"llm: payload parallel_tool_calls must be a boolean, got {parallel!r}")
    return ToolUse(tuple(tools), choice, parallel)


def uses_tools(tools: ToolUse | None, messages: list[dict[str, Any]]) -> bool:
    return tools is not None or tool_turns(messages)


def new_call_id() -> str:
    """An id for a call its server sent without one (Ollama): random, as OpenAI's are."""
    return "call_" + os.urandom(12).hex()


def read_arguments(text: str) -> dict[str, Any] | None:
    """A call's arguments (a JSON object's text; blank: no arguments) as the object, or None
    when the text holds no JSON object. One reading for the backends (a payload's calls) and
    the gateway (a request's calls, a model's written back in Ollama's shape)."""
    try:
        value = json.loads(text) if text.strip() else {}
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def arguments_text(raw: Any) -> str | None:
    """A call's arguments in either shape (OpenAI's JSON text, Ollama's object; none: ``{}``)
    as a JSON object's text, or None when they are neither."""
    if raw is None:
        return "{}"
    if isinstance(raw, dict):
        return json.dumps(raw, ensure_ascii=False)
    if isinstance(raw, str) and read_arguments(raw) is not None:
        return raw if raw.strip() else "{}"
    return None


def _object(text: str) -> dict[str, Any]:
    value = read_arguments(text)
    if value is None:
        raise ExecutionError(f"llm: a tool call's arguments must be a JSON object's text, got {text[:100]!r}")
    return value


def _chosen(tools: ToolUse) -> tuple[dict[str, Any], ...]:
    """The tools a server without ``tool_choice`` is sent (Ollama)."""
    if tools.choice == "none":
        return ()
    if isinstance(tools.choice, dict):
        return tuple(t for t in tools.tools if t["name"] == tools.choice["name"])
    return tools.tools


def _functions(tools: tuple[dict[str, Any], ...]) -> list[dict[str, Any]]:
    return [{"type": "function", "function": dict(t)} for t in tools]


def _rewritten(messages: list[dict[str, Any]], calls: Any, result: Any) -> list[dict[str, Any]]:
    """The messages with an assistant's calls written by ``calls(m)``, a tool's result by
    ``result(m)``; the others as they are."""
    return [calls(m) if m.get("tool_calls") else result(m) if m["role"] == "tool" else m
            for m in messages]


# -- Ollama --------------------------------------------------------------------------------------
def ollama_tool_body(tools: ToolUse | None, body: dict[str, Any]) -> None:
    """``body`` (an ``/api/chat`` request) with the task's tools and its tool turns in Ollama's shape."""
    if not uses_tools(tools, body["messages"]):
        return
    body["messages"] = _rewritten(body["messages"], lambda m: {
        "role": m["role"], "content": m["content"], "tool_calls": [
            {"function": {"name": c["name"], "arguments": _object(c["arguments"])}} for c in m["tool_calls"]]},
        lambda m: {"role": "tool", "content": m["content"], **({"tool_name": m["name"]} if m.get("name") else {})})
    if tools is not None and (chosen := _chosen(tools)):
        body["tools"] = _functions(chosen)


def ollama_calls(raw: Any) -> list[dict[str, str]]:
    """A streamed message's ``tool_calls`` (whole calls, arguments as an object)."""
    out = []
    for call in raw if isinstance(raw, list) else ():
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
            raise ExecutionError(f"ollama: a tool call without a function name: {json.dumps(call)[:200]}")
        arguments = function.get("arguments")
        out.append({"id": call.get("id") or new_call_id(), "name": function["name"],
                    "arguments": arguments if isinstance(arguments, str)
                    else json.dumps(arguments or {}, ensure_ascii=False)})
    return out


# -- OpenAI-compatible ---------------------------------------------------------------------------
def openai_tool_body(tools: ToolUse | None, body: dict[str, Any]) -> None:
    """``body`` (a chat completion request) with the tools and its tool turns in OpenAI's shape."""
    if not uses_tools(tools, body["messages"]):
        return
    body["messages"] = _rewritten(body["messages"], lambda m: {
        "role": m["role"], "content": m["content"] or None, "tool_calls": [
            {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
            for c in m["tool_calls"]]},
        lambda m: {"role": "tool", "tool_call_id": m.get("tool_call_id") or "", "content": m["content"]})
    if tools is None:
        return
    body["tools"] = _functions(tools.tools)
    if tools.choice is not None:
        body["tool_choice"] = tools.choice if isinstance(tools.choice, str) else {
            "type": "function", "function": {"name": tools.choice["name"]}}
    if tools.parallel is not None:
        body["parallel_tool_calls"] = tools.parallel


class CallPieces:
    """Streamed calls put together: the pieces of each call (by its key: an ``index``, a
    content block) in the order the calls began."""

    __slots__ = ("calls",)

    def __init__(self) -> None:
        self.calls: dict[Any, dict[str, Any]] = {}

    def piece(self, key: Any, ident: str | None = None, name: str | None = None,
              arguments: str | None = None) -> None:
        call = self.calls.setdefault(key, {"id": None, "name": "", "arguments": []})
        if ident:
            call["id"] = ident
        if name:
            call["name"] += name
        if arguments:
            call["arguments"].append(arguments)

    def openai_delta(self, deltas: Any) -> None:
        """One event's ``delta.tool_calls``."""
        for d in deltas if isinstance(deltas, list) else ():
            function = d.get("function") or {}
            self.piece(d.get("index", 0), d.get("id"), function.get("name"), function.get("arguments"))

    def done(self, where: str) -> list[dict[str, str]]:
        """The calls, whole (ExecutionError for one that never got a name)."""
        out = []
        for call in self.calls.values():
            if not call["name"]:
                raise ExecutionError(f"{where}: a streamed tool call without a function name")
            out.append({"id": call["id"] or new_call_id(), "name": call["name"],
                        "arguments": "".join(call["arguments"]) or "{}"})
        return out


# -- Claude --------------------------------------------------------------------------------------
def claude_tool_kwargs(tools: ToolUse | None, kwargs: dict[str, Any]) -> None:
    """``kwargs`` (of ``messages.create``) with the tools, the choice and the tool turns in the
    Messages API's shape: calls as ``tool_use`` blocks, results as ``tool_result`` blocks of
    one user turn."""
    if not uses_tools(tools, kwargs["messages"]):
        return
    messages: list[dict[str, Any]] = []
    for m in kwargs["messages"]:
        if m.get("tool_calls"):
            blocks = [{"type": "text", "text": m["content"]}] if m["content"] else []
            blocks += [{"type": "tool_use", "id": c["id"], "name": c["name"], "input": _object(c["arguments"])}
                       for c in m["tool_calls"]]
            messages.append({"role": "assistant", "content": blocks})
        elif m["role"] == "tool":
            block = {"type": "tool_result", "tool_use_id": m.get("tool_call_id") or "", "content": m["content"]}
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "user" and isinstance(last["content"], list):
                last["content"].append(block)  # one user turn holds every result of a turn's calls
            else:
                messages.append({"role": "user", "content": [block]})
        else:
            messages.append(m)
    kwargs["messages"] = messages
    if tools is None:
        return
    kwargs["tools"] = [{"name": t["name"], "description": t.get("description") or "",
                        "input_schema": t.get("parameters") or {"type": "object", "properties": {}}}
                       for t in tools.tools]
    choice: dict[str, Any] | None = None
    if tools.choice in ("auto", "none", "required"):
        choice = {"type": {"required": "any"}.get(tools.choice, tools.choice)}
    elif isinstance(tools.choice, dict):
        choice = {"type": "tool", "name": tools.choice["name"]}
    if tools.parallel is False and (choice or {}).get("type") != "none":
        choice = {**(choice or {"type": "auto"}), "disable_parallel_tool_use": True}
    if choice is not None:
        kwargs["tool_choice"] = choice
