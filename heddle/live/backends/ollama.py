"""Ollama: ``POST /api/chat`` streaming NDJSON (a message's images as its ``images``: base64; a
completion task: ``POST /api/generate``, its lines carrying ``response`` instead of
``message.content``); discovery from ``/api/tags`` and ``/api/ps``. A task's ``think`` goes as
the body's ``think`` (true, false or a level: Ollama's own values, as its Python client's
``ChatRequest.think`` and ``GenerateRequest.think`` type them); the model's thinking comes in
``message.thinking`` (a generate's: ``thinking``) and streams on apart from the answer."""

from __future__ import annotations

import json
from typing import Any

from heddle.live.agent.executors import ExecutionError, Progress
from heddle.live.backends.common import LlmCall, StreamMeter
from heddle.live.backends.images import ollama_images
from heddle.live.backends.local import LocalServer
from heddle.live.backends.names import ServedModel, catalog_ids
from heddle.live.backends.tools import ollama_calls, ollama_tool_body
from heddle.live.features import EMBEDDINGS, IMAGES, RAW, SUFFIX, THINKING, TOOLS

__all__ = ["DEFAULT_OLLAMA_URL", "OllamaExecutor"]

DEFAULT_OLLAMA_URL = "http://127.0.0.1:11434"
"""Ollama's default listen address."""

NS = 1e9


class OllamaExecutor(LocalServer):
    backend = "ollama"
    features = frozenset({TOOLS, EMBEDDINGS, RAW, SUFFIX, IMAGES, THINKING})  # heddle.live.features
    embed_api = "ollama"

    def __init__(self, url: str = DEFAULT_OLLAMA_URL, **kwargs: Any) -> None:
        kwargs.setdefault("kinds", ("ollama",))
        super().__init__(url, **kwargs)

    async def _discover(self) -> list[ServedModel]:
        tags = await self._client.get_json("/api/tags")
        ps = await self._client.get_json("/api/ps")
        loaded = {m["name"] for m in ps.get("models") or ()}
        out = []
        for m in tags.get("models") or ():
            details = m.get("details") or {}
            model, quant = catalog_ids(m["name"], details.get("parameter_size"),
                                       details.get("quantization_level"))
            out.append(ServedModel(m["name"], model, quant, m["name"] in loaded))
        return out

    def _request(self, name: str, call: LlmCall) -> tuple[str, dict[str, Any]]:
        """Every generation field goes: ``options`` takes the sampling ones under the same
        names, ``format`` is ``"json"`` or the schema. A chat goes to ``/api/chat``, a
        completion (`heddle.live.backends.completion`) to ``/api/generate`` with the same
        options."""
        if call.completion is not None:
            path, asked = "/api/generate", call.completion.asked()
        else:
            path = "/api/chat"
            asked = {"messages": ollama_images(call.chat())}
        gen = call.generation
        body = {"model": name, **asked, "stream": True,
                "options": {"num_predict": call.max_output_tokens, **gen.sampling}}
        if gen.format is not None:
            body["format"] = "json" if gen.format["type"] == "json" else gen.format["schema"]
        if gen.think is not None:
            body["think"] = gen.think
        if call.completion is None:  # a completion has no tools
            ollama_tool_body(call.tools, body)
        return path, body

    def _reader(self, meter: StreamMeter, progress: Progress) -> _Lines:
        return _Lines(meter, progress)


class _Lines:
    """Ollama's NDJSON stream, a line at a time (`LineReader`): a chat's (``message.content``)
    or a generate's (``response``)."""

    __slots__ = ("calls", "meter", "progress", "reported")

    def __init__(self, meter: StreamMeter, progress: Progress) -> None:
        self.meter, self.progress = meter, progress
        self.reported: dict[str, Any] | None = None
        self.calls: list[dict[str, str]] = []  # the model's tool calls (`message.tool_calls`)

    def __call__(self, line: str) -> bool:
        if not line.strip():
            return False
        meter = self.meter
        chunk = json.loads(line)
        if not isinstance(chunk, dict):
            raise ExecutionError(f"ollama at {meter.server}: expected a JSON object per line, "
                                 f"got {line[:100]!r}")
        if "error" in chunk:  # Ollama reports failures mid-stream as {"error": "..."}
            raise ExecutionError(f"ollama at {meter.server}: {chunk['error']}")
        message = chunk.get("message") or {}
        thinking = message.get("thinking") or chunk.get("thinking")
        if thinking:
            meter.thinking(thinking, self.progress)
        meter.content(message.get("content") or chunk.get("response") or "", self.progress)
        if "tool_calls" in message:
            self.calls += ollama_calls(message["tool_calls"])
        if not chunk.get("done"):
            return False
        eval_count, eval_ns = chunk.get("eval_count"), chunk.get("eval_duration")
        self.reported = {
            "model": chunk.get("model"), "prompt_tokens": chunk.get("prompt_eval_count"),
            "output_tokens": eval_count, "finish_reason": chunk.get("done_reason"),
            # the server's own figure, beside the one measured from the stream
            "server_decode_tokens_per_s": eval_count / (eval_ns / NS)
            if eval_count and eval_ns else None,
        }
        if self.calls:
            self.reported["tool_calls"] = self.calls
        return True

    def unfinished(self) -> str:
        return (f"ollama at {self.meter.server}: the stream ended before done "
                f"(after {self.meter.chunks} chunks)")
