"""Candidate generation and the analytic pre-screen.

Every candidate is priced with the sizing model with all unit counts fixed (what this exact
hardware would spend per month serving the workload's slices, no simulation); the shortlist
that the twin replays is the best of them by estimated NPV, plus the current fleet and the
optimized mix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from heddle.advisor import finance
from heddle.advisor.candidates import (
    Candidate,
    Purchase,
    add_candidate,
    fleet_signature,
    keeps_owner_work,
    memory_choices,
    multi_add_candidate,
    owner_trust,
    primary_owner,
    purchase_unit,
    purchased_node,
    replace_candidate,
    reserved_fraction,
    serves_personal_locally,
)
from heddle.advisor.causes import Cause
from heddle.advisor.errors import SizingError
from heddle.advisor.lookup import machine_price_usd
from heddle.advisor.resale import resale_of
from heddle.advisor.settings import AdvisorSettings
from heddle.advisor.sizing import MixResult, fixed_fleet_cost, solve_mix
from heddle.advisor.slices import Slice, pair_table, unit_types_of
from heddle.models.fleet_types import Fleet, Node
from heddle.models.ids import OwnerId
from heddle.models.specs import DeviceSpec

__all__ = ["Estimate", "ScreenResult", "estimate", "may_replace", "personal_computer", "screen"]

REPLACEMENT_DEVICES = 3
"""Replacements are tried with the best few add-one devices only (n_nodes x 3 candidates)."""


@dataclass(slots=True)
class Estimate:
    candidate: Candidate
    mix: MixResult  # the fixed-fleet solve
    savings_usd_per_month: float
    payback_months: float
    npv_usd: float
    personal_gaps: list[str]


@dataclass(slots=True)
class ScreenResult:
    baseline: Estimate
    estimates: list[Estimate]  # every candidate, best estimated NPV first
    sizing: MixResult | None  # the free (optimized-mix) solve
    shortlist: list[Estimate]


PERSONAL_FORM_FACTORS = frozenset({"laptop", "desktop"})
"""Fleet-YAML `form_factor` labels of a computer a person uses (not fleet-only hardware)."""


def personal_computer(node: Node) -> bool:
    """A laptop or desktop is someone's own computer that lends spare cycles: the advisor
    proposes replacing it only when the fleet file marks it `replaceable` (and then only if
    its owner's work is served at least as well, checked on the twin replay)."""
    return (node.labels.get("form_factor") in PERSONAL_FORM_FACTORS
            or node.labels.get("battery_capable") == "true" or node.power_source.value == "battery")


def may_replace(node: Node) -> bool:
    return node.replaceable or not personal_computer(node)


def estimate(fleet: Fleet, slices: list[Slice], settings: AdvisorSettings,
             cache: dict | None = None) -> MixResult:
    """Monthly cost of serving the slices with exactly this fleet (analytic)."""
    units = unit_types_of(fleet, settings.electricity_usd_per_kwh)
    table = pair_table(slices, units, fleet.cloud_offers, cache)
    return fixed_fleet_cost(slices, units, table, target_utilization=settings.target_utilization)


def _judge(c: Candidate, slices: list[Slice], settings: AdvisorSettings, base: MixResult | None,
           cache: dict) -> Estimate:
    mix = estimate(c.fleet, slices, settings, cache)
    saving = (base.operating_usd_per_month - mix.operating_usd_per_month) if base else 0.0
    sched = finance.growth_schedule(saving, settings.horizon_months)
    return Estimate(c, mix, saving, finance.payback_months(c.purchase_usd, saving),
                    finance.npv_usd(c.purchase_usd, sched, settings.discount_rate_annual),
                    serves_personal_locally(c.fleet, slices))


def _sizing_candidate(fleet: Fleet, slices: list[Slice], settings: AdvisorSettings,
                      options: list[tuple[DeviceSpec, int]], cache: dict
                      ) -> tuple[MixResult | None, Candidate | None]:
    have = unit_types_of(fleet, settings.electricity_usd_per_kwh)
    price = settings.electricity_usd_per_kwh if settings.electricity_usd_per_kwh is not None \
        else fleet.electricity_usd_per_kwh
    buy = [purchase_unit(fleet, d, m, settings.max_units, price) for d, m in options]
    units = have + buy
    table = pair_table(slices, units, fleet.cloud_offers, cache)
    try:
        mix = solve_mix(slices, units, table, buyable=[False] * len(have) + [True] * len(buy),
                        budget_usd=settings.budget_usd,
                        horizon_months=settings.horizon_months,
                        target_utilization=settings.target_utilization,
                        time_limit_s=settings.sizing_time_limit_s, seed=settings.seed)
    except SizingError:
        return None, None
    if not mix.bought:
        return mix, None
    nodes = list(fleet.nodes)
    purchases = []
    for u in buy:
        k = mix.bought.get(u.key, 0)
        if k:
            d = u.node.device
            nodes += [purchased_node(fleet, d, u.node.memory_gb, len(nodes) - len(fleet.nodes) + i + 1)
                      for i in range(k)]
            purchases.append(Purchase(d.id, u.node.memory_gb, k, u.price_usd))
    label = " + ".join(p.label() for p in purchases)
    return mix, Candidate(f"optimized mix: {label}", "mix", replace(fleet, nodes=tuple(nodes)),
                          tuple(purchases))


def _aimed(fleet: Fleet, causes: list[Cause], devices: dict[str, DeviceSpec],
           settings: AdvisorSettings, reserve: float) -> list[Candidate]:
    """Candidates aimed at the memory and trust causes: the cheapest few devices with room for
    the work, bought by whoever the work's owner already trusts (or by the owner)."""
    def fits(need_gb: float) -> list[tuple[DeviceSpec, int]]:
        """The cheapest few devices (smallest memory option) with `need_gb` free."""
        found = []
        for d in devices.values():
            mem = next((m for m in sorted(d.memory_options_gb) if m * (1 - reserve) >= need_gb), None)
            if d.price_usd > 0 and mem is not None:
                found.append((machine_price_usd(d, mem), d.id, d, mem))
        return [(d, mem) for _, _, d, mem in sorted(found)[:REPLACEMENT_DEVICES]]

    out = []
    primary = primary_owner(fleet)
    need_by_buyer: dict[str, float] = {}
    for c in causes:
        if c.kind not in ("memory", "trust") or not math.isfinite(c.need_gb):
            continue
        buyer = None
        if c.owner and c.owner != primary and c.owner not in owner_trust(fleet, primary):
            buyer = OwnerId(c.owner)  # the work's owner does not trust the usual buyer's machines
        need_by_buyer[buyer or ""] = max(need_by_buyer.get(buyer or "", 0.0), c.need_gb)
        out += [add_candidate(fleet, d, mem, 1, owner=buyer, aim=c.key) for d, mem in fits(c.need_gb)]
    if len(need_by_buyer) > 1:  # one machine per buyer serves every owner's work at once
        buys = []
        for buyer, need in sorted(need_by_buyer.items()):
            (d, mem), *_ = fits(need) or [(None, 0)]
            if d is not None:
                buys.append((d, mem, OwnerId(buyer) if buyer else None))
        if len(buys) == len(need_by_buyer):
            out.append(multi_add_candidate(fleet, buys, aim="memory"))
    return [c for c in out if c.purchase_usd <= settings.budget_usd]


def _addresses(e: Estimate, c: Cause) -> bool:
    """Does a candidate add a machine that can take this cause's work?"""
    new = [n for n in e.candidate.fleet.nodes if n.labels.get("purchase") == "advisor"]
    if c.kind not in ("memory", "trust", "capacity", "speed"):
        return False
    if c.kind in ("capacity", "speed") and e.candidate.kind == "replace":
        return False  # more capacity means another machine, not a swapped one
    return any((not c.owner or n.may_hold_personal_of(OwnerId(c.owner)))
               and n.memory_gb - n.reserved_memory_gb >= c.need_gb for n in new)


def _replacements(fleet: Fleet, picks: list[tuple[DeviceSpec, float]], settings: AdvisorSettings,
                  needs: dict[str, list[tuple[str, float]]]) -> list[Candidate]:
    """Replace a node only where the fleet allows it (`may_replace`) and only by a machine that
    holds everything the node's owner runs on it today."""
    out = []
    for old in fleet.nodes:
        if not may_replace(old):
            continue
        sale = resale_of(old, settings.resale_usd)
        for d, m in picks:
            c = replace_candidate(fleet, old, d, m, sale.usd, sale.source)
            new = c.fleet.nodes[[n.id for n in fleet.nodes].index(old.id)]
            if c.purchase_usd <= settings.budget_usd and not keeps_owner_work(old, new, needs.get(old.owner, [])):
                out.append(c)
    return out


def screen(fleet: Fleet, slices: list[Slice], devices: dict[str, DeviceSpec],
           settings: AdvisorSettings, causes: list[Cause] | None = None,
           needs: dict[str, list[tuple[str, float]]] | None = None) -> ScreenResult:
    """Generate every candidate, estimate each analytically, pick the shortlist (which holds
    the best candidate aimed at each cause a purchase can fix)."""
    causes = causes or []
    cache: dict = {}
    base_mix = estimate(fleet, slices, settings, cache)
    baseline = Estimate(Candidate("current fleet", "current", fleet), base_mix, 0.0, 0.0, 0.0,
                        serves_personal_locally(fleet, slices))
    reserve = reserved_fraction(fleet)
    options = [(d, m) for d in devices.values() if d.price_usd > 0
               for m in memory_choices(d, slices, reserve)]
    cands = [add_candidate(fleet, d, m, k) for d, m in options for k in range(1, settings.max_units + 1)]
    cands = [c for c in cands if c.purchase_usd <= settings.budget_usd]
    ests = [_judge(c, slices, settings, base_mix, cache) for c in cands]
    ests.sort(key=lambda e: -e.npv_usd)

    seen_dev: list[tuple[DeviceSpec, float]] = []
    for e in ests:
        p = e.candidate.purchases[0]
        if (devices[p.device_id], p.memory_gb) not in seen_dev:
            seen_dev.append((devices[p.device_id], p.memory_gb))
        if len(seen_dev) == REPLACEMENT_DEVICES:
            break
    extra = _replacements(fleet, seen_dev, settings, needs or {}) + _aimed(fleet, causes, devices, settings, reserve)
    ests += [_judge(c, slices, settings, base_mix, cache) for c in extra]

    sizing, mix_cand = _sizing_candidate(fleet, slices, settings, options, cache)
    if mix_cand is not None:
        ests.append(_judge(mix_cand, slices, settings, base_mix, cache))
    ests.sort(key=lambda e: (-e.npv_usd, e.candidate.purchase_usd, e.candidate.name))

    must = [e for e in ests if e.candidate.kind == "mix"]
    for c in causes:
        if c.fixable_by_purchase:
            best = next((e for e in ests if _addresses(e, c) and not e.personal_gaps), None)
            best = best or next((e for e in ests if _addresses(e, c)), None)
            if best is not None:
                must.append(best)
    shortlist, sigs = [baseline], {fleet_signature(fleet)}
    limit = settings.shortlist + 1 + len(must)
    for e in must + ests:
        if len(shortlist) >= limit or (len(shortlist) >= settings.shortlist + 1 and not any(e is m for m in must)):
            continue
        sig = fleet_signature(e.candidate.fleet)
        if sig in sigs or not math.isfinite(e.npv_usd):
            continue
        sigs.add(sig)
        shortlist.append(e)
    return ScreenResult(baseline, ests, sizing, shortlist)
