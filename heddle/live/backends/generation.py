"""How a model should generate, in one neutral shape: a task's payload carries ``sampling``
(temperature, top_p, seed, stop, ...) and ``format`` (JSON output); the gateway fills them
from either protocol (heddle.gateway.options), the agent checks them (`llm_call`) and each
backend maps them onto its server's request, saying which it could not send.

``sampling``: an object of these fields, each optional (absent: the server's default):
``temperature`` (a number 0-2; 0: the likeliest token each time), ``top_p`` (0-1, nucleus
sampling), ``top_k`` (an integer >= 0: sample among the k likeliest; 0: all), ``min_p`` (0-1:
drop tokens less likely than min_p x the likeliest), ``seed`` (an integer), ``stop`` (a list of
non-empty strings: the output ends before any of them), ``presence_penalty`` and
``frequency_penalty`` (-2 to 2, OpenAI's additive penalties), ``repeat_penalty`` (>= 0,
llama.cpp's multiplicative one; 1: none), ``num_ctx`` (an integer >= 1: the context window the
server loads). `FIELDS` holds these rules.

``format``: ``{"type": "json"}`` (a JSON object) or ``{"type": "json_schema", "schema":
{...}, "name": "..."}`` (JSON matching the schema; ``name`` optional).

``think``: whether a reasoning model thinks before it answers, and how hard: ``true``,
``false``, or a level ``"low"``, ``"medium"``, ``"high"`` (`THINK_LEVELS`; Ollama's own
values). Absent: the server's default (a reasoning model thinks). Its text comes back apart
from the answer (`heddle.live.agent.executors.Progress.thinking`).

The fields come out in the order above whatever order they came in: the same request makes
the same body for the server, byte for byte.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["ALL", "FIELDS", "MIN_THINKING_BUDGET", "NONE", "NOT_SENT", "THINKING_SHARE", "THINK_LEVELS",
           "Generation", "GenerationError", "check_format", "check_sampling", "check_think", "think_level"]

INT64 = 2**63
"""An integer's bound: the servers keep them in 64 bits."""


@dataclass(frozen=True, slots=True)
class _Range:
    """A number (``integer``: a whole one) within [lo, hi] (None: unbounded)."""

    lo: float | None
    hi: float | None
    integer: bool = False

    def expected(self) -> str:
        what = "an integer" if self.integer else "a number"
        if self.lo is not None and self.hi is not None:
            return f"{what} from {self.lo:g} to {self.hi:g}"
        if self.lo is not None:
            return f"{what} >= {self.lo:g}"
        return what

    def fits(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if self.integer and not (isinstance(value, int) and -INT64 <= value < INT64):
            return False
        if not math.isfinite(value):
            return False
        return (self.lo is None or value >= self.lo) and (self.hi is None or value <= self.hi)


FIELDS: dict[str, _Range | None] = {
    "temperature": _Range(0, 2),
    "top_p": _Range(0, 1),
    "top_k": _Range(0, None, integer=True),
    "min_p": _Range(0, 1),
    "seed": _Range(None, None, integer=True),
    "stop": None,  # a list of strings: `_stop`
    "presence_penalty": _Range(-2, 2),
    "frequency_penalty": _Range(-2, 2),
    "repeat_penalty": _Range(0, None),
    "num_ctx": _Range(1, None, integer=True),
}
"""The ``sampling`` fields and their rules, in the order they are sent."""
THINK_LEVELS = ("low", "medium", "high")
"""``think``'s levels, least effort first."""
ALL = frozenset([*FIELDS, "format", "think"])
"""Every field: what a backend that sends them all sends."""
NOT_SENT = "options_not_sent"
"""The result's list of the fields its backend could not send to its server (absent: none)."""


class GenerationError(ValueError):
    """A field outside its rule: ``field`` (its neutral name, dotted into ``format``) and what
    was expected, in words."""

    def __init__(self, field: str, expected: str, got: Any) -> None:
        super().__init__(f"{field}: expected {expected}, got {_shown(got)}")
        self.field, self.expected, self.got = field, expected, got

    def under(self, prefix: str) -> GenerationError:
        """The same error, its field named within an enclosing object (``options.``)."""
        return GenerationError(prefix + self.field, self.expected, self.got)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True, slots=True)
class Generation:
    """A task's checked options: ``sampling`` in `FIELDS` order, ``format`` or None, ``think``
    or None (the server's default)."""

    sampling: dict[str, Any]
    format: dict[str, Any] | None = None
    think: bool | str | None = None

    def unsent(self, sent: frozenset[str]) -> list[str]:
        """The fields given (``format`` and ``think`` among them) that a backend sending
        ``sent`` drops."""
        given = [*self.sampling, *["format"] * (self.format is not None),
                 *["think"] * (self.think is not None)]
        return [name for name in given if name not in sent]

    @property
    def thinks(self) -> bool:
        """``think`` asks the model to think (true or a level)."""
        return self.think is not None and self.think is not False

    def report(self, sent: frozenset[str]) -> dict[str, list[str]]:
        """The result's `NOT_SENT` entry for a backend sending ``sent`` (empty: it sent all)."""
        unsent = self.unsent(sent)
        return {NOT_SENT: unsent} if unsent else {}


NONE = Generation({})
"""No options: every server's defaults."""


def _stop(value: Any) -> list[str]:
    if not (isinstance(value, list) and all(isinstance(s, str) and s for s in value)):
        raise GenerationError("stop", "a list of non-empty strings", value)
    return value


def check_sampling(sampling: Any) -> dict[str, Any]:
    """``sampling`` checked, its fields in `FIELDS` order (None values dropped: absent);
    GenerationError naming the first field out of its rule or unknown."""
    if sampling is None:
        return {}
    if not isinstance(sampling, dict):
        raise GenerationError("sampling", "an object", sampling)
    unknown = sorted(set(sampling) - set(FIELDS))
    if unknown:
        raise GenerationError(unknown[0], "one of " + ", ".join(FIELDS), unknown[0])
    out: dict[str, Any] = {}
    for name, rule in FIELDS.items():
        value = sampling.get(name)
        if value is None:
            continue
        if rule is None:
            if _stop(value):  # an empty list asks for nothing
                out[name] = value
        elif not rule.fits(value):
            raise GenerationError(name, rule.expected(), value)
        else:
            out[name] = value
    return out


def check_format(fmt: Any) -> dict[str, Any] | None:
    """``format`` checked (None: free text); GenerationError naming the field."""
    if fmt is None:
        return None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "json":
        return {"type": "json"}
    if kind != "json_schema":
        raise GenerationError("format", '{"type": "json"} or {"type": "json_schema", "schema": {...}}', fmt)
    schema, name = fmt.get("schema"), fmt.get("name")
    if not isinstance(schema, dict):
        raise GenerationError("format.schema", "a JSON schema object", schema)
    if name is not None and not (isinstance(name, str) and name):
        raise GenerationError("format.name", "a non-empty string", name)
    return {"type": "json_schema", "schema": schema} | ({"name": name} if name else {})


def check_think(think: Any) -> bool | str | None:
    """``think`` checked (None: the server's default); GenerationError naming it."""
    if think is None or isinstance(think, bool) or think in THINK_LEVELS:
        return think
    raise GenerationError("think", 'true, false, "low", "medium" or "high"', think)


MIN_THINKING_BUDGET = 1024
"""The least ``thinking.budget_tokens`` the Messages API takes (the anthropic SDK's
``ThinkingConfigEnabledParam``: at least 1024 and less than ``max_tokens``)."""
THINKING_SHARE = {"low": 0.25, "medium": 0.5, "high": 0.8}
"""The share of an output bound (which covers thinking and answer) a ``think`` level thinks in,
where a server takes a budget of tokens rather than a level (Claude's ``budget_tokens``): the
Claude backend's budget from a level, the gateway's level from an Anthropic caller's budget."""


def think_level(think: bool | str | None) -> str | None:
    """The level ``think`` asks for (``true``: ``"medium"``), None when it asks for none."""
    if think is None or think is False:
        return None
    return "medium" if think is True else think
