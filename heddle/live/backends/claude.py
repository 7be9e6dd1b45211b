"""Claude through the ``anthropic`` SDK: Messages API streaming, priced from the catalog.

The offer (catalog id, e.g. ``claude-sonnet-4.6``) comes from ``options.offer``, else the
task's ``model`` when it names an API offer, else the task's tier (standard: Sonnet, the
seed's standard model; frontier: Opus). The API model name is the offer id with dashes
(``claude-sonnet-4-6``: `catalog.api_model_name`), or ``options.api_model`` when given. Only
public work is sent: the privacy rule keeps personal and sensitive work in the fleet. A task's
tools go as the Messages API's (``tool_use`` / ``tool_result`` blocks:
`heddle.live.backends.tools`). Its features (heddle.live.features, `ClaudeExecutor.features`):
tool calls and images. A completion task (a raw prompt, a suffix to fill in the middle:
`heddle.live.backends.completion`) and an embedding are never sent here, and refused with the
reason if they come: the Messages API has neither (its legacy Text Completions API wanted the
prompt in its Human/Assistant turns and had no suffix), and Anthropic has no embeddings
endpoint.

Billing: once ``message_start`` arrived the call is billed; a call that fails after it
reports the cost of the tokens seen (input, plus output so far) in its failure result, once;
one cut by the agent (timeout, cancel) leaves it in ``progress.partial``, reported the same way.
The SDK's own retries are off (``max_retries=0``): a 429 whose Retry-After is short is waited
out here, and a retry that is billed is a new call, priced on its own.
"""

from __future__ import annotations

import asyncio
from types import MappingProxyType
from typing import Any

import anthropic
import httpx2

from heddle.live.agent.executors import ExecutionError, Executor, Progress
from heddle.live.backends.common import (
    DEFAULT_TIMEOUTS,
    BackendTimeouts,
    LlmCall,
    StreamMeter,
    http_failure,
    llm_call,
    retry_after_s,
)
from heddle.live.backends.generation import (
    MIN_THINKING_BUDGET,
    THINKING_SHARE,
    Generation,
    think_level,
)
from heddle.live.backends.images import claude_images
from heddle.live.backends.tools import CallPieces, claude_tool_kwargs
from heddle.live.backends.worker import check_output
from heddle.live.features import IMAGES, THINKING, TOOLS
from heddle.live.protocol import Assignment
from heddle.models import catalog
from heddle.models.cost import api_cost_usd
from heddle.models.errors import ModelsError
from heddle.models.ids import OfferKind, Privacy, Tier

__all__ = ["DEFAULT_ANTHROPIC_URL", "TIER_OFFERS", "ClaudeExecutor", "claude_offer", "generation_kwargs",
           "step_tier"]

DEFAULT_ANTHROPIC_URL = "https://api.anthropic.com"
TIER_OFFERS = {Tier.STANDARD: "claude-sonnet-4.6", Tier.FRONTIER: "claude-opus-4.6"}
"""The offer a tier-only task goes to (offers.yaml maps each offer to its tier)."""




def thinking_budget(think: bool | str | None, max_tokens: int) -> int | None:
    """``thinking.budget_tokens`` for a task's ``think`` under an output bound: its level's
    share of the bound (`THINKING_SHARE`), at least `MIN_THINKING_BUDGET` and at most the
    bound less one; None when it asks for no thinking or the bound leaves no room for the
    least budget (then ``think`` is not sent: the result's ``options_not_sent`` says so)."""
    level = think_level(think)
    if level is None or max_tokens <= MIN_THINKING_BUDGET:
        return None
    return min(max(int(max_tokens * THINKING_SHARE[level]), MIN_THINKING_BUDGET), max_tokens - 1)


def generation_kwargs(gen: Generation, max_tokens: int) -> tuple[dict[str, Any], frozenset[str]]:
    """(the Messages API's arguments for ``gen``, the fields they send). The API (as the
    anthropic SDK defines its request) takes ``stop_sequences`` and, for JSON matching a schema,
    ``output_config.format``; it has no temperature, top_p, top_k, seed, penalties or
    context size, and no JSON mode without a schema: those are not sent. It refuses a stop
    sequence of whitespace alone ("\\n\\n"): those are left out (and ``stop`` counts as not
    sent when any was). ``think`` goes as ``thinking``: ``{"type": "enabled", "budget_tokens"}``
    (`thinking_budget`) or, false, ``{"type": "disabled"}``."""
    kwargs: dict[str, Any] = {}
    stops = gen.sampling.get("stop", [])
    kept = [s for s in stops if s.strip()]
    sent = {"stop"} if len(kept) == len(stops) else set()
    if kept:
        kwargs["stop_sequences"] = kept
    if gen.format is not None and gen.format["type"] == "json_schema":
        kwargs["output_config"] = {"format": {"type": "json_schema", "schema": gen.format["schema"]}}
        sent.add("format")
    if gen.think is False:
        kwargs["thinking"] = {"type": "disabled"}
        sent.add("think")
    elif (budget := thinking_budget(gen.think, max_tokens)) is not None:
        kwargs["thinking"] = {"type": "enabled", "budget_tokens": budget}
        sent.add("think")
    return kwargs, frozenset(sent)


def step_tier(assignment: Assignment) -> str | None:
    """The task's tier, else its worker's ``default_model_tier`` (checked by llm_call)."""
    tier = assignment.task.tier
    if tier is None and isinstance(worker := assignment.executor.options.get("worker"), dict):
        tier = worker.get("default_model_tier")
    return None if tier is None else str(getattr(tier, "value", tier))


def claude_offer(assignment: Assignment) -> str | None:
    """The catalog API offer an assignment names (options, model or tier), or None."""
    offer = assignment.executor.options.get("offer")
    if isinstance(offer, str):
        return offer
    model = assignment.task.model
    if model is not None and model in catalog.offers():
        return model
    return TIER_OFFERS.get(step_tier(assignment)) if model is None else None


class ClaudeExecutor(Executor):
    backend = "claude"
    features = frozenset({TOOLS, IMAGES, THINKING})
    refuses = MappingProxyType({"embeddings": "the Anthropic API has no embeddings endpoint",
                                "raw": "the Messages API takes messages only, so it cannot take a raw prompt",
                                "suffix": "the Messages API takes messages only, so it cannot fill in the middle"})

    def __init__(self, api_key: str, base_url: str | None = None, *,
                 kinds: tuple[str, ...] = ("claude",),
                 timeouts: BackendTimeouts = DEFAULT_TIMEOUTS) -> None:
        self.kinds = kinds
        self.url = base_url or DEFAULT_ANTHROPIC_URL
        self.timeouts = timeouts
        self._client = anthropic.AsyncAnthropic(api_key=api_key, base_url=self.url,
                                                max_retries=0, timeout=timeouts.httpx())

    def cloud_offers(self) -> list[str]:
        """The catalog's Claude API offers."""
        return [o for o in catalog.api_offers() if o.startswith("claude-")]

    async def run(self, assignment: Assignment, progress: Progress) -> Any:
        task = assignment.task
        if task.privacy is not Privacy.PUBLIC:
            raise ExecutionError(f"privacy: {task.privacy.value} work is never sent to a cloud API")
        self.refuse_lacking(f"claude at {self.url}", assignment)
        offer_id = claude_offer(assignment) or TIER_OFFERS[Tier.STANDARD]
        try:
            offer = catalog.offer(offer_id)
        except ModelsError as exc:
            raise ExecutionError(f"claude: {exc}") from None
        if offer.kind is not OfferKind.API:
            raise ExecutionError(f"claude: {offer_id!r} is not an API offer")
        api_model = assignment.executor.options.get("api_model") or catalog.api_model_name(offer_id)
        call = llm_call(assignment)
        retries = 0
        while True:
            try:
                return await self._once(assignment, call, offer, api_model, progress, retries)
            except anthropic.RateLimitError as exc:
                wait = retry_after_s(exc.response.headers)
                if (wait is None or wait > self.timeouts.max_retry_wait_s
                        or retries >= self.timeouts.rate_limit_retries):
                    after = "no Retry-After" if wait is None else f"Retry-After {wait:g} s"
                    raise ExecutionError(f"claude at {self.url}: rate limited (429, {after}; "
                                         f"{retries} retries)") from None
                retries += 1
                await asyncio.sleep(wait)

    async def _once(self, assignment: Assignment, call: LlmCall, offer: Any, api_model: str,
                    progress: Progress, retries: int) -> dict[str, Any]:
        meter = StreamMeter(self.backend, self.url, piece_is_token=False)
        usage = {"input": None, "cached": 0, "output": None}
        model, stop = api_model, None
        asked, sent = generation_kwargs(call.generation, call.max_output_tokens)
        unsent = call.generation.report(sent)

        def priced(**extra: Any) -> dict[str, Any]:
            billed = usage["input"] is not None  # message_start seen: the call is billed
            cost = api_cost_usd(offer, usage["input"], usage["output"] or meter.chunks,
                                cached_input_tokens=usage["cached"]) if billed else 0.0
            return meter.result(model=model, prompt_tokens=usage["input"],
                                output_tokens=usage["output"], offer=offer.id, cost_usd=cost,
                                cached_input_tokens=usage["cached"],
                                account=assignment.task.account, rate_limit_retries=retries,
                                **unsent, **extra)

        kwargs: dict[str, Any] = {"model": api_model, "max_tokens": call.max_output_tokens,
                                  "messages": claude_images(call.messages), "stream": True, **asked}
        if call.system:
            kwargs["system"] = call.system
        claude_tool_kwargs(call.tools, kwargs)
        calls = CallPieces()  # tool_use blocks, by their index
        try:
            stream = await self._client.messages.create(**kwargs)
            async for event in stream:
                if event.type == "message_start":
                    model = event.message.model or api_model
                    u = event.message.usage
                    usage["input"] = u.input_tokens
                    usage["cached"] = u.cache_read_input_tokens or 0
                elif event.type == "content_block_delta" and event.delta.type == "text_delta":
                    meter.content(event.delta.text, progress)
                elif event.type == "content_block_delta" and event.delta.type == "thinking_delta":
                    meter.thinking(event.delta.thinking, progress)
                elif event.type == "content_block_delta" and event.delta.type == "input_json_delta":
                    calls.piece(event.index, arguments=event.delta.partial_json)
                elif event.type == "content_block_start" and event.content_block.type == "tool_use":
                    calls.piece(event.index, event.content_block.id, event.content_block.name)
                elif event.type == "message_delta":
                    usage["output"] = event.usage.output_tokens
                    stop = event.delta.stop_reason
        except asyncio.CancelledError:  # the agent's timeout, a cancel or a drain deadline
            if usage["input"] is not None:
                progress.partial = priced(finish_reason="cancelled")
            raise
        except anthropic.RateLimitError:
            if usage["input"] is not None:  # billed already: not retried, reported with its cost
                raise ExecutionError(f"claude at {self.url}: rate limited mid-stream",
                                     result=priced(finish_reason="error")) from None
            raise
        except anthropic.APIStatusError as exc:
            raise ExecutionError(f"claude at {self.url}: HTTP {exc.status_code}: {exc.message}",
                                 result=priced(finish_reason="error")) from None
        except anthropic.APITimeoutError:  # before the response's headers
            raise ExecutionError(f"claude at {self.url}: no first token (timeout)",
                                 result=priced(finish_reason="error")) from None
        except httpx2.HTTPError as exc:  # while reading the stream
            raise ExecutionError(http_failure("claude", self.url, exc, meter),
                                 result=priced(finish_reason="error")) from None
        except (anthropic.APIError, ValueError) as exc:
            raise ExecutionError(f"claude at {self.url}: {type(exc).__name__}: {exc} "
                                 f"(after {meter.chunks} chunks)",
                                 result=priced(finish_reason="error")) from None
        if usage["input"] is None:
            raise ExecutionError(f"claude at {self.url}: the stream had no message_start")
        tool_calls = {"tool_calls": calls.done(f"claude at {self.url}")} if calls.calls else {}
        return check_output(call.worker, priced(finish_reason=stop, **tool_calls))

    async def close(self) -> None:
        await self._client.close()
