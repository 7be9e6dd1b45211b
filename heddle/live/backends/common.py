"""What every LLM backend shares: the request an assignment asks for, the stream meter, the
result it reports and the reasons its failures are reported with.

A backend streams one completion, measures time to first token and decode speed from the
stream itself (what the user waited for, not what the server says), and reports the model
the server actually used. A failure raises `ExecutionError` with the reason and, when the
call was already billed, a result carrying its cost, so the control plane charges a failed
attempt once and a retry under a new attempt number once more for its own call.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import httpx2

from heddle.live.agent.executors import ExecutionError, Progress
from heddle.live.backends.completion import Completion, completion_from_payload
from heddle.live.backends.generation import (
    NONE,
    Generation,
    GenerationError,
    check_format,
    check_sampling,
    check_think,
)
from heddle.live.backends.http import HttpStatusError
from heddle.live.backends.tools import ToolUse, tool_use
from heddle.live.backends.worker import (
    WorkerDef,
    WorkerError,
    render_input,
    system_prompt,
    worker_from_options,
)
from heddle.live.protocol import Assignment

__all__ = [
    "DEFAULT_OUTPUT_TOKENS",
    "DEFAULT_TIMEOUTS",
    "BackendTimeouts",
    "LlmCall",
    "StreamMeter",
    "build_prompt",
    "http_failure",
    "llm_call",
    "retry_after_s",
]

DEFAULT_OUTPUT_TOKENS = 256
"""Output cap when the task names none (a task file's LLM step usually does)."""

_WORDS = ["river", "stone", "lantern", "orchard", "meadow", "harbor", "willow", "copper", "violet", "thunder", "pepper", "saddle", "marble", "garden", "falcon", "basket", "silver", "candle", "ribbon", "timber"]
"""Common English words, about one token each in the usual tokenizers (Llama, Qwen, Claude)."""


@dataclass(frozen=True, slots=True)
class BackendTimeouts:
    """How long a backend waits; the agent's task timeout bounds the whole attempt."""

    connect_s: float = 5.0
    read_s: float = 120.0  # no byte for this long: a slow first token or a stalled stream
    max_retry_wait_s: float = 10.0  # a 429's Retry-After up to this is waited out in-attempt
    rate_limit_retries: int = 2

    def httpx(self) -> httpx2.Timeout:
        return httpx2.Timeout(self.read_s, connect=self.connect_s)


DEFAULT_TIMEOUTS = BackendTimeouts()


def build_prompt(prompt_tokens: int) -> str:
    """A deterministic prompt of about ``prompt_tokens`` tokens (same size, same text)."""
    n = max(prompt_tokens - 12, 1)  # the instruction below is about a dozen tokens
    body = " ".join(_WORDS[i % len(_WORDS)] for i in range(n))
    return f"Read the words below, then write a short story that uses them.\n\n{body}"


@dataclass(frozen=True, slots=True)
class LlmCall:
    """What one attempt asks a backend for."""

    messages: list[dict[str, Any]]
    max_output_tokens: int
    system: str | None = None
    worker: WorkerDef | None = None  # a worker YAML's step: its output is checked on return
    generation: Generation = NONE  # how to sample, and JSON output (each backend maps it)
    tools: ToolUse | None = None  # the payload's tools (`heddle.live.backends.tools`)
    completion: Completion | None = None  # a prompt to continue, not a chat (no messages then)

    def chat(self) -> list[dict[str, Any]]:
        """The messages, the system prompt first as a system message (the local servers' way)."""
        return ([{"role": "system", "content": self.system}] if self.system else []) + self.messages


def llm_call(assignment: Assignment) -> LlmCall:
    """The payload's ``messages`` (and ``tools``) or ``prompt`` (and ``system``) or
    ``completion`` (`heddle.live.backends.completion`), else a built
    prompt of the task's ``prompt_tokens``; output capped at the task's ``output_tokens``; the
    payload's ``sampling`` and ``format`` (heddle.live.backends.generation) checked. A worker in
    ``options.worker`` (heddle.live.backends.worker) makes the payload its input instead."""
    task, payload = assignment.task, assignment.payload
    try:
        worker = worker_from_options(assignment.executor.options)
        if worker is not None:  # the payload is the step's input; the worker says the rest
            text = build_prompt(task.prompt_tokens or 64) if payload is None else render_input(worker, payload)
            cap = worker.max_output_tokens or task.output_tokens or DEFAULT_OUTPUT_TOKENS
            return LlmCall([{"role": "user", "content": text}], cap, system_prompt(worker), worker)
    except WorkerError as exc:
        raise ExecutionError(str(exc)) from None
    source = payload if isinstance(payload, dict) else {}
    cap = source.get("max_tokens", task.output_tokens or DEFAULT_OUTPUT_TOKENS)
    if not isinstance(cap, int) or isinstance(cap, bool) or cap < 1:
        raise ExecutionError(f"llm: payload max_tokens must be a positive integer, got {cap!r}")
    system = source.get("system")
    if system is not None and not isinstance(system, str):
        raise ExecutionError(f"llm: payload system must be a string, got {type(system).__name__}")
    gen = _generation(source)
    if "completion" in source:  # `heddle.live.backends.completion`: no system, no tools
        return LlmCall([], cap, generation=gen, completion=completion_from_payload(source["completion"]))
    messages = source.get("messages")
    if messages is not None:
        if not (isinstance(messages, list) and messages and all(
                isinstance(m, dict) and isinstance(m.get("role"), str) and "content" in m
                for m in messages)):
            raise ExecutionError("llm: payload messages must be a non-empty list of "
                                 "{role, content} objects")
        return LlmCall(messages, cap, system, generation=gen, tools=tool_use(source))
    prompt = payload if isinstance(payload, str) else source.get("prompt")
    if prompt is None:
        prompt = build_prompt(task.prompt_tokens or 64)
    elif not isinstance(prompt, str):
        raise ExecutionError(f"llm: payload prompt must be a string, got {type(prompt).__name__}")
    return LlmCall([{"role": "user", "content": prompt}], cap, system, generation=gen)


def _generation(payload: dict[str, Any]) -> Generation:
    """The payload's ``sampling``, ``format`` and ``think``, checked: ExecutionError naming
    the field."""
    sampling, fmt, think = payload.get("sampling"), payload.get("format"), payload.get("think")
    if sampling is None and fmt is None and think is None:
        return NONE
    try:
        checked = check_sampling(sampling)
    except GenerationError as exc:
        raise ExecutionError(f"llm: payload {exc if exc.field == 'sampling' else exc.under('sampling.')}") from None
    try:
        return Generation(checked, check_format(fmt), check_think(think))
    except GenerationError as exc:
        raise ExecutionError(f"llm: payload {exc}") from None


@dataclass(slots=True)
class StreamMeter:
    """Times of the stream's content chunks, and what the result reports from them."""

    backend: str
    server: str
    started_at: float = field(default_factory=time.monotonic)
    first_at: float | None = None
    last_at: float | None = None
    chunks: int = 0
    text: list[str] = field(default_factory=list)
    thought: list[str] | None = None  # the thinking pieces, once one came (a reasoning model)
    piece_is_token: bool = True  # a stream piece is a token (local servers; Claude's are not)

    def _came(self, progress: Progress) -> None:
        """A piece came now: the stream's times and count."""
        now = time.monotonic()
        if self.first_at is None:
            self.first_at = now
            progress.first_token()
        self.last_at = now
        self.chunks += 1

    def content(self, text: str, progress: Progress) -> None:
        if text:
            self._came(progress)
            self.text.append(text)
            progress.text(text)

    def thinking(self, text: str, progress: Progress) -> None:
        """A piece of the model's thinking: streamed apart from the answer; its tokens are
        output tokens (the first of them the first token: what the caller sees first)."""
        if text:
            self._came(progress)
            if self.thought is None:
                self.thought = []
            self.thought.append(text)
            progress.thinking(text)

    def result(self, *, model: str, prompt_tokens: int | None, output_tokens: int | None,
               **extra: Any) -> dict[str, Any]:
        """The attempt's JSON result. Token counts are the server's; when it sent none (a
        broken stream) the output count is the content chunks seen, said so by ``counted``.
        A model that thought has its ``thinking`` text and ``reasoning_tokens`` (the server's
        count, given in ``extra``, else its thinking pieces: a token each from these servers)."""
        counted = output_tokens is None
        output = self.chunks if counted else output_tokens
        ttft = None if self.first_at is None else self.first_at - self.started_at
        decode = None
        if output and output > 1 and self.first_at is not None and self.last_at > self.first_at:
            # tokens after the first, over the time after the first: prefill excluded
            decode = (output - 1) / (self.last_at - self.first_at)
        result = {
            "backend": self.backend, "server": self.server, "model_used": model,
            "text": "".join(self.text), "prompt_tokens": prompt_tokens, "output_tokens": output,
            "output_tokens_counted": counted, "ttft_s": ttft, "decode_tokens_per_s": decode,
            "duration_s": time.monotonic() - self.started_at, **extra,
        }
        if self.thought is not None:
            result["thinking"] = "".join(self.thought)
            if result.get("reasoning_tokens") is None and self.piece_is_token:
                result["reasoning_tokens"] = len(self.thought)
        if result.get("reasoning_tokens") is None:
            result.pop("reasoning_tokens", None)
        return result


def retry_after_s(headers: Any) -> float | None:
    """Retry-After in seconds (the delay-seconds form; an HTTP date is treated as absent)."""
    value = headers.get("retry-after") if headers is not None else None
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None


def http_failure(backend: str, url: str, exc: Exception, meter: StreamMeter | None = None) -> str:
    """The reason an HTTP call to a local server failed, in the words a user can act on."""
    where = f"{backend} at {url}"
    got = "" if meter is None or meter.first_at is None else f" after {meter.chunks} chunks"
    if isinstance(exc, httpx2.ConnectTimeout):
        return f"{where}: connect timeout"
    if isinstance(exc, httpx2.ConnectError):
        return f"{where}: cannot connect ({str(exc) or 'connection refused'}); is the server running?"
    if isinstance(exc, httpx2.ReadTimeout):
        if meter is not None and meter.first_at is None:
            return f"{where}: no first token (read timeout)"
        return f"{where}: stream stalled{got} (read timeout)"
    if isinstance(exc, httpx2.TimeoutException):
        return f"{where}: timeout ({type(exc).__name__})"
    if isinstance(exc, httpx2.RemoteProtocolError | httpx2.ReadError):
        return f"{where}: connection lost mid-stream{got} ({str(exc) or type(exc).__name__})"
    if isinstance(exc, HttpStatusError):
        return f"{where}: {exc}"
    return f"{where}: {type(exc).__name__}: {exc}"
