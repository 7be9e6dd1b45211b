"""Why a (task, target) pair is ruled out: one code per hard constraint, in checking order.

A pair's code is the FIRST constraint it breaks in this order. Codes below `DEPARTED` are
permanent (waiting will not help: the task is rejected if every target is permanently ruled
out); codes from `DEPARTED` on are transient (the task is deferred and tried again later).
"""

from __future__ import annotations

from collections.abc import Collection
from enum import IntEnum

from heddle.models import catalog

__all__ = ["FIRST_TRANSIENT", "Reason", "reason_text", "unplaced_reason"]


class Reason(IntEnum):
    OK = 0
    DRAINING = 1  # node finishes its work and takes nothing new (an operator's decision)
    PRIVACY = 2  # personal: not the owner's/trusted node; sensitive: cloud
    TIER = 3  # API of another tier, or a node/instance whose model's catalog tier is below it
    KIND = 4  # an API offer (a chat model) cannot run a processor step or an embedding model
    MODEL = 5  # the catalog does not know the task's (model, quant), or it names an API offer not this one,
    # or the node's servers do not have it (their installed set is known: heddle.models.installed)
    FEATURE = 6  # the target does not offer a feature the task needs (tool calls, embeddings, ...)
    CONTEXT = 7  # prompt + output exceed the model's context window (where the model itself runs)
    MEMORY_INSTALLED = 8  # weights + KV exceed the target's installed memory
    NO_BUDGET = 9  # cloud target, task has no budget account
    DEPARTED = 10  # node left the fleet; laptops and failed nodes come back, so this is transient
    THERMAL = 11  # node's thermal state is serious or critical
    BATTERY = 12  # heavy work on a node running on battery
    SLOTS = 13  # no free slot (or the offer's per-call capacity is used up)
    MEMORY_FREE = 14  # weights + KV do not fit the free memory (even after evicting)
    BUDGET_LIMIT = 15  # the account's remaining budget for the period is too small
    BURST_RULE = 16  # cloud not allowed: local capacity can still meet the deadline


FIRST_TRANSIENT = Reason.DEPARTED
"""Codes >= this one may clear by themselves; lower codes never do for this task.

DEPARTED is the first transient code: in a household fleet nodes leave and come back (a
laptop closes, a failed node rejoins), so a task whose only possible node has left waits
(the caller decides for how long) instead of being rejected. The permanent checks come
first, so a departed node that could never run the task anyway reports that reason."""

_TEXT: dict[Reason, str] = {
    Reason.OK: "feasible",
    Reason.DRAINING: "drain: node is draining",
    Reason.PRIVACY: "privacy",
    Reason.TIER: "tier: target does not serve the preferred tier (API: another tier; node/instance: model tier below it)",
    Reason.KIND: "kind: API offers run chat LLM steps only (no processor or embedding steps)",
    Reason.MODEL: "model: unknown model or quantization",
    Reason.FEATURE: "features: the target does not run what the task needs",
    Reason.CONTEXT: "context: prompt + output tokens exceed the model's context window",
    Reason.MEMORY_INSTALLED: "memory: weights + KV exceed installed memory",
    Reason.NO_BUDGET: "budget: task has no budget account for cloud spend",
    Reason.DEPARTED: "departed: node has left the fleet (it may come back)",
    Reason.THERMAL: "courtesy: thermal state serious/critical",
    Reason.BATTERY: "courtesy: heavy work on battery",
    Reason.SLOTS: "slots: no free slot",
    Reason.MEMORY_FREE: "memory: does not fit free memory",
    Reason.BUDGET_LIMIT: "budget: would exceed the account's limit",
    Reason.BURST_RULE: "burst rule: local nodes can still do it in time (deadline, backlog threshold)",
}


def reason_text(code: int, privacy: str = "", model: str | None = None, offers: Collection[str] = (),
                lacking: str = "", missing: str = "") -> str:
    """Human text for a reason code, with the task's detail: privacy gets the tag that applied;
    the model reason of a task naming a catalog API offer (`model`) names that offer, and says
    whether the fleet's offers (`offers`) list it (a real offer, not an unknown model); the
    features reason says which targets lack which need (`lacking`: FleetArrays.lacking_text);
    the model reason of a catalog model says whose servers do not have it (`missing`:
    FleetArrays.missing_text)."""
    reason = Reason(code)
    if reason is Reason.FEATURE and lacking:
        return lacking
    if reason is Reason.MODEL and missing:
        return missing
    if reason is Reason.PRIVACY:
        if privacy == "sensitive":
            return "privacy: sensitive work stays on local nodes"
        return "privacy: personal work only on the owner's or trusted nodes"
    if reason is Reason.MODEL and model and model in catalog.api_offers():
        if model in offers:
            return f"model: only the API offer {model} runs it"
        return f"model: the API offer {model} is not in this fleet"
    return _TEXT[reason]


def unplaced_reason(counts: dict[int, int], any_ok: bool, permanent: bool, privacy: str,
                    model: str | None = None, offers: Collection[str] = (), lacking: str = "",
                    missing: str = "") -> str:
    """Why a task was not placed, from how many targets each constraint ruled out."""
    if not permanent and any_ok:
        return "waiting is cheaper than every feasible target, or their capacity went to this batch"
    parts = [f"{reason_text(c, privacy, model, offers, lacking, missing)} ({n})" for c, n in sorted(counts.items())]
    return ("no target can ever run it: " if permanent else "no target can run it now: ") + "; ".join(parts)
