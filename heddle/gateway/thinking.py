"""Reasoning models on the gateway: a request's thinking switch, from either protocol into the
task's neutral ``think`` (heddle.live.backends.generation), the check that the model can think,
and the model's thinking in each protocol's reply, apart from its answer.

In: Anthropic's ``thinking`` (`anthropic_think`); Ollama's ``think`` (``true``, ``false``, ``"low"``, ``"medium"``, ``"high"``: its own
values, on ``/api/chat`` and ``/api/generate``); OpenAI's ``reasoning_effort`` (``none``,
``minimal``, ``low``, ``medium``, ``high``, ``xhigh``, ``max``: the openai SDK's
``ReasoningEffort``; ``none`` is ``false``, ``minimal`` is ``low``, ``xhigh`` and ``max`` are
``high``) or, as OpenRouter and Ollama's OpenAI endpoint take it, ``reasoning: {"effort": ...,
"enabled": bool}`` (``reasoning_effort`` wins when both are given). Any other value: a 400
naming the field. Asking a model the catalog does not mark ``thinking`` to think is a 400
naming the field too, as Ollama answers (``"<model>" does not support thinking``) and OpenAI
(``reasoning_effort`` unsupported with this model); asking it not to think is no error.

Out: OpenAI chat completions stream ``delta.reasoning_content`` (what Open WebUI, LibreChat
and Continue read: the convention of vLLM, llama.cpp's server, LM Studio and DeepSeek's API)
and put ``message.reasoning_content`` in a reply; Ollama streams ``message.thinking`` (a chat)
or ``thinking`` (a generate) and puts the whole of it there in a reply. Thinking tokens are
output tokens (counted in ``completion_tokens`` / ``eval_count``, as the servers count them),
and OpenAI's ``usage.completion_tokens_details.reasoning_tokens`` says how many when the
agent could count them.
"""

from __future__ import annotations

from typing import Any

from heddle.gateway.errors import GatewayError
from heddle.gateway.tasks import ModelRef
from heddle.live.backends.generation import (
    MIN_THINKING_BUDGET,
    THINKING_SHARE,
    GenerationError,
    check_think,
)
from heddle.models import catalog

__all__ = ["EFFORTS", "THINKING_OUTPUT_TOKENS", "anthropic_think", "can_think", "check_thinks",
           "ollama_think", "openai_think", "output_bound", "reasoning_usage"]

EFFORTS: dict[str, bool | str] = {"none": False, "minimal": "low", "low": "low", "medium": "medium",
                                  "high": "high", "xhigh": "high", "max": "high"}
"""OpenAI's ``reasoning_effort`` values -> the neutral ``think``."""
THINKING_OUTPUT_TOKENS = 4096
"""The output bound of a request to a reasoning model that names none and does not turn its
thinking off (else `heddle.live.backends.common.DEFAULT_OUTPUT_TOKENS`, 256): the bound covers
thinking and answer, and 256 tokens are often all thinking, the answer cut before it began."""


def _effort(value: Any, field: str) -> bool | str:
    if isinstance(value, str) and value in EFFORTS:
        return EFFORTS[value]
    raise GenerationError(field, "one of " + ", ".join(EFFORTS), value)


def openai_think(reasoning_effort: Any, reasoning: Any) -> tuple[bool | str | None, str]:
    """(``think``, the field it came from) of an OpenAI request; GenerationError naming the
    field."""
    if reasoning_effort is not None:
        return _effort(reasoning_effort, "reasoning_effort"), "reasoning_effort"
    if reasoning is None:
        return None, "reasoning_effort"
    if not isinstance(reasoning, dict):
        raise GenerationError("reasoning", 'an object such as {"effort": "medium"}', reasoning)
    effort, enabled = reasoning.get("effort"), reasoning.get("enabled")
    if enabled is not None and not isinstance(enabled, bool):
        raise GenerationError("reasoning.enabled", "true or false", enabled)
    if effort is not None and enabled is not False:
        return _effort(effort, "reasoning.effort"), "reasoning.effort"
    return enabled, "reasoning.enabled"


def anthropic_think(thinking: Any, max_tokens: int | None) -> bool | str | None:
    """The Messages API's ``thinking`` (``{"type": "enabled", "budget_tokens"}``,
    ``{"type": "adaptive"}``, ``{"type": "disabled"}``) as ``think``: disabled is ``false``; a
    budget the level whose share of ``max_tokens`` is nearest (`THINKING_SHARE`: what the Claude
    backend turns back into a budget of the same size); adaptive, or no bound to share, ``true``.
    GenerationError naming the field (a budget of 1024 or more and below ``max_tokens``, as the
    API takes it)."""
    if thinking is None:
        return None
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if kind == "disabled":
        return False
    if kind == "adaptive":
        return True
    if kind != "enabled":
        raise GenerationError("thinking", '{"type": "enabled", "budget_tokens": ...}, {"type": '
                              '"adaptive"} or {"type": "disabled"}', thinking)
    budget = thinking.get("budget_tokens")
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < MIN_THINKING_BUDGET:
        raise GenerationError("thinking.budget_tokens", f"an integer >= {MIN_THINKING_BUDGET}", budget)
    if max_tokens is None:
        return True
    if budget >= max_tokens:
        raise GenerationError("thinking.budget_tokens", f"less than max_tokens ({max_tokens})", budget)
    return min(THINKING_SHARE, key=lambda level: abs(THINKING_SHARE[level] - budget / max_tokens))


def ollama_think(value: Any) -> bool | str | None:
    """An Ollama request's ``think``; GenerationError naming it."""
    return check_think(value)


def can_think(ref: ModelRef) -> bool:
    """The model thinks before it answers: a catalog model marked ``thinking`` (gpt-oss), or a
    Claude API offer (extended thinking)."""
    if ref.quant is None:
        return ref.model.startswith("claude-")
    return catalog.model(ref.model).thinking


def check_thinks(ref: ModelRef, think: bool | str | None, field: str) -> None:
    """A request asking a model that cannot think to think: 400 naming ``field``."""
    if think is not None and think is not False and not can_think(ref):
        raise GatewayError(400, f"{field}: {ref.name!r} does not support thinking (reasoning "
                           "models here: those /api/show lists with the thinking capability)",
                           "invalid_value", param=field)


def output_bound(ref: ModelRef, think: bool | str | None, asked: int | None) -> int | None:
    """The request's output bound: the one it asked for, else `THINKING_OUTPUT_TOKENS` for a
    model that thinks unless told not to, else None (the task's default)."""
    if asked is not None or think is False or not can_think(ref):
        return asked
    return THINKING_OUTPUT_TOKENS


def reasoning_usage(tokens: float | None) -> dict[str, Any]:
    """OpenAI's ``completion_tokens_details`` entry of a usage block, when the count is known."""
    return {} if tokens is None else {"completion_tokens_details": {"reasoning_tokens": int(tokens)}}
