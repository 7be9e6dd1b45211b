"""Why work fails today, in words: the current fleet's rejected, failed and late requests grouped
by cause, with counts a month, what they are worth, and what would fix them.

Each request the baseline replay did not do in time is classified from first principles (the
catalog and the fleet), not from the wording of the twin's reasons:

  * `tier` - non-public work that asks for a better model tier than the model it names (or the
    frontier tier, which no local model serves): it may not leave the fleet and no machine can
    serve it. No purchase helps; the owner changes the request.
  * `trust` - personal work no node its owner trusts can hold, but some other node could: the
    owner trusting that node is a free fix; a purchase the owner trusts is the other.
  * `memory` - non-public work no local node (personal: no node the owner trusts) can hold.
  * `budget` - public work refused the cloud because its account's budget ran out.
  * `speed` - no local node is fast enough for the deadline even when idle, and it may not or
    did not go to the cloud.
  * `capacity` - a node could have done it in time, but it was busy (late at the peak hour).
  * `other` - anything else (the twin's own reason is quoted).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from heddle.advisor.days import DayPlan
from heddle.advisor.lookup import model_spec, node_model
from heddle.advisor.settings import DAYS_PER_MONTH
from heddle.advisor.twin import Replay
from heddle.models import perf
from heddle.models.fleet_types import Fleet, Node
from heddle.models.ids import OwnerId
from heddle.optimizer.fleet_cache import TIER_CODE

__all__ = ["CAUSE_KINDS", "Cause", "diagnose", "monthly_weights", "plural", "row_need_gb"]

CAUSE_KINDS = ("memory", "trust", "capacity", "speed", "budget", "tier", "other")
"""Causes in the order the report lists them (ones a purchase can fix first)."""

FIXABLE_BY_PURCHASE = frozenset({"memory", "trust", "capacity", "speed", "budget", "other"})
"""Causes a machine bought for the fleet may remove (budget: a machine that holds the work
instead of the cloud; other: the replay says). Only `tier` needs a change to the requests."""

TAIL_PERCENTILE = 90.0
"""A group's memory need is its p90-sized request's (as the slices' feasibility test)."""

_TIER_RANK = {"": 0, **{t.value: c for t, c in TIER_CODE.items()}}


@dataclass(slots=True)
class Cause:
    """One group of requests that fail today for the same reason."""

    kind: str  # one of CAUSE_KINDS
    key: str  # unique within a report
    per_month: float  # requests a month
    value_usd_per_month: float  # what they are worth (advisor.value)
    sentence: str
    rows: np.ndarray  # replayed-trace rows in the group
    owner: str = ""  # personal work's owner
    model: str = ""
    quant: str = ""
    need_gb: float = 0.0  # memory a node needs to hold the group's p90 request
    account: str = ""
    fix: str = ""  # what would fix it, in words
    nodes: tuple[str, ...] = field(default_factory=tuple)  # nodes involved (capacity: where it ran)
    label: str = ""  # a short name: "personal qwen2.5-32b q4_k_m work from carol"

    @property
    def fixable_by_purchase(self) -> bool:
        return self.kind in FIXABLE_BY_PURCHASE

    def as_dict(self) -> dict:
        return {"kind": self.kind, "key": self.key, "per_month": round(self.per_month, 2),
                "value_usd_per_month": round(self.value_usd_per_month, 4),
                "label": self.label, "sentence": self.sentence, "fix": self.fix, "owner": self.owner,
                "model": self.model, "quant": self.quant, "need_gb": round(self.need_gb, 2),
                "account": self.account, "nodes": list(self.nodes)}


def plural(n: float, one: str, many: str | None = None) -> str:
    """'1 request', '945 requests', 'fewer than one request' (rounded counts read naturally)."""
    if 0 < n < 0.5:
        return f"fewer than one {one}"
    k = round(n)
    return f"{k:,} {one if k == 1 else (many or one + 's')}"


def monthly_weights(plan: DayPlan, slot: np.ndarray) -> np.ndarray:
    """Per replayed row: how many requests a month it stands for (the ROI's own scaling)."""
    w = plan.weight_days / plan.weight_days.sum()
    per_slot = plan.scale / plan.weight_days * w * DAYS_PER_MONTH
    return per_slot[np.asarray(slot)]


def row_need_gb(kind: str, model: str, quant: str, tokens: float, memory_gb: float) -> float:
    """Memory a node needs for one request (weights + KV; processor steps: their own figure)."""
    if kind != "llm":
        return float(memory_gb)
    spec = node_model(model)
    if spec is None:  # a tier and no model, or an API offer: no node holds it
        return math.inf
    if quant not in spec.bytes_per_weight:
        return math.inf
    return spec.memory_gb(quant, int(tokens))


def _free_gb(n: Node) -> float:
    return n.memory_gb - n.reserved_memory_gb


def _local_fit(fleet: Fleet, kind: str, model: str, quant: str, privacy: str, owner: str,
               prompt: float, output: float, cpu_s: float, mem_gb: float,
               deadline_s: float) -> tuple[bool, bool]:
    """(some node the work may use can hold it, one of those is fast enough when idle)."""
    need = row_need_gb(kind, model, quant, prompt + output, mem_gb)
    held = [n for n in fleet.nodes if _free_gb(n) >= need
            and (privacy != "personal" or n.may_hold_personal_of(OwnerId(owner)))]
    for n in held:
        if kind == "llm":
            seconds = perf.llm_step(n.device, model_spec(model), quant, round(prompt), round(output)).seconds
        else:
            seconds = perf.processor_seconds(n.device, cpu_s)
        if not deadline_s < seconds:  # no deadline (nan) counts as in time
            return True, True
    return bool(held), False


def _one(n: float) -> bool:
    """A count that reads as singular ("1 request", "fewer than one request")."""
    return round(n) <= 1


def _requests(n: float, privacy: str = "", owner: str = "") -> str:
    """'945 personal requests a month from carol', '1 sensitive request a month'."""
    kind = f"{privacy} request" if privacy else "request"
    return plural(n, kind) + " a month" + (f" from {owner}" if owner else "")


def _mq(model: str, quant: str) -> str:
    return f"{model} {quant}" if model and model != "processor" else "processor steps"


def _tier_cause(g: pd.DataFrame, privacy: str, tier: str, n: float, usd: float) -> Cause:
    models = sorted(set(g["model"]) - {""})
    if tier == "frontier":
        why = "no model that runs on your machines is frontier tier"
    elif not models:
        why = "the work names no model, so only a cloud API of that tier could serve it"
    else:
        why = f"{', '.join(models)} {'is a' if len(models) == 1 else 'are'} local-tier model{'s' * (len(models) > 1)}"
    stays = "stays on your machines" if privacy == "sensitive" else "stays on its owner's trusted machines"
    sentence = (f"{_requests(n, privacy)} {'is' if _one(n) else 'are'} rejected "
                f"because {'it asks' if _one(n) else 'they ask'} for the {tier} tier: {privacy} "
                f"work {stays} and {why}.")
    fix = ("no purchase serves them; drop the tier preference, or mark the work public so it may "
           "use a cloud API of that tier" + ("" if tier == "frontier" else
                                             ", or name a standard-tier model (llama-3.1-70b, qwen2.5-32b, gpt-oss-120b)"))
    return Cause("tier", f"tier|{privacy}|{tier}", n, usd, sentence, g["row"].to_numpy(),
                 model=", ".join(models), fix=fix, label=f"{privacy} work asking for the {tier} tier")


def _hours(arrival_s: np.ndarray, weight: np.ndarray) -> tuple[int, int]:
    """The busiest window of up to three consecutive hours of the day (start, end exclusive)."""
    h = np.bincount(((arrival_s % 86_400.0) // 3600).astype(np.int64), weights=weight, minlength=24)[:24]
    best = max(range(24), key=lambda s: (h[s] + h[(s + 1) % 24] + h[(s + 2) % 24], -s))
    width = 3
    while width > 1 and h[(best + width - 1) % 24] < 0.15 * h[best:best + width].sum():
        width -= 1
    return best, (best + width) % 24


def _clock(h: int) -> str:
    return "midnight" if h == 0 else "noon" if h == 12 else f"{h % 12} {'am' if h < 12 else 'pm'}"


def diagnose(replay_df: pd.DataFrame, baseline: Replay, slot: np.ndarray, plan: DayPlan,
             fleet: Fleet, values: np.ndarray) -> list[Cause]:
    """The baseline's requests not done in time, grouped by cause (largest first within kind)."""
    f = baseline.failures
    if f is None or f.empty:
        return []
    rows = f["row"].to_numpy()
    src = replay_df.iloc[rows]
    mw = monthly_weights(plan, slot)[rows]
    d = pd.DataFrame({
        "row": rows, "status": f["status"].to_numpy(), "reason": f["reason"].to_numpy(),
        "target": f["target"].to_numpy(), "w": mw, "usd": mw * values[rows],
        "kind": src["kind"].astype(str).to_numpy(), "model": src["model"].astype(str).to_numpy(),
        "quant": src["quant"].astype(str).to_numpy(), "privacy": src["privacy"].astype(str).to_numpy(),
        "owner": src["owner"].astype(str).to_numpy(),
        "tier": (src["tier"].astype(str).to_numpy() if "tier" in src else np.full(len(rows), "")),
        "account": (src["account"].astype(str).to_numpy() if "account" in src else np.full(len(rows), "")),
        "prompt": src["prompt_tokens"].to_numpy(np.float64), "output": src["output_tokens"].to_numpy(np.float64),
        "cpu": src["cpu_seconds"].to_numpy(np.float64) if "cpu_seconds" in src else 0.0,
        "mem": src["memory_gb"].to_numpy(np.float64) if "memory_gb" in src else 0.0,
        "deadline": src["deadline_s"].to_numpy(np.float64), "arrival": src["arrival_s"].to_numpy(np.float64),
    })
    d["tier"] = d["tier"].replace("local", "")
    specs = {m: node_model(m) for m in set(d["model"])}
    model_tier = np.array([(_TIER_RANK.get(specs[m].tier.value, 0) if specs[m] else -1) if k == "llm" else 0
                           for k, m in zip(d["kind"], d["model"])])  # -1: a tier and no model, or an API offer
    wants = d["tier"].map(_TIER_RANK).fillna(0).to_numpy()
    d["cause"] = ""
    ended = d["status"] != "late"
    d.loc[ended & (d["privacy"] != "public") & (wants > model_tier), "cause"] = "tier"
    d.loc[ended & (d["cause"] == "") & d["reason"].str.contains("budget"), "cause"] = "budget"

    causes: list[Cause] = []
    for (privacy, tier), g in d[d["cause"] == "tier"].groupby(["privacy", "tier"], sort=True):
        causes.append(_tier_cause(g, privacy, tier, g["w"].sum(), g["usd"].sum()))
    for acct, g in d[d["cause"] == "budget"].groupby("account", sort=True):
        n = g["w"].sum()
        limit = fleet.budgets.get(acct)
        period = {"day": "daily", "week": "weekly", "month": "monthly"}.get(limit.period, limit.period) if limit else ""
        what = f"its {limit.limit_usd:,.2f} USD {period} cloud budget" if limit else "its cloud budget"
        causes.append(Cause(
            "budget", f"budget|{acct}", n, g["usd"].sum(),
            f"{_requests(n, 'public')} from the {acct} account {'is' if _one(n) else 'are'} "
            f"refused the cloud when {what} runs out.", g["row"].to_numpy(), account=acct, label=f"public work of the {acct} account",
            fix=f"raise the {acct} budget by about {g['usd'].sum():,.2f} USD a month (their cloud price)"))

    open_ = d["cause"] == ""
    fit: dict[tuple, tuple[bool, bool]] = {}
    holdable, fast = np.zeros(len(d), bool), np.zeros(len(d), bool)
    cols = ["kind", "model", "quant", "privacy", "owner", "prompt", "output", "cpu", "mem", "deadline"]
    for i, key in enumerate(zip(*(d[c].to_numpy() for c in cols))):
        if open_.iloc[i]:
            if key not in fit:
                fit[key] = _local_fit(fleet, *key)
            holdable[i], fast[i] = fit[key]
    public = (d["privacy"] == "public").to_numpy()
    late_rows = (~ended).to_numpy()
    # work that may use only your machines and none can hold (or that went late to the cloud)
    no_room = open_.to_numpy() & ~holdable & (~public | late_rows)
    keys = ["kind", "model", "quant", "privacy", "owner"]
    for (kind, model, quant, privacy, owner), g in d[no_room].groupby(keys, sort=True):
        owner = owner if privacy == "personal" else ""
        tokens = float(np.percentile(g["prompt"] + g["output"], TAIL_PERCENTILE))
        need = row_need_gb(kind, model, quant, tokens, float(g["mem"].max()))
        allowed = [n for n in fleet.nodes if privacy != "personal" or n.may_hold_personal_of(OwnerId(owner))]
        n = g["w"].sum()
        ends = set(g["status"])
        if ends == {"late"}:
            what = (f"{_requests(n, privacy, owner)} finish{'es' if _one(n) else ''} after "
                    f"{'its' if _one(n) else 'their'} deadline in the cloud")
        else:
            verb = "rejected" if "late" not in ends else "not done in time"
            what = f"{_requests(n, privacy, owner)} {'is' if _one(n) else 'are'} {verb}"
        label = f"{privacy} {_mq(model, quant)} work" + (f" from {owner}" if owner else "")
        holders = [x for x in fleet.nodes if _free_gb(x) >= need]
        if privacy == "personal" and holders:
            names = ", ".join(x.id for x in holders)
            causes.append(Cause(
                "trust", f"trust|{owner}|{model}:{quant}", n, g["usd"].sum(),
                f"{what}: no node {owner} trusts can hold {_mq(model, quant)} (needs {need:.0f} GB; "
                f"{names} could, but {owner} is not among {'its' if len(holders) == 1 else 'their'} "
                "trusted owners).", g["row"].to_numpy(), owner=owner, model=model, quant=quant,
                need_gb=need, label=label, nodes=tuple(x.id for x in holders),
                fix=f"adding {owner} to {holders[0].id}'s trusted_owners (free), or a machine {owner} "
                    f"trusts with {need:.0f} GB free"))
        else:
            biggest = max((_free_gb(x) for x in allowed), default=0.0)
            whose = f"no node {owner} trusts" if privacy == "personal" else "no node of yours"
            causes.append(Cause(
                "memory", f"memory|{privacy}|{owner}|{model}:{quant}", n, g["usd"].sum(),
                f"{what}: {whose} can hold {_mq(model, quant)} (needs {need:.0f} GB; the largest has "
                f"{biggest:.0f} GB free).", g["row"].to_numpy(), owner=owner, model=model,
                quant=quant, need_gb=need, label=label,
                fix=f"a machine with at least {need:.0f} GB free" + (f" that {owner} trusts" if owner else "")))
    other = open_.to_numpy() & ~no_room & ended.to_numpy()
    for (privacy, owner, reason), g in d[other].groupby(["privacy", "owner", "reason"], sort=True):
        owner = owner if privacy == "personal" else ""
        n = g["w"].sum()
        causes.append(Cause(
            "other", f"other|{privacy}|{owner}|{reason}", n, g["usd"].sum(),
            f"{_requests(n, privacy, owner)} {'is' if _one(n) else 'are'} rejected "
            f"({reason or 'no reason stated'}).", g["row"].to_numpy(), owner=owner,
            label=f"{privacy} work" + (f" from {owner}" if owner else "")))

    late = d[open_.to_numpy() & late_rows & holdable]
    if not late.empty:
        quick = fast[open_.to_numpy() & late_rows & holdable]
        for kind, g in (("capacity", late[quick]), ("speed", late[~quick])):
            if g.empty:
                continue
            n = g["w"].sum()
            start, end = _hours(g["arrival"].to_numpy(), g["w"].to_numpy())
            by_node = g.groupby("target")["w"].sum().sort_values(ascending=False)
            top = [t for t in by_node.index[:2] if t]
            where = f" on {' and '.join(top)}" if top else ""
            if kind == "capacity":
                sentence = (f"{_requests(n)} finish{'es' if _one(n) else ''} after "
                            f"{'its' if _one(n) else 'their'} deadline, most between {_clock(start)} "
                            f"and {_clock(end)}{where}: a node could do them in time, but it is busy then.")
                fix = "more capacity at the peak hour (another machine that can run these models)"
                label = "work late at the peak hour"
            else:
                models = ", ".join(sorted(set(g["model"]))[:3])
                sentence = (f"{_requests(n)} finish{'es' if _one(n) else ''} after "
                            f"{'its' if _one(n) else 'their'} deadline because no node is fast enough "
                            f"for {'it' if _one(n) else 'them'} even when idle ({models}).")
                fix = "a faster machine (more memory bandwidth)"
                label = "work no node is fast enough for"
            # a machine that takes this work must hold its most common model
            (mk, mm, mq), _ = next(iter(g.groupby(["kind", "model", "quant"])["w"].sum()
                                        .sort_values(ascending=False).items()))
            sel = (g["model"] == mm) & (g["quant"] == mq)
            need = row_need_gb(mk, mm, mq, float(np.percentile(g["prompt"][sel] + g["output"][sel],
                                                                TAIL_PERCENTILE)), float(g["mem"][sel].max()))
            causes.append(Cause(kind, kind, n, g["usd"].sum(), sentence, g["row"].to_numpy(),
                                fix=fix, nodes=tuple(top), label=label, model=mm, quant=mq,
                                need_gb=need))
    order = {k: i for i, k in enumerate(CAUSE_KINDS)}
    causes.sort(key=lambda c: (order[c.kind], -c.per_month, c.key))
    return causes
