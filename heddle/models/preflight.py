"""Preflight: what in a (fleet, work) pair will silently go wrong, said before anything runs.

Plausible mistakes produce nonsense rather than errors further down: a fleet with cloud offers
but no budget for the work's accounts rejects every public task local nodes cannot take; a
model id the catalog does not know, an owner with no node, a tier nothing serves, a model too
big for every node, a prompt longer than the context window: each makes the optimizer reject
work, and a run reports a deadline-miss rate over what is left. `preflight` finds them all,
each with the number of tasks it affects and the fix. It reads the work as a table (a trace
frame, or `work_frame(tasks)`), vectorized, so a multi-week trace is checked in well under a
second. `heddle check`, `sim`, `place` and `advise` print its findings.

The rules are the models' own: `Node.may_hold_personal_of` (privacy), `ModelSpec.weights_gb`
and `kv_bytes_per_token` (memory; usable = installed - reserved, as the optimizer's
`installed_gb`), `ModelSpec.context_length`, `ModelSpec.tier` against the preferred tier
(an API serves its own tier, a node or instance serves tier T iff the model's tier >= T).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from heddle.models import catalog
from heddle.models.ids import OfferKind, Privacy, Tier

if TYPE_CHECKING:
    import pandas as pd

    from heddle.models.fleet_types import Fleet
    from heddle.models.task import Task

__all__ = ["Finding", "preflight", "unknown_models", "work_frame"]

TIER_RANK = {"": -1, Tier.LOCAL.value: 0, Tier.STANDARD.value: 1, Tier.FRONTIER.value: 2}
"""Preferred-tier order (local < standard < frontier); "" = no preference."""
WORK_COLUMNS = ("kind", "model", "quant", "prompt_tokens", "output_tokens", "memory_gb",
                "privacy", "owner", "tier", "account")
"""The trace columns the checks read (the trace schema's names)."""
_LISTED = 4
"""Examples named per finding (the count covers them all)."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem: how many tasks it hits, what happens to them, and what to change."""

    level: Literal["error", "warning"]
    code: str  # stable id, e.g. "unknown-model"
    count: int  # tasks affected
    message: str
    fix: str

    def text(self) -> str:
        return f"{self.level}: {self.message} Fix: {self.fix}"


def work_frame(tasks: Iterable[Task]) -> pd.DataFrame:
    """The columns `preflight` reads, from Task objects ("" where a field is None)."""
    import pandas as pd

    rows = [(t.kind.value if hasattr(t.kind, "value") else str(t.kind), t.model or "", t.quant or "",
             t.prompt_tokens, t.output_tokens, t.memory_gb, Privacy(t.privacy).value, t.owner or "",
             Tier(t.tier).value if t.tier is not None else "", t.account or "") for t in tasks]
    return pd.DataFrame(rows, columns=list(WORK_COLUMNS))


def _text(work: pd.DataFrame, name: str) -> np.ndarray:
    col = work[name]
    return col.astype(object).where(col.notna(), "").astype(str).to_numpy()


def _examples(values: np.ndarray, mask: np.ndarray) -> str:
    names, counts = np.unique(values[mask], return_counts=True)
    order = np.argsort(-counts, kind="stable")[:_LISTED]
    shown = ", ".join(f"{names[i] or '(none)'} ({counts[i]:,})" for i in order)
    return shown + (", ..." if len(names) > _LISTED else "")


def unknown_models(work: pd.DataFrame) -> dict[str, int]:
    """Model ids of LLM rows that the catalog does not know -> rows naming each (a catalog API
    offer named as the model is known: `catalog.api_offers`)."""
    models = _text(work, "model")
    known = [*catalog.models(), *catalog.api_offers()]
    mask = (_text(work, "kind") == "llm") & (models != "") & ~np.isin(models, known)
    names, counts = np.unique(models[mask], return_counts=True)
    return {str(n): int(c) for n, c in zip(names, counts)}


def close_matches(model_id: str) -> str:
    """`did you mean ...?` for an unknown model id, or where to look."""
    close = difflib.get_close_matches(model_id, list(catalog.models()), n=3, cutoff=0.4)
    return f"did you mean {', '.join(close)}?" if close else "see `heddle catalog list --kind model`"


def _flag(findings: list[Finding], mask: np.ndarray, code: str, message: str, fix: str,
          level: Literal["error", "warning"] = "warning") -> None:
    """Add a finding for the tasks in `mask`, if any; `message` follows their count."""
    if mask.any():
        count = int(mask.sum())
        findings.append(Finding(level, code, count, f"{count:,} {_number(count, message)}", fix))


_SINGULAR = {"tasks have": "task has", "tasks name": "task names", "tasks need": "task needs",
             "tasks prefer": "task prefers", "personal tasks belong": "personal task belongs",
             "public tasks are": "public task is", "public tasks can": "public task can"}
"""The plural openings of the findings' messages and what they read for a single task."""


def _number(count: int, message: str) -> str:
    """`message` (which opens with its plural subject and verb) agreeing with `count`."""
    if count == 1:
        for plural, singular in _SINGULAR.items():
            if message.startswith(plural):
                return singular + message[len(plural):]
    return message


def _billable(fleet: Fleet, accounts: np.ndarray, allow_unbudgeted: bool) -> np.ndarray:
    if allow_unbudgeted:
        return np.ones(len(accounts), dtype=bool)
    return np.isin(accounts, [str(a) for a in fleet.budgets])


def preflight(fleet: Fleet, work: pd.DataFrame, *, allow_unbudgeted_cloud: bool = False) -> list[Finding]:
    """Every problem of running `work` (trace columns, see WORK_COLUMNS) on `fleet`."""
    findings: list[Finding] = []
    n = len(work)
    if n == 0:
        return [Finding("warning", "no-work", 0, "the work has no tasks: nothing will run.",
                        "give a trace or workload file with tasks")]
    kind, model, quant = _text(work, "kind"), _text(work, "model"), _text(work, "quant")
    privacy, owner = _text(work, "privacy"), _text(work, "owner")
    tier, account = _text(work, "tier"), _text(work, "account")
    tokens = work["prompt_tokens"].to_numpy(dtype=np.int64) + work["output_tokens"].to_numpy(dtype=np.int64)
    llm = kind == "llm"
    specs = catalog.models()

    # --- unknown models and quantizations: the optimizer rejects every such task ----------
    unknown = unknown_models(work)
    for name, count in sorted(unknown.items(), key=lambda kv: -kv[1])[:_LISTED]:
        findings.append(Finding(
            "error", "unknown-model", count,
            f"{count:,} {_number(count, f'tasks name model {name!r}, which the catalog does not know')}: "
            f"{'all' if count > 1 else 'it'} would be rejected.",
            f"use a catalog model id ({close_matches(name)})"))
    known = llm & (model != "") & np.isin(model, list(specs))
    bad_quant = np.zeros(n, dtype=bool)
    for m in np.unique(model[known]):
        rows = known & (model == m)
        bad = rows & (quant != "") & ~np.isin(quant, list(specs[m].bytes_per_weight))
        bad_quant |= bad
    model_quant = np.array([f"{m} {q}" for m, q in zip(model, quant)], dtype=object)
    _flag(findings, bad_quant, "unknown-quant",
          f"tasks name a quantization their model lacks: {_examples(model_quant, bad_quant)}.",
          "use one of the model's quantizations (`heddle catalog show MODEL`) or leave quant empty", "error")
    ok = known & ~bad_quant
    valid = ok | ~llm  # rows the rest is about: unknown models and quants are already reported
    # an API offer named as the model (a gateway request's claude-sonnet-4.6): that offer alone
    # may run it (the optimizer's MODEL rule), as cloud work
    api = {str(o.id): o for o in fleet.cloud_offers if o.kind == OfferKind.API}
    named_offer = llm & np.isin(model, list(catalog.api_offers()))
    listed = named_offer & np.isin(model, list(api))
    _flag(findings, named_offer & ~listed, "offer-not-in-fleet",
          f"tasks name as their model an API offer the fleet does not list: "
          f"{_examples(model, named_offer & ~listed)}; only that offer may run them, so they will be rejected.",
          "add the offer to the fleet's `cloud_offers:`, or name a model the fleet's nodes can run")

    # --- context window ----------------------------------------------------------------------
    context = np.zeros(n)
    need_gb = work["memory_gb"].to_numpy(dtype=float).copy()
    model_tier = np.zeros(n, dtype=np.int64)
    for m in np.unique(model[ok]):
        spec = specs[m]
        rows = ok & (model == m)
        context[rows] = spec.step_context_tokens
        model_tier[rows] = TIER_RANK[Tier(spec.tier).value]
        for q in np.unique(quant[rows]):
            sel = rows & (quant == q)
            chosen = q or _default_quant(spec)
            need_gb[sel] = spec.weights_gb(chosen) + spec.kv_bytes_per_token * tokens[sel] / 1e9
    over = ok & (tokens > context)
    _flag(findings, over, "over-context",
          f"tasks have prompt + output tokens beyond their model's context window: {_examples(model, over)}.",
          "shorten or split those prompts, or use a model with a longer context")

    # --- privacy: personal work needs a node of its owner (or one trusting the owner) --------
    personal = (privacy == Privacy.PERSONAL.value) & valid
    largest_for_owner: dict[str, float] = {}
    usable = [(nd, nd.memory_gb - nd.reserved_memory_gb) for nd in fleet.nodes]
    largest_any = max((u for _, u in usable), default=-1.0)
    for o in np.unique(owner[personal]):
        largest_for_owner[o] = max((u for nd, u in usable if nd.may_hold_personal_of(o)), default=-1.0)
    room = np.full(n, largest_any)
    for o, gb in largest_for_owner.items():
        room[personal & (owner == o)] = gb
    homeless = personal & (room < 0)
    _flag(findings, homeless, "owner-without-node",
          f"personal tasks belong to owners with no node they may use: {_examples(owner, homeless)}; "
          "they will be rejected.",
          "add a node owned by each of them, or list them in a node's trusted_owners")

    # --- cloud: only public work, only when its account has a budget --------------------------
    public = privacy == Privacy.PUBLIC.value
    billable = _billable(fleet, account, allow_unbudgeted_cloud)
    offers = fleet.cloud_offers
    private_offer = listed & ~public
    _flag(findings, private_offer, "offer-not-public",
          f"tasks name an API offer as their model but are not public ({_examples(privacy, private_offer)}): "
          "privacy keeps sensitive and personal work off the cloud, so they will be rejected.",
          "name a model a node they may use can run (or mark the work public if it may leave the house)")
    if offers and (public & ~billable & (valid | listed)).any():
        stuck = public & ~billable & (valid | listed)
        count = int(stuck.sum())
        if not fleet.budgets:
            msg = (f"the fleet allows {len(offers)} cloud offers but defines no budgets, so "
                   f"{count:,} {_number(count, 'public tasks can never be billed to the cloud')}")
        else:
            msg = (f"{count:,} {_number(count, 'public tasks are charged to accounts the fleet has no')} "
                   f"budget for ({_examples(account, stuck)}; budgets: "
                   f"{', '.join(sorted(str(a) for a in fleet.budgets))}), so "
                   f"{'they' if count > 1 else 'it'} can never burst")
        findings.append(Finding(
            "warning", "no-budget", int(stuck.sum()),
            msg + (": they wait for local nodes, and those no node can run are rejected." if count > 1 else
                   ": it waits for local nodes, and is rejected if no node can run it."),
            "add a budget for each account to the fleet's `budgets:` (or set the tasks' account "
            "to one that has a budget)"))
    rank = np.array([TIER_RANK.get(t, -1) for t in tier]) if n else np.zeros(0, dtype=int)
    api_tiers = {TIER_RANK[Tier(o.tier).value] for o in offers if o.kind == OfferKind.API}
    instance_gb = max((o.gpu_count * o.gpu_memory_gb for o in offers if o.kind != OfferKind.API), default=-1.0)
    via_api = llm & ((rank < 0) & bool(api_tiers) | np.isin(rank, list(api_tiers)))
    via_instance = (need_gb <= instance_gb) & (model_tier >= rank)
    cloud_ok = public & billable & (via_api | via_instance)
    offer_rank = np.full(n, -1)
    for m in np.unique(model[listed]):
        offer_rank[listed & (model == m)] = TIER_RANK[Tier(api[m].tier).value]
    # public, billable work naming an API offer and preferring another tier than the offer's
    mistiered = listed & public & billable & (rank >= 0) & (rank != offer_rank)

    # --- tiers and memory: can any target take the task at all? ------------------------------
    model_less = llm & (model == "")  # a tier and no model: only an API offer can run it
    local_tier_ok = (model_tier >= rank) & ~model_less
    untiered = (ok | model_less) & (rank >= 0) & ~local_tier_ok & ~cloud_ok & ~homeless | mistiered
    _flag(findings, untiered, "tier-unserved",
          f"tasks prefer a tier that nothing in the fleet serves ({_examples(tier, untiered)}): their "
          "models are below it (or they name no model, or an API offer of another tier) and no API "
          "offer of that tier may take them "
          "(only public work with a budgeted account may); they will be rejected.",
          "add an API offer of that tier with a budget, name a model a node can run, or drop the "
          "tier preference")
    too_big = (ok | (kind != "llm")) & ~homeless & ~untiered & (need_gb > room) & ~cloud_ok
    largest = max(room[too_big].max(), 0.0) if too_big.any() else 0.0
    _flag(findings, too_big, "fits-nowhere",
          f"tasks need more memory than any node they may use (largest: {largest:g} GB) and cannot "
          f"go to the cloud: {_examples(np.where(kind == 'llm', model, 'processor'), too_big)}; "
          "they will be rejected.",
          "use a smaller model or quantization, add a bigger node, or (public work) allow a cloud "
          "offer with a budget")
    return findings


def _default_quant(spec) -> str:
    from heddle.models.workload import default_quant

    return default_quant(spec)
