"""OpenAI-compatible servers (LM Studio, llama.cpp server, vLLM, mlx-lm server):
``POST /v1/chat/completions`` streaming server-sent events with usage (a message's images as
``image_url`` parts: data URLs; a completion task:
``POST /v1/completions``, its events carrying ``choices[].text``); discovery from
``/v1/models``, whose models count as loaded (these servers list what they serve)."""

from __future__ import annotations

import json
from typing import Any

from heddle.live.agent.executors import ExecutionError, Progress
from heddle.live.backends.common import LlmCall, StreamMeter
from heddle.live.backends.completion import openai_prompt
from heddle.live.backends.generation import Generation
from heddle.live.backends.images import openai_images
from heddle.live.backends.local import LocalServer
from heddle.live.backends.names import ServedModel, catalog_ids
from heddle.live.backends.tools import CallPieces, openai_tool_body
from heddle.live.features import EMBEDDINGS, IMAGES, RAW, SUFFIX, THINKING, TOOLS

__all__ = ["DEFAULT_LM_STUDIO_URL", "OpenAIExecutor"]

DEFAULT_LM_STUDIO_URL = "http://127.0.0.1:1234"
"""LM Studio's default server address."""

NAMES = {"temperature": ("temperature",), "top_p": ("top_p",), "top_k": ("top_k",),
         "min_p": ("min_p",), "seed": ("seed",), "stop": ("stop",),
         "presence_penalty": ("presence_penalty",), "frequency_penalty": ("frequency_penalty",),
         "repeat_penalty": ("repeat_penalty", "repetition_penalty")}
"""Each sampling field's names in the body. OpenAI's own (temperature, top_p, seed, stop, the
penalties) every such server takes; top_k, min_p and the repeat penalty are extras: llama.cpp's
server and LM Studio read ``repeat_penalty``, vLLM and mlx-lm's server ``repetition_penalty``
(each ignores the other's name; vLLM logs it), so it goes under both. ``num_ctx`` is none of
theirs: they load a model with its context length fixed (llama.cpp ``-c``, LM Studio's load
settings), so it is not sent."""
SENT = frozenset([*NAMES, "format", "think"])


class OpenAIExecutor(LocalServer):
    backend = "openai"
    features = frozenset({TOOLS, EMBEDDINGS, RAW, SUFFIX, IMAGES, THINKING})  # heddle.live.features
    sends = SENT
    embed_api = "openai"

    def __init__(self, url: str, **kwargs: Any) -> None:
        kwargs.setdefault("kinds", ("openai",))
        super().__init__(url, **kwargs)

    async def _discover(self) -> list[ServedModel]:
        listing = await self._client.get_json("/v1/models")
        return [ServedModel(m["id"], *catalog_ids(m["id"]), loaded=True)
                for m in listing.get("data") or ()]

    def _request(self, name: str, call: LlmCall) -> tuple[str, dict[str, Any]]:
        if call.completion is not None:  # `heddle.live.backends.completion`
            path, asked = "/v1/completions", openai_prompt(call.completion)
        else:
            path = "/v1/chat/completions"
            asked = {"messages": openai_images(call.chat())}
        body = {"model": name, **asked, "stream": True,
                "stream_options": {"include_usage": True}, "max_tokens": call.max_output_tokens}
        gen = call.generation
        for field, value in gen.sampling.items():
            for key in NAMES.get(field, ()):
                body[key] = value
        if gen.format is not None:
            body["response_format"] = self._response_format(gen)
        if gen.think is not None:
            body |= think_body(gen.think)
        if call.completion is None:  # a completion has no tools
            openai_tool_body(call.tools, body)
        return path, body

    def _response_format(self, gen: Generation) -> dict[str, Any]:
        """``json_object`` for a JSON object, ``json_schema`` for a schema; LM Studio takes
        only ``json_schema`` (it answers 400 "'response_format.type' must be 'json_schema'"),
        so a JSON object is asked of it as the schema of any object."""
        fmt = gen.format or {}
        if fmt["type"] == "json" and self.backend != "lm-studio":
            return {"type": "json_object"}
        schema = fmt.get("schema", {"type": "object"})
        return {"type": "json_schema", "json_schema": {"name": fmt.get("name", "response"), "schema": schema}}

    def _reader(self, meter: StreamMeter, progress: Progress) -> _Events:
        return _Events(f"{self.backend} at {meter.server}", meter, progress)


def think_body(think: bool | str) -> dict[str, Any]:
    """A task's ``think`` in a chat completion's body: a level as ``reasoning_effort`` (OpenAI's
    field, in the openai SDK's ``CompletionCreateParams``; vLLM and Ollama's OpenAI endpoint
    take it, gpt-oss reads it); true or false as ``chat_template_kwargs.enable_thinking``, the
    switch of the Qwen3 and DeepSeek templates, which vLLM and llama.cpp's server hand to the
    template (an extension no SDK types: checked against neither server here; a server that
    does not know it ignores it, as LM Studio does unknown fields)."""
    if isinstance(think, str):
        return {"reasoning_effort": think}
    return {"chat_template_kwargs": {"enable_thinking": think}}


class _Events:
    """Server-sent events of a chat completion (``delta.content``) or a completion
    (``text``), a line at a time (`LineReader`). A reasoning model's thinking comes in
    ``delta.reasoning_content`` (vLLM, llama.cpp's server, LM Studio, DeepSeek's API) or
    ``delta.reasoning`` (Ollama's OpenAI endpoint, OpenRouter, newer vLLM), and its count in
    ``usage.completion_tokens_details.reasoning_tokens`` (the openai SDK's ``CompletionUsage``)."""

    __slots__ = ("_calls", "_report", "meter", "progress", "reported", "where")

    def __init__(self, where: str, meter: StreamMeter, progress: Progress) -> None:
        self.where, self.meter, self.progress = where, meter, progress
        self.reported: dict[str, Any] | None = None
        self._calls: CallPieces | None = None  # streamed tool calls, once one comes
        self._report: dict[str, Any] = {"model": None, "prompt_tokens": None,
                                        "output_tokens": None, "finish_reason": None}

    def __call__(self, line: str) -> bool:
        if not line.startswith("data:"):
            return False  # blank separators, comments (": ping"), event names
        data = line[5:].strip()
        reported = self._report
        if data == "[DONE]":
            if self._calls is not None:
                reported["tool_calls"] = self._calls.done(self.where)
            self.reported = reported
            return True
        chunk = json.loads(data)
        if not isinstance(chunk, dict):
            raise ExecutionError(f"{self.where}: expected a JSON object per event, got {data[:100]!r}")
        if "error" in chunk:
            raise ExecutionError(f"{self.where}: {chunk['error']}")
        reported["model"] = chunk.get("model") or reported["model"]
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            thinking = delta.get("reasoning_content") or delta.get("reasoning")
            if thinking and isinstance(thinking, str):
                self.meter.thinking(thinking, self.progress)
            self.meter.content(delta.get("content") or choice.get("text") or "", self.progress)
            if delta.get("tool_calls"):
                if self._calls is None:
                    self._calls = CallPieces()
                self._calls.openai_delta(delta["tool_calls"])
            reported["finish_reason"] = choice.get("finish_reason") or reported["finish_reason"]
        if usage := chunk.get("usage"):
            reported["prompt_tokens"] = usage.get("prompt_tokens")
            reported["output_tokens"] = usage.get("completion_tokens")
            details = usage.get("completion_tokens_details")
            if isinstance(details, dict) and isinstance(details.get("reasoning_tokens"), int):
                reported["reasoning_tokens"] = details["reasoning_tokens"]
        return False

    def unfinished(self) -> str:
        return f"{self.where}: the stream ended without [DONE] (after {self.meter.chunks} chunks)"
