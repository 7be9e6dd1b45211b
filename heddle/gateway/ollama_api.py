"""The Ollama routes: ``POST /api/chat`` and ``/api/generate`` (NDJSON streaming by default,
one JSON object with ``"stream": false``) and ``GET /api/tags``.

Honoured fields: ``model``, ``messages`` / ``prompt`` (+ ``system``), ``stream``,
``options.num_predict`` (the output bound). Other options are accepted and not passed on.
Unknown fields are ignored, as Ollama does.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from heddle.gateway.errors import GatewayError
from heddle.gateway.run import TaskRun

__all__ = ["OllamaChat", "OllamaGenerate", "ollama_lines", "ollama_reply", "tags_reply"]

NS = 1_000_000_000


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: str
    content: str = ""


class _Base(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1)
    stream: bool = True
    options: dict[str, Any] | None = None
    system: str | None = None

    def max_tokens(self) -> int | None:
        value = (self.options or {}).get("num_predict")
        if value is None or value == -1:  # -1: Ollama's "no limit"; heddle needs a bound
            return None
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise GatewayError(400, f"options.num_predict: expected a positive integer, got "
                               f"{value!r}", "invalid_options", param="options.num_predict")
        return value


class OllamaChat(_Base):
    messages: list[_Message] = Field(min_length=1)

    def chat_messages(self) -> tuple[list[dict[str, str]], str | None]:
        system = "\n\n".join([self.system] * bool(self.system)
                             + [m.content for m in self.messages if m.role == "system"])
        messages = [{"role": m.role, "content": m.content} for m in self.messages if m.role != "system"]
        if not messages:
            raise GatewayError(400, "messages: expected at least one user message",
                               "invalid_messages", param="messages")
        return messages, system or None


class OllamaGenerate(_Base):
    prompt: str = Field(min_length=1)

    def chat_messages(self) -> tuple[list[dict[str, str]], str | None]:
        return [{"role": "user", "content": self.prompt}], self.system


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _piece(run: TaskRun, text: str, generate: bool) -> dict[str, Any]:
    if generate:
        return {"model": run.chat.model.name, "created_at": _now(), "response": text, "done": False}
    return {"model": run.chat.model.name, "created_at": _now(),
            "message": {"role": "assistant", "content": text}, "done": False}


def _closing(run: TaskRun, generate: bool, text: str, started: float) -> dict[str, Any]:
    prompt, completion = run.counts()
    doc = _piece(run, text, generate)
    doc.update({
        "done": True, "done_reason": "length" if run.usage.get("finish_reason") == "length" else "stop",
        "total_duration": int((time.monotonic() - started) * NS), "load_duration": 0,
        "prompt_eval_count": prompt, "eval_count": completion,
        "eval_duration": int((run.usage.get("duration_s") or 0.0) * NS), "heddle": run.where(),
    })
    return doc


async def ollama_lines(run: TaskRun, generate: bool):
    """NDJSON lines; a failure mid-stream is an ``{"error": ...}`` line, as Ollama sends."""
    started = time.monotonic()
    try:
        async for text in run.pieces():
            yield json.dumps(_piece(run, text, generate)).encode() + b"\n"
    except GatewayError as exc:
        yield json.dumps(exc.ollama()).encode() + b"\n"
        return
    yield json.dumps(_closing(run, generate, "", started)).encode() + b"\n"


async def ollama_reply(run: TaskRun, generate: bool) -> dict[str, Any]:
    started = time.monotonic()
    async for _ in run.pieces():
        pass
    return _closing(run, generate, run.output_text, started)


def tags_reply(models: list[tuple[str, str]]) -> dict[str, Any]:
    """``GET /api/tags``: (name, family) pairs in Ollama's listing shape."""
    return {"models": [{"name": name, "model": name, "modified_at": _now(), "size": 0,
                        "digest": "", "details": {"family": family, "format": "heddle"}}
                       for name, family in models]}
