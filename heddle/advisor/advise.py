"""`advise()`: the advisor's composition root, from a trace and a fleet to an `AdvisorReport`.

analyse the workload -> slice it -> generate candidates and pre-screen them analytically ->
replay the shortlist in the twin (representative days when the trace is long) -> ROI and
uncertainty per candidate -> rank and recommend.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from heddle.advisor.baseline import CloudUse, cloud_use
from heddle.advisor.days import DayPlan, plan_days, row_days, subset_days
from heddle.advisor.errors import AdvisorError, WorkloadError
from heddle.advisor.lookup import catalog_devices
from heddle.advisor.roi import Evaluation, daily_costs, evaluate
from heddle.advisor.screen import ScreenResult, screen
from heddle.advisor.settings import AdvisorSettings
from heddle.advisor.slices import make_slices
from heddle.advisor.twin import replay_fleets
from heddle.advisor.workload import SECONDS_PER_DAY, WorkloadProfile, analyze
from heddle.models.fleet_types import Fleet
from heddle.models.specs import DeviceSpec

__all__ = ["AdvisorReport", "SamplingCheck", "advise", "check_sampling", "recommendation_sentence"]


@dataclass(slots=True)
class AdvisorReport:
    settings: AdvisorSettings
    fleet_name: str
    trace_label: str
    profile: WorkloadProfile
    current: CloudUse
    screened: int  # candidates priced analytically
    screen: ScreenResult
    plan: DayPlan
    evaluations: list[Evaluation]  # shortlisted candidates replayed in the twin, best first
    baseline: Evaluation
    recommended: Evaluation | None
    sentence: str
    timings_s: dict[str, float] = field(default_factory=dict)

    @property
    def privacy_violations(self) -> int:
        return sum(e.replay.privacy_violations for e in [self.baseline, *self.evaluations])

    def as_dict(self) -> dict:
        sz = self.screen.sizing
        return {
            "fleet": self.fleet_name,
            "trace": self.trace_label,
            "settings": self.settings.model_dump(mode="json"),
            "recommendation": self.sentence,
            "recommended": self.recommended.candidate.name if self.recommended else None,
            "workload": self.profile.as_dict(),
            "current": self.current.as_dict(),
            "candidates_screened": self.screened,
            "sizing": None if sz is None else {
                "status": sz.status, "bought": sz.bought, "purchase_usd": sz.purchase_usd,
                "monthly_usd": sz.monthly_usd, "local_share": sz.local_share,
                "cloud_share": sz.cloud_share, "miss_share": sz.miss_share, "wall_s": sz.wall_s},
            "replay": {"sampled": self.plan.sampled, "days_replayed": self.plan.days.tolist(),
                       "days_in_trace": self.plan.n_days,
                       "weight_days": self.plan.weight_days.tolist()},
            "baseline": self.baseline.as_dict(),
            "candidates": [e.as_dict() for e in self.evaluations],
            "privacy_violations": self.privacy_violations,
            "timings_s": {k: round(v, 3) for k, v in self.timings_s.items()},
        }


def _fmt_months(x: float) -> str:
    return f"{x:.1f} months" if math.isfinite(x) else "never"


def recommendation_sentence(best: Evaluation | None, baseline: Evaluation, settings: AdvisorSettings,
                            any_personal: bool) -> str:
    """One sentence an owner can act on."""
    if best is None:
        why = (" none of the candidates that pay back can hold your personal work locally"
               if any_personal else "")
        return (f"Keep the current fleet: no candidate within the {settings.budget_usd:,.0f} USD "
                f"budget pays back within {settings.horizon_months} months{why}.")
    sv = best.savings_usd_per_month["total"]
    band = ""
    if best.uncertainty:
        p = best.uncertainty.pooled
        band = f" (P10-P90 {p['p10']:.1f}-{p['p90']:.1f} across days and growth scenarios)"
    c = best.candidate
    what = (f"Replace {c.removed[0]} by {c.purchases[0].label()}" if c.kind == "replace"
            else "Buy " + " + ".join(p.label() for p in c.purchases))
    return (f"{what} for "
            f"{best.candidate.purchase_usd:,.0f} USD: it saves {sv:,.0f} USD a month at your "
            f"current request rate and pays back in {_fmt_months(best.payback_months)}{band}; "
            f"3-year NPV {best.npv_usd:,.0f} USD.")


def _trustworthy(e: Evaluation, settings: AdvisorSettings) -> bool:
    """Recommendable: privacy-eligible, positive NPV, and paying back within the horizon in
    at least 90% of the bootstrapped months at today's rate (so a saving that is only noise
    between two twin runs is not sold as advice)."""
    if not (e.eligible and e.npv_usd > 0 and math.isfinite(e.payback_months)):
        return False
    u = e.uncertainty
    return u is None or u.by_scenario["flat"]["p90"] <= settings.horizon_months


def _frame(trace: Any) -> tuple[pd.DataFrame, str]:
    if isinstance(trace, pd.DataFrame):
        return trace, "DataFrame"
    if hasattr(trace, "df"):
        return trace.df, str(getattr(trace, "meta", {}).get("name", "trace"))
    from heddle.traces import read_trace

    path = Path(trace)
    return read_trace(path).df, path.name


def _fleet(fleet: Any, settings: AdvisorSettings) -> Fleet:
    if not isinstance(fleet, Fleet):
        from heddle.models.fleet import load_fleet

        fleet = load_fleet(Path(fleet))
    if settings.electricity_usd_per_kwh is not None:
        price = settings.electricity_usd_per_kwh
        fleet = replace(fleet, electricity_usd_per_kwh=price,
                        nodes=tuple(replace(n, electricity_usd_per_kwh=0.0) for n in fleet.nodes))
    return fleet


def advise(
    trace: Any,
    fleet: Any,
    settings: AdvisorSettings | None = None,
    *,
    devices: dict[str, DeviceSpec] | None = None,
    progress: Callable[[str], None] | None = None,
) -> AdvisorReport:
    """Advise what to buy. `trace`: a Trace, trace DataFrame or path; `fleet`: Fleet or path;
    `devices`: the purchasable devices (default: the whole shipped catalog)."""
    settings = settings or AdvisorSettings()
    say = progress or (lambda _msg: None)
    t: dict[str, float] = {}
    t0 = time.perf_counter()
    df, label = _frame(trace)
    fleet = _fleet(fleet, settings)
    if "task_id" not in df.columns:
        raise WorkloadError("trace lacks column ['task_id']; expected the heddle.traces schema")
    say("analysing the workload")
    profile = analyze(df, settings.design_percentile)
    mean_rate = len(df) / max(float(df["arrival_s"].max()), SECONDS_PER_DAY / 24)
    slices = make_slices(df, max(profile.peak_hour_requests_per_s / mean_rate, 1.0))
    t["analysis"] = time.perf_counter() - t0

    say("screening candidates")
    t1 = time.perf_counter()
    scr = screen(fleet, slices, devices if devices is not None else catalog_devices(), settings)
    t["screen"] = time.perf_counter() - t1

    say(f"replaying {len(scr.shortlist)} fleets in the twin")
    t2 = time.perf_counter()
    plan = plan_days(df, settings.sample_days)
    if plan.sampled:
        replay_df, slot = subset_days(df, plan.days)
    else:
        replay_df, day = df.reset_index(drop=True), row_days(df, plan.period_s)
        slot = np.searchsorted(plan.days, day)
    fleets = [(e.candidate.name, e.candidate.fleet) for e in scr.shortlist]
    replays = replay_fleets(fleets, replay_df, slot, policy=settings.policy, seed=settings.seed,
                            workers=settings.workers)
    t["twin"] = time.perf_counter() - t2

    t3 = time.perf_counter()
    base_costs = daily_costs(replays[0], plan)
    rng = np.random.default_rng(settings.seed)
    evals = [evaluate(e, r, base_costs, plan, settings, profile.growth_per_year, rng)
             for e, r in zip(scr.shortlist, replays)]
    baseline, others = evals[0], evals[1:]
    others.sort(key=lambda e: (-e.npv_usd, e.candidate.purchase_usd, e.candidate.name))
    good = [e for e in others if _trustworthy(e, settings)]
    best = good[0] if good else None
    current = cloud_use(replay_df, replays[0], base_costs, plan, slices, fleet)
    sentence = recommendation_sentence(best, baseline, settings, bool(profile.personal_owners))
    t["roi"] = time.perf_counter() - t3
    t["total"] = time.perf_counter() - t0
    if baseline.replay.privacy_violations:
        raise AdvisorError("the current fleet's replay broke privacy: the twin is not trustworthy")
    return AdvisorReport(settings, fleet.name, label, profile, current, len(scr.estimates) + 1, scr,
                         plan, others, baseline, best, sentence, t)


@dataclass(slots=True)
class SamplingCheck:
    """How far the representative-days answer is from replaying every day."""

    candidate: str
    sampled_payback_months: float
    full_payback_months: float
    sampled_savings_usd_per_month: float
    full_savings_usd_per_month: float
    sampled_twin_s: float
    full_twin_s: float
    days_sampled: int
    days_total: int

    @property
    def payback_error(self) -> float:
        """Relative error of the sampled payback against the full replay."""
        return abs(self.sampled_payback_months / self.full_payback_months - 1.0)


def _replay_pair(df: pd.DataFrame, sample_days: int, fleets, pick: Evaluation,
                 report: AdvisorReport) -> tuple[Evaluation, float, DayPlan]:
    settings = report.settings
    plan = plan_days(df, sample_days)
    if plan.sampled:
        replay_df, slot = subset_days(df, plan.days)
    else:
        replay_df, day = df.reset_index(drop=True), row_days(df, plan.period_s)
        slot = np.searchsorted(plan.days, day)
    t0 = time.perf_counter()
    base, mine = replay_fleets(fleets, replay_df, slot, policy=settings.policy, seed=settings.seed,
                               workers=settings.workers)
    wall = time.perf_counter() - t0
    ev = evaluate(pick.estimate, mine, daily_costs(base, plan), plan, settings,
                  report.profile.growth_per_year, np.random.default_rng(settings.seed))
    return ev, wall, plan


def check_sampling(report: AdvisorReport, trace: Any) -> SamplingCheck:
    """Replay the current fleet and the recommended (else the best) candidate on the sampled
    days and on every day of the trace; compare the two paybacks and the twin's run times."""
    pick = report.recommended or (report.evaluations[0] if report.evaluations else None)
    if pick is None:
        raise AdvisorError("no candidate to check")
    df, _ = _frame(trace)
    fleets = [("current fleet", report.baseline.candidate.fleet),
              (pick.candidate.name, pick.candidate.fleet)]
    sampled, sampled_s, plan_s = _replay_pair(df, report.settings.sample_days, fleets, pick, report)
    full, full_s, plan_f = _replay_pair(df, 0, fleets, pick, report)
    return SamplingCheck(pick.candidate.name, sampled.payback_months, full.payback_months,
                         sampled.savings_usd_per_month["total"], full.savings_usd_per_month["total"],
                         sampled_s, full_s, int(plan_s.days.size), int(plan_f.n_days))
