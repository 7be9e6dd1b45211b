"""Features in the live runtime: what a task's payload needs of the backend that runs it, and
what each node's and API's backends can run (the rule itself is the optimizer's:
heddle.models.features, docs/optimizer.md).

- A task's needs come from its payload, here and nowhere else (`payload_needs`): ``tools``
  (the payload's ``tools``, or tool turns in its ``messages``), ``embeddings`` (``embed``),
  ``images`` (image references, ``images``, or images in a message), ``raw`` and ``suffix``
  (a ``completion`` sent as it is, or one with a suffix to fill in the middle), ``thinking``
  (``think`` asking a reasoning model to think: true or a level). The control plane reads
  them when it takes a task (`task_needs`); the gateway only writes payloads. A new feature
  is one line here (its payload key) and one in each backend that runs it.
- Each LLM backend declares the features it runs, ``features`` on its class (and why it
  refuses the others, ``refuses``); an agent reports them per backend in its capacity reports
  (``CapacityReport.features``, protocol 1.13), and refuses at run time, with the backend's
  own reason, a task needing one its backend lacks (`refusal`): the same declaration
  both ways.
- The control plane's node offers what its local backends offer together (`node_features`;
  the router then sends a task to a backend that runs what it needs), an API offer what the
  agents' ``claude`` backends offer (`cloud_features`). An agent that reports no features
  (older than 1.13) offers what its protocol version implies (`IMPLIED`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from heddle.live.protocol import CLOUD_BACKEND
from heddle.models import TaskKind

__all__ = ["IMAGES", "IMPLIED", "THINKING", "TOOLS", "cloud_features", "node_features", "payload_needs",
           "refusal", "runtime", "task_needs", "tool_turns"]

TOOLS, EMBEDDINGS, RAW, SUFFIX, IMAGES, THINKING = "tools", "embeddings", "raw", "suffix", "images", "thinking"
"""The features backends refuse today (heddle.models.features.FEATURE_WORDS says them in words)."""

IMPLIED: tuple[tuple[tuple[int, int], frozenset[str]], ...] = (
    ((1, 12), frozenset({TOOLS, EMBEDDINGS, RAW, SUFFIX, IMAGES, THINKING})),
    ((1, 11), frozenset({TOOLS, EMBEDDINGS, RAW, SUFFIX, IMAGES})),
    ((1, 10), frozenset({TOOLS, EMBEDDINGS, RAW, SUFFIX})),
    ((1, 9), frozenset({TOOLS})),
    ((1, 0), frozenset()),
)
"""What an agent reporting no features runs, by its protocol version (newest first): 1.9 brought
tool calls, 1.10 embeddings (raw prompts and fill in the middle came with them), 1.11 images,
1.12 thinking; from 1.13 agents declare them. MLX agents of those versions said nothing and
refused tools: the price of a version that did not say."""


def _any_message(messages: Any, key: str) -> bool:
    return isinstance(messages, list) and any(isinstance(m, dict) and m.get(key) for m in messages)


def tool_turns(messages: Any) -> bool:
    """Whether a chat's messages hold tool calls or tool results (a conversation with tools
    needs a backend with tool calling even when this turn sends none)."""
    return isinstance(messages, list) and any(
        isinstance(m, dict) and (m.get("tool_calls") or m.get("role") == "tool") for m in messages)


def payload_needs(payload: Any) -> frozenset[str]:
    """The features an LLM task with this payload needs (see the module docstring)."""
    if not isinstance(payload, dict):
        return frozenset()
    needs = set()
    if payload.get("tools") is not None or tool_turns(payload.get("messages")):
        needs.add(TOOLS)
    if "embed" in payload:
        needs.add(EMBEDDINGS)
    if payload.get(IMAGES) or _any_message(payload.get("messages"), IMAGES):
        needs.add(IMAGES)
    if payload.get("think") not in (None, False):
        needs.add(THINKING)
    completion = payload.get("completion")
    if isinstance(completion, dict):
        if completion.get("raw") is True:
            needs.add(RAW)
        if completion.get("suffix"):
            needs.add(SUFFIX)
    return frozenset(needs)


def task_needs(kind: TaskKind, payload: Any) -> frozenset[str]:
    """`payload_needs` of an LLM task (a processor step's payload is its own business)."""
    return payload_needs(payload) if kind is TaskKind.LLM else frozenset()


def _version(v: str) -> tuple[int, int]:
    major, _, minor = v.partition(".")
    return int(major), int(minor or 0)


def implied(v: str) -> frozenset[str]:
    """What an agent of protocol version ``v`` that reports no features runs."""
    version = _version(v)
    return next((features for since, features in IMPLIED if version >= since), frozenset())


def node_features(features: Mapping[str, tuple[str, ...]] | None, v: str) -> frozenset[str]:
    """What a node runs: its local backends' features together (not the cloud's), or what its
    protocol version implies when it reports none."""
    if features is None:
        return implied(v)
    return frozenset(f for backend, offered in features.items() if backend != CLOUD_BACKEND for f in offered)


def runtime(features: Mapping[str, tuple[str, ...]] | None) -> str:
    """What runs a node's models, in words: its local backends' names (``mlx``,
    ``lm-studio+ollama``); "" when it reports none."""
    return "+".join(sorted(b for b in features or () if b != CLOUD_BACKEND))


def cloud_features(features: Mapping[str, tuple[str, ...]] | None, v: str) -> frozenset[str] | None:
    """What the agent's cloud API backend runs (None: it reports none; see `node_features`)."""
    if features is None:
        return implied(v)
    offered = features.get(CLOUD_BACKEND)
    return None if offered is None else frozenset(offered)


def refusal(where: str, features: frozenset[str], refuses: Mapping[str, str], payload: Any) -> str | None:
    """Why a backend (``where``) offering ``features`` does not run an LLM task with this
    payload: the first need it lacks, with the backend's own reason (``refuses``); None if it
    runs it."""
    missing = payload_needs(payload) - features
    if not missing:
        return None
    need = min(missing)
    why = refuses.get(need, "this backend does not run it")
    return (f"{where}: {need}: {why}; send it to a node whose backend runs it (the control plane "
            "places it there when the fleet has one)")
