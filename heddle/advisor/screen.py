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
    memory_choices,
    purchase_unit,
    purchased_node,
    replace_candidate,
    reserved_fraction,
    serves_personal_locally,
)
from heddle.advisor.errors import SizingError
from heddle.advisor.settings import AdvisorSettings
from heddle.advisor.sizing import MixResult, fixed_fleet_cost, solve_mix
from heddle.advisor.slices import Slice, pair_table, unit_types_of
from heddle.models.fleet_types import Fleet
from heddle.models.specs import DeviceSpec

__all__ = ["Estimate", "ScreenResult", "estimate", "screen"]

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


def _personal_computer(node) -> bool:
    """A laptop is someone's own computer that lends spare cycles, not fleet hardware: the
    advisor never proposes to replace it (fleet YAML labels: form_factor / battery_capable)."""
    return (node.labels.get("form_factor") == "laptop" or node.labels.get("battery_capable") == "true"
            or node.power_source.value == "battery")


def estimate(fleet: Fleet, slices: list[Slice], settings: AdvisorSettings,
             cache: dict | None = None) -> MixResult:
    """Monthly cost of serving the slices with exactly this fleet (analytic)."""
    units = unit_types_of(fleet, settings.electricity_usd_per_kwh)
    table = pair_table(slices, units, fleet.cloud_offers, cache)
    return fixed_fleet_cost(slices, units, table, miss_value_usd=settings.miss_value_usd,
                            target_utilization=settings.target_utilization)


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
                        budget_usd=settings.budget_usd, miss_value_usd=settings.miss_value_usd,
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
            nodes += [purchased_node(fleet, d, u.node.memory_gb, len(nodes) + i + 1) for i in range(k)]
            purchases.append(Purchase(d.id, u.node.memory_gb, k, u.price_usd))
    label = " + ".join(p.label() for p in purchases)
    return mix, Candidate(f"optimized mix: {label}", "mix", replace(fleet, nodes=tuple(nodes)),
                          tuple(purchases))


def screen(fleet: Fleet, slices: list[Slice], devices: dict[str, DeviceSpec],
           settings: AdvisorSettings) -> ScreenResult:
    """Generate every candidate, estimate each analytically, pick the shortlist."""
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
    for old in fleet.nodes:
        if _personal_computer(old):
            continue
        for d, m in seen_dev:
            c = replace_candidate(fleet, old, d, m)
            if c.purchase_usd <= settings.budget_usd:
                ests.append(_judge(c, slices, settings, base_mix, cache))

    sizing, mix_cand = _sizing_candidate(fleet, slices, settings, options, cache)
    if mix_cand is not None:
        ests.append(_judge(mix_cand, slices, settings, base_mix, cache))
    ests.sort(key=lambda e: (-e.npv_usd, e.candidate.purchase_usd, e.candidate.name))

    shortlist, sigs = [baseline], {fleet_signature(fleet)}
    must = [e for e in ests if e.candidate.kind == "mix"]
    for e in must + ests:
        if len(shortlist) >= settings.shortlist + 1:
            break
        sig = fleet_signature(e.candidate.fleet)
        if sig in sigs or not math.isfinite(e.npv_usd):
            continue
        sigs.add(sig)
        shortlist.append(e)
    return ScreenResult(baseline, ests, sizing, shortlist)
