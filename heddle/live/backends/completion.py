"""A completion task: a prompt the model continues, not a chat. Editors' autocomplete asks for
one (Ollama's ``/api/generate`` with ``raw`` or ``suffix``, OpenAI's ``/v1/completions`` with
``suffix``); the gateway carries it in the task's payload as ``completion``:

``{"prompt": "...", "suffix": "...", "raw": true}``: ``prompt`` (a string), ``suffix`` (optional:
the text after the insertion point; the model fills in the middle, its server putting prompt
and suffix in the model's fill-in-the-middle template), ``raw`` (optional, default false: the
prompt goes to the model as it is, no template at all; the caller wrote its own, fill-in-the-
middle markers included). One of ``raw`` true or a non-empty ``suffix`` is needed: a prompt in
the model's chat template is a chat (the payload's ``messages``). A completion has no system
prompt and no tools: the prompt is all the model gets.

How each backend sends one: Ollama ``POST /api/generate`` (``prompt``, ``suffix``, ``raw``,
the same ``options`` and ``format`` as a chat); OpenAI-compatible servers ``POST
/v1/completions`` (``prompt``, ``suffix``; that route never applies a chat template, so
``raw`` is what it always does); MLX the prompt's text to mlx-lm as it is (raw; mlx-lm has no
fill in the middle, so a suffix is refused); Claude refuses both (the Messages API takes
messages only). The features ``raw`` and ``suffix`` (heddle.live.features) say which backend
runs which: the control plane places a completion only where its backend declares them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from heddle.live.agent.executors import ExecutionError
from heddle.live.backends.generation import GenerationError

__all__ = ["Completion", "check_completion", "completion_from_payload", "openai_prompt"]


@dataclass(frozen=True, slots=True)
class Completion:
    """A checked payload ``completion``."""

    prompt: str
    suffix: str = ""
    raw: bool = False

    def asked(self) -> dict[str, Any]:
        """The payload's shape again (what the gateway sends; Ollama's ``/api/generate`` takes
        the same fields)."""
        return {"prompt": self.prompt, **({"suffix": self.suffix} if self.suffix else {}),
                **({"raw": True} if self.raw else {})}


def check_completion(prompt: Any, suffix: Any, raw: Any) -> Completion | None:
    """The rule of a completion's fields, one copy for a request's (the gateway) and a task
    payload's (the backends): a string prompt, a string suffix and a boolean raw (either left
    out: None), and with raw or a suffix, a prompt or a suffix that is not empty;
    GenerationError naming the field otherwise. None: neither raw nor a suffix (a chat)."""
    if not isinstance(prompt, str):
        raise GenerationError("prompt", "a string", prompt)
    if suffix is not None and not isinstance(suffix, str):
        raise GenerationError("suffix", "a string", suffix)
    if raw is not None and not isinstance(raw, bool):
        raise GenerationError("raw", "true or false", raw)
    if not (raw or suffix):
        return None
    if not (prompt or suffix):
        raise GenerationError("prompt", "a non-empty string (or a suffix)", prompt)
    return Completion(prompt, suffix or "", bool(raw))


def completion_from_payload(value: Any) -> Completion:
    """The payload's ``completion``, checked (`check_completion`): ExecutionError naming the
    field."""
    if not isinstance(value, dict):
        raise ExecutionError(f"llm: payload completion must be an object, got {type(value).__name__}")
    try:
        completion = check_completion(value.get("prompt"), value.get("suffix"), value.get("raw"))
    except GenerationError as exc:
        raise ExecutionError(f"llm: payload completion.{exc}") from None
    if completion is None:
        raise ExecutionError("llm: payload completion needs raw true or a suffix (a prompt in the "
                             "model's chat template is a chat: send it as messages)")
    return completion


def openai_prompt(completion: Completion) -> dict[str, Any]:
    """``/v1/completions``' fields of a completion: ``prompt`` and ``suffix`` (that route
    takes the prompt as it is: raw is what it does)."""
    return {"prompt": completion.prompt, **({"suffix": completion.suffix} if completion.suffix else {})}
