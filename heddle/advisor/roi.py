"""ROI of a candidate from its twin replay against the current fleet's replay.

savings = cloud spend avoided + energy difference + value of the work not done in time that is
now done (`advisor.value`), per day; the price is the purchase less the resale value of any
replaced machine (`advisor.resale`); then payback months, 3-year TCO, NPV and the break-even request rate (`finance`), and
the uncertainty of the payback (`uncertainty`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from heddle.advisor import finance
from heddle.advisor.candidates import Candidate
from heddle.advisor.days import DayPlan
from heddle.advisor.screen import Estimate
from heddle.advisor.settings import DAYS_PER_MONTH, AdvisorSettings
from heddle.advisor.twin import Replay
from heddle.advisor.uncertainty import Uncertainty, payback_uncertainty

__all__ = ["DailyCosts", "Evaluation", "daily_costs", "evaluate"]


@dataclass(slots=True)
class DailyCosts:
    """Per replayed day, what one day of its block costs (per-day equivalents)."""

    cloud_usd: np.ndarray
    energy_usd: np.ndarray
    misses: np.ndarray
    miss_usd: np.ndarray  # the value of the work not done in time
    requests: np.ndarray
    idle_usd_per_day: float


def daily_costs(r: Replay, plan: DayPlan) -> DailyCosts:
    per_day = plan.scale / plan.weight_days  # variable totals -> one day of the block
    return DailyCosts(
        cloud_usd=r.cloud_usd * per_day,
        energy_usd=r.busy_energy_usd * per_day + r.idle_usd_per_day,
        misses=r.misses * per_day,
        miss_usd=r.miss_usd * per_day,
        requests=r.requests * per_day,
        idle_usd_per_day=r.idle_usd_per_day,
    )


def _monthly(x: np.ndarray, plan: DayPlan) -> float:
    return float(x @ plan.weight_days / plan.weight_days.sum() * DAYS_PER_MONTH)


@dataclass(slots=True)
class Evaluation:
    candidate: Candidate
    estimate: Estimate
    replay: Replay
    operating_usd_per_month: dict[str, float]  # cloud, energy, misses, total
    savings_usd_per_month: dict[str, float]  # cloud, energy, misses, total (vs current)
    payback_months: float
    npv_usd: float
    tco_usd: float
    break_even_requests_per_day: float
    headroom: float  # how much the request rate may grow before the purchase saturates
    eligible: bool
    why_not: str
    uncertainty: Uncertainty | None = None
    misses_avoided_per_month: float = 0.0
    fixes: dict[str, float] = field(default_factory=dict)  # cause key -> its requests now done, a month
    owner_misses_per_month: dict[str, float] = field(default_factory=dict)  # replaced nodes' owners

    @property
    def break_even_miss_value_usd(self) -> float:
        """The flat value per request not done in time at which this candidate's NPV would be 0
        (inf when it does no more work in time than today)."""
        if self.misses_avoided_per_month <= 0:
            return math.inf
        sv = self.savings_usd_per_month
        return max(0.0, (self.candidate.net_usd / self.annuity - (sv["total"] - sv["misses"]))
                   / self.misses_avoided_per_month)

    annuity: float = 1.0  # sum of the horizon's monthly discount factors

    def as_dict(self) -> dict:
        def num(x: float) -> float | None:
            return round(float(x), 4) if math.isfinite(x) else None

        c = self.candidate
        return {
            "name": c.name, "kind": c.kind, "purchase_usd": c.purchase_usd,
            "purchases": [{"device": p.device_id, "memory_gb": p.memory_gb, "units": p.units,
                           "unit_price_usd": p.unit_price_usd} for p in c.purchases],
            "removed": list(c.removed), "resale_usd": c.resale_usd,
            "resale_source": c.resale_source, "net_usd": c.net_usd,
            "operating_usd_per_month": {k: num(v) for k, v in self.operating_usd_per_month.items()},
            "savings_usd_per_month": {k: num(v) for k, v in self.savings_usd_per_month.items()},
            "payback_months": num(self.payback_months), "npv_usd": num(self.npv_usd),
            "tco_usd": num(self.tco_usd),
            "break_even_requests_per_day": num(self.break_even_requests_per_day),
            "headroom": num(self.headroom),
            "estimated_payback_months": num(self.estimate.payback_months),
            "estimated_savings_usd_per_month": num(self.estimate.savings_usd_per_month),
            "privacy_violations": self.replay.privacy_violations,
            "eligible": self.eligible, "why_not": self.why_not,
            "utilization": {k: round(v, 4) for k, v in self.replay.utilization.items()},
            "twin_wall_s": round(self.replay.wall_s, 3),
            "uncertainty": self.uncertainty.as_dict() if self.uncertainty else None,
            "misses_avoided_per_month": num(self.misses_avoided_per_month),
            "break_even_miss_value_usd": num(self.break_even_miss_value_usd),
            "fixes_per_month": {k: round(v, 2) for k, v in self.fixes.items()},
        }


def _headroom(c: Candidate, r: Replay) -> float:
    new = [r.utilization.get(n.id, 0.0) for n in c.fleet.nodes if n.id.startswith("buy-")]
    busiest = max(new, default=0.0)
    return 1.0 / busiest if busiest > 0 else math.inf


def evaluate(
    estimate: Estimate,
    replay: Replay,
    base: DailyCosts,
    plan: DayPlan,
    settings: AdvisorSettings,
    trend_growth_per_year: float,
    rng: np.random.Generator,
) -> Evaluation:
    c = estimate.candidate
    mine = daily_costs(replay, plan)
    op = {"cloud": _monthly(mine.cloud_usd, plan), "energy": _monthly(mine.energy_usd, plan),
          "misses": _monthly(mine.miss_usd, plan)}
    op["total"] = sum(op.values())
    save_cloud = base.cloud_usd - mine.cloud_usd
    save_energy = base.energy_usd - mine.energy_usd
    save_miss = base.miss_usd - mine.miss_usd
    daily = save_cloud + save_energy + save_miss
    sv = {"cloud": _monthly(save_cloud, plan), "energy": _monthly(save_energy, plan),
          "misses": _monthly(save_miss, plan)}
    sv["total"] = sv["cloud"] + sv["energy"] + sv["misses"]
    months = settings.horizon_months
    price = c.net_usd
    sched = finance.growth_schedule(sv["total"], months)
    req_month = _monthly(base.requests, plan)
    # break-even: the variable part of the saving scales with the rate, extra idle power not
    idle_increase = (mine.idle_usd_per_day - base.idle_usd_per_day) * DAYS_PER_MONTH
    per_request = (sv["total"] + idle_increase) / req_month if req_month else 0.0
    headroom = _headroom(c, replay)
    why = []
    if replay.privacy_violations:
        why.append(f"{replay.privacy_violations} privacy violation(s) in the twin")
    if estimate.personal_gaps:
        owners = sorted({key.rsplit("|", 1)[-1] for key in estimate.personal_gaps})
        whose = " and ".join(f"{o}'s" for o in owners)
        who = owners[0] if len(owners) == 1 else "they"
        why.append(f"leaves {whose} personal work without a machine {who} "
                   f"{'trusts' if len(owners) == 1 else 'trust'} that can hold it")
    ev = Evaluation(
        candidate=c, estimate=estimate, replay=replay, operating_usd_per_month=op,
        savings_usd_per_month=sv, payback_months=finance.payback_months(price, sv["total"]),
        npv_usd=finance.npv_usd(price, sched, settings.discount_rate_annual),
        tco_usd=finance.tco_usd(price, op["total"], months),
        break_even_requests_per_day=finance.break_even_requests_per_day(
            price, per_request, max(idle_increase, 0.0), months, settings.discount_rate_annual,
            DAYS_PER_MONTH),
        headroom=headroom, eligible=not why, why_not="; ".join(why),
        misses_avoided_per_month=_monthly(base.misses - mine.misses, plan),
        annuity=float(finance.discount_factors(months, settings.discount_rate_annual).sum()),
    )
    if price > 0:
        scenarios = {"flat": 0.0, "trend": trend_growth_per_year}
        scenarios |= {f"{g:+.0%}/yr": g for g in settings.growth_scenarios_per_year}
        n_draw = plan.periods
        ev.uncertainty = payback_uncertainty(
            price, daily, save_energy, plan.weight_days, n_draw, scenarios, headroom,
            months=months, samples=settings.bootstrap_samples,
            electricity_factors=settings.electricity_factors, rng=rng)
    return ev
