"""A chat request as a heddle task (or a completion's: a prompt to continue, `Chat.completion`):
model and quant from the requested name, prompt tokens counted (images included), output bound from
``max_tokens``, generation options in the payload (``sampling``, ``format``, ``think``:
heddle.live.backends.generation), privacy/owner/deadline/tier/account from the caller's rules,
and the agent asked to stream the output back (``stream_tokens``)."""

from __future__ import annotations

import os
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from heddle.gateway.errors import GatewayError
from heddle.gateway.images import IMAGES_KEY, Image, image_tokens
from heddle.gateway.keys import Rules
from heddle.gateway.tools import ToolSpec, tool_tokens
from heddle.live.backends.common import DEFAULT_OUTPUT_TOKENS
from heddle.live.backends.embed import EMBED_KEY
from heddle.live.backends.generation import NONE, Generation
from heddle.live.backends.names import catalog_ids
from heddle.live.control.messages import SubmitTask
from heddle.live.protocol import STREAM_TOKENS_OPTION, ExecutorSpec, TaskSpec
from heddle.models import catalog
from heddle.models.errors import ModelsError
from heddle.models.workload import default_quant

__all__ = ["CHARS_PER_TOKEN", "Chat", "ModelRef", "chat_task", "completion_tokens", "count_tokens",
           "prompt_tokens", "resolve_model"]

CHARS_PER_TOKEN = 4.0
"""Characters per token of English text in the usual tokenizers (OpenAI's rule of thumb); the
prompt is counted with it because the gateway has no tokenizer of each model. The server's
own count replaces it in the usage the caller gets."""
TOKENS_PER_MESSAGE = 4
"""Chat-template tokens around each message (role markers; 3-4 in the Llama and GPT templates)."""
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True, slots=True)
class ModelRef:
    """A requested model name resolved to catalog ids (``quant`` None: any quant)."""

    name: str
    model: str
    quant: str | None


@dataclass(frozen=True, slots=True)
class Chat:
    """What every route asks for, in one shape."""

    model: ModelRef
    messages: list[dict[str, Any]]
    max_tokens: int | None
    system: str | None = None
    generation: Generation = NONE  # sampling and format, neutral (heddle.gateway.options)
    tools: ToolSpec | None = None
    completion: dict[str, Any] | None = None  # a prompt to continue (then no messages): the
    # payload's ``completion`` (heddle.live.backends.completion)
    embed: dict[str, Any] | None = None  # an embedding request's payload (heddle.gateway.embeddings)
    images: tuple[Image, ...] = ()  # the user messages' images: the messages name them by index


def resolve_model(name: str, served: Collection[tuple[str, str]] = ()) -> ModelRef:
    """``llama-3.1-8b``, ``llama-3.1-8b:q4_k_m`` (catalog ids), a server's own name
    (``llama3.1:8b-instruct-q4_K_M``) or a catalog API offer (``claude-sonnet-4.6``, or as its
    provider's API names it: ``claude-sonnet-4-6``); 404 else.
    A name without a quant gets one the cluster serves now (``served``: (model, quant) pairs
    resident on its nodes), else the catalog's default (q4_k_m), as a workload file would."""
    if name in catalog.api_offers():  # an instance offer is a machine to rent, not a model
        return ModelRef(name, name, None)
    offer = catalog.api_offer_named(name)  # the provider's own name (claude-sonnet-4-6)
    if offer is not None:
        return ModelRef(name, offer, None)
    base, _, quant = name.partition(":")
    try:
        spec = catalog.model(base)
        model, quant = base, quant.lower() or None
    except ModelsError:
        spec = None
        model, quant = catalog_ids(name)
        if model is not None:
            spec = catalog.model(model)
    if spec is not None:
        if quant is None:
            quant = min((q for m, q in served if m == model), default=None) or default_quant(spec)
        if quant not in spec.bytes_per_weight:
            raise GatewayError(404, f"model {name!r}: the catalog knows {model} in "
                               f"{', '.join(sorted(spec.bytes_per_weight))}, not {quant!r}",
                               "model_not_found", param="model")
        return ModelRef(name, model, quant)
    raise GatewayError(404, f"model {name!r} is not in heddle's catalog: use a catalog id such "
                       "as 'llama-3.1-8b' or 'llama-3.1-8b:q4_k_m', a server name such as "
                       "'llama3.1:8b-instruct-q4_K_M' (GET /v1/models lists what this cluster "
                       "serves now)", "model_not_found", param="model")


def count_tokens(messages: list[dict[str, Any]], system: str | None = None) -> int:
    """The prompt's size in tokens, estimated (`CHARS_PER_TOKEN`, `TOKENS_PER_MESSAGE`)."""
    texts = [m["content"] for m in messages] + ([system] if system else [])
    chars = sum(len(t) for t in texts)
    return max(1, round(chars / CHARS_PER_TOKEN) + TOKENS_PER_MESSAGE * len(texts))


FIM_TOKENS = 3
"""Fill-in-the-middle marker tokens around a prompt and its suffix (prefix, suffix, middle)."""


def completion_tokens(completion: dict[str, Any]) -> int:
    """A completion's prompt in tokens, estimated from its prompt and suffix (`CHARS_PER_TOKEN`;
    no chat template around them, the fill-in-the-middle markers with a suffix)."""
    suffix = completion.get("suffix", "")
    chars = len(completion["prompt"]) + len(suffix)
    return max(1, round(chars / CHARS_PER_TOKEN) + FIM_TOKENS * bool(suffix))


JOB_ID_BYTES = 12
"""Random bytes in a request's job id: 96 bits, so ids never repeat (the submit says the job
is fresh and the control plane takes its word: `SubmitRequest.fresh_job`)."""


def new_job_id(owner: str) -> str:
    """``gw-<owner>-<24 hex>``: one job per request, named after its owner (status lists it)."""
    return f"gw-{_UNSAFE.sub('_', owner)[:40]}-{os.urandom(JOB_ID_BYTES).hex()}"


def chat_task(chat: Chat, rules: Rules, job_id: str, timeout_s: float | None) -> SubmitTask:
    """The task a chat request becomes (the live id is ``<job>-chat``); an embedding request's
    outputs no tokens, its inputs counted as a chat's messages are."""
    if chat.embed is not None:
        return _task(chat, rules, job_id, timeout_s, {EMBED_KEY: chat.embed},
                     count_tokens([{"content": text} for text in chat.embed["input"]]), 0)
    output = chat.max_tokens or DEFAULT_OUTPUT_TOKENS
    if chat.completion is not None:
        payload: dict[str, Any] = {"completion": chat.completion, "max_tokens": output}
    else:
        payload = {"messages": chat.messages, "max_tokens": output}
    if chat.system:
        payload["system"] = chat.system
    if chat.generation.sampling:
        payload["sampling"] = chat.generation.sampling
    if chat.generation.format is not None:
        payload["format"] = chat.generation.format
    if chat.generation.think is not None:
        payload["think"] = chat.generation.think
    if chat.tools is not None:
        payload |= chat.tools.payload()
    if chat.images:  # references only: the agent fetches the bytes (heddle.gateway.images)
        payload[IMAGES_KEY] = [image.ref() for image in chat.images]
    return _task(chat, rules, job_id, timeout_s, payload, prompt_tokens(chat), output)


def prompt_tokens(chat: Chat) -> int:
    """A chat's (or completion's) prompt in tokens, estimated: its messages and system prompt,
    or its prompt and suffix, the tools' schemas and the conversation's calls, and the images.
    What the
    task says it needs, and what Anthropic's ``count_tokens`` answers."""
    prompt = (completion_tokens(chat.completion) if chat.completion is not None
              else count_tokens(chat.messages, chat.system))
    if chat.tools is not None or any("tool_calls" in m for m in chat.messages):
        prompt += tool_tokens(chat.tools, chat.messages, CHARS_PER_TOKEN)
    if chat.images:  # each at its model's cost (heddle.gateway.images)
        prompt += image_tokens(chat.model, list(chat.images))
    return prompt


def _task(chat: Chat, rules: Rules, job_id: str, timeout_s: float | None, payload: dict[str, Any],
          prompt: int, output: int) -> SubmitTask:
    spec = TaskSpec(
        id=f"{job_id}-chat", kind="llm", model=chat.model.model, quant=chat.model.quant,
        prompt_tokens=prompt, output_tokens=output,
        privacy=rules.privacy, owner=rules.owner, deadline_s=rules.deadline_s, tier=rules.tier,
        account=rules.account,
    )
    executor = ExecutorSpec(kind="llm", options={STREAM_TOKENS_OPTION: True})
    return SubmitTask(task=spec, executor=executor, timeout_s=timeout_s, payload=payload)
