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
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from heddle.advisor.baseline import CloudUse, cloud_use
from heddle.advisor.candidates import owner_needs, serves_personal_locally
from heddle.advisor.causes import Cause, diagnose, monthly_weights
from heddle.advisor.changes import free_changes
from heddle.advisor.days import DayPlan, plan_days, row_days, subset_days
from heddle.advisor.errors import AdvisorError, WorkloadError
from heddle.advisor.lookup import catalog_devices
from heddle.advisor.roi import Evaluation, daily_costs, evaluate
from heddle.advisor.screen import Estimate, ScreenResult, screen
from heddle.advisor.settings import AdvisorSettings
from heddle.advisor.slices import make_slices
from heddle.advisor.twin import replay_fleets
from heddle.advisor.value import describe_value, request_values
from heddle.advisor.words import months_text, recommendation_sentence
from heddle.advisor.workload import SECONDS_PER_DAY, WorkloadProfile, analyze
from heddle.models.fleet_types import Fleet
from heddle.models.specs import DeviceSpec

if TYPE_CHECKING:
    from heddle.sim.executors import RunExecutor

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
    causes: list[Cause] = field(default_factory=list)  # why work fails today
    note: str = ""  # why an addition was preferred to a replacement, if it was
    changes: list[Evaluation] = field(default_factory=list)  # no-purchase changes, replayed
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
            "miss_value": describe_value(self.settings),
            "causes": [c.as_dict() for c in self.causes],
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
            "changes": [e.as_dict() for e in self.changes],
            "privacy_violations": self.privacy_violations,
            "timings_s": {k: round(v, 3) for k, v in self.timings_s.items()},
        }


def _trustworthy(e: Evaluation, settings: AdvisorSettings) -> bool:
    """Recommendable: privacy-eligible, positive NPV, and paying back within the horizon in
    at least 90% of the bootstrapped months at today's rate (so a saving that is only noise
    between two twin runs is not sold as advice)."""
    if not (e.eligible and e.npv_usd > 0 and math.isfinite(e.payback_months)):
        return False
    u = e.uncertainty
    return u is None or u.by_scenario["flat"]["p90"] <= settings.horizon_months


NEAR_PAYBACK_MONTHS = 1.0
"""Adding and replacing whose paybacks are this close (or NEAR_PAYBACK_SHARE apart, whichever
is more) count as the same: the advice is then to add, so nobody loses a working machine (and
the chore of selling it) for a difference inside the payback's own uncertainty."""

NEAR_PAYBACK_SHARE = 0.15
"""15%: about the width of a steady workload's P10-P90 payback band across growth scenarios."""


def _pick(good: list[Evaluation]) -> tuple[Evaluation | None, str]:
    """The best trustworthy candidate, preferring an addition over a replacement that pays
    back at nearly the same time; returns it and a note saying why when that preference applied."""
    if not good:
        return None, ""
    best = good[0]
    if best.candidate.kind != "replace":
        return best, ""
    near = max(NEAR_PAYBACK_MONTHS, NEAR_PAYBACK_SHARE * best.payback_months)
    adds = [e for e in good if e.candidate.kind != "replace"
            and e.payback_months <= best.payback_months + near]
    if not adds:
        return best, ""
    alt = adds[0]
    return alt, (f"Replacing {best.candidate.removed[0]} instead pays back in "
                 f"{months_text(best.payback_months)}, within {months_text(near)} of this: adding "
                 f"keeps {best.candidate.removed[0]} in service.")


def _owner_misses(r, replay_df: pd.DataFrame, weights: np.ndarray, owner: str) -> float:
    """Requests a month of `owner`'s work not done in time in a replay."""
    f = r.failures
    if f is None or f.empty:
        return 0.0
    rows = f["row"].to_numpy()
    mine = replay_df["owner"].astype(str).to_numpy()[rows] == owner
    return float(weights[rows][mine].sum())


def _judge_replay(e: Evaluation, baseline: Evaluation, causes: list[Cause], replay_df: pd.DataFrame,
                  weights: np.ndarray) -> None:
    """What the replay says beyond money: which of today's failures it fixes, and (for a
    replacement) whether the replaced node's owner is served at least as well as today."""
    failed = set() if e.replay.failures is None else set(e.replay.failures["row"].tolist())
    for c in causes:
        done = np.array([row not in failed for row in c.rows.tolist()], dtype=bool)
        e.fixes[c.key] = float(weights[c.rows][done].sum()) if c.rows.size else 0.0
    if e.candidate.kind != "replace":
        return
    for nid in e.candidate.removed:
        owner = str(baseline.candidate.fleet.node(nid).owner)
        before = _owner_misses(baseline.replay, replay_df, weights, owner)
        after = _owner_misses(e.replay, replay_df, weights, owner)
        e.owner_misses_per_month[owner] = after
        if after > before + 0.5:
            e.eligible = False
            e.why_not = "; ".join(x for x in (e.why_not, (
                f"serves {owner}'s own work worse ({after - before:,.0f} more requests a month "
                "not done in time)")) if x)


def _replay_frame(df: pd.DataFrame, sample_days: int) -> tuple[DayPlan, pd.DataFrame, np.ndarray]:
    """The days the twin replays (all, or representative ones), their rows back to back, and
    each row's replay slot."""
    plan = plan_days(df, sample_days)
    if plan.sampled:
        replay_df, slot = subset_days(df, plan.days)
    else:
        replay_df, day = df.reset_index(drop=True), row_days(df, plan.period_s)
        slot = np.searchsorted(plan.days, day)
    return plan, replay_df, slot


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
    executor: RunExecutor | None = None,
) -> AdvisorReport:
    """Advise what to buy. `trace`: a Trace, trace DataFrame or path; `fleet`: Fleet or path;
    `devices`: the purchasable devices (default: the whole shipped catalog); `executor`: where
    the twin replays run (default: `settings.workers` local processes; `heddle.sim.executors`)."""
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
    slices = make_slices(df, max(profile.peak_hour_requests_per_s / mean_rate, 1.0),
                         request_values(df, settings))
    plan, replay_df, slot = _replay_frame(df, settings.sample_days)
    values = request_values(replay_df, settings)
    weights = monthly_weights(plan, slot)
    t["analysis"] = time.perf_counter() - t0

    def replay(fleets: list[tuple[str, Fleet]]):
        return replay_fleets(fleets, replay_df, slot, policy=settings.policy, seed=settings.seed,
                             workers=settings.workers, values=values, executor=executor)

    say("replaying the current fleet in the twin")
    t1 = time.perf_counter()
    (base_replay,) = replay([("current fleet", fleet)])
    if base_replay.privacy_violations:
        raise AdvisorError("the current fleet's replay broke privacy: the twin is not trustworthy")
    causes = diagnose(replay_df, base_replay, slot, plan, fleet, values)
    t["twin"] = time.perf_counter() - t1

    say("screening candidates")
    t2 = time.perf_counter()
    scr = screen(fleet, slices, devices if devices is not None else catalog_devices(), settings,
                 causes, owner_needs(df))
    t["screen"] = time.perf_counter() - t2

    changes = [Estimate(c, scr.baseline.mix, 0.0, 0.0, 0.0, serves_personal_locally(c.fleet, slices))
               for c in free_changes(fleet, causes)]
    say(f"replaying {len(scr.shortlist) - 1 + len(changes)} candidate fleets in the twin")
    t3 = time.perf_counter()
    runs = scr.shortlist[1:] + changes
    replays = [base_replay] + replay([(e.candidate.name, e.candidate.fleet) for e in runs])
    change_replays = replays[len(scr.shortlist):]
    replays = replays[:len(scr.shortlist)]
    t["twin"] += time.perf_counter() - t3

    t4 = time.perf_counter()
    base_costs = daily_costs(base_replay, plan)
    rng = np.random.default_rng(settings.seed)
    evals = [evaluate(e, r, base_costs, plan, settings, profile.growth_per_year, rng)
             for e, r in zip(scr.shortlist, replays)]
    baseline, others = evals[0], evals[1:]
    done = [evaluate(e, r, base_costs, plan, settings, profile.growth_per_year, rng)
            for e, r in zip(changes, change_replays)]
    for e in others + done:
        _judge_replay(e, baseline, causes, replay_df, weights)
    others.sort(key=lambda e: (-e.npv_usd, e.candidate.net_usd, e.candidate.name))
    best, note = _pick([e for e in others if _trustworthy(e, settings)])
    current = cloud_use(replay_df, base_replay, base_costs, plan, slices, fleet)
    sentence = recommendation_sentence(best, others, settings, causes, note, done)
    t["roi"] = time.perf_counter() - t4
    t["total"] = time.perf_counter() - t0
    return AdvisorReport(settings, fleet.name, label, profile, current, len(scr.estimates) + 1, scr,
                         plan, others, baseline, best, sentence, causes, note, done, t)


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
                 report: AdvisorReport, executor: RunExecutor | None) -> tuple[Evaluation, float, DayPlan]:
    settings = report.settings
    plan, replay_df, slot = _replay_frame(df, sample_days)
    t0 = time.perf_counter()
    base, mine = replay_fleets(fleets, replay_df, slot, policy=settings.policy, seed=settings.seed,
                               workers=settings.workers, values=request_values(replay_df, settings),
                               executor=executor)
    wall = time.perf_counter() - t0
    ev = evaluate(pick.estimate, mine, daily_costs(base, plan), plan, settings,
                  report.profile.growth_per_year, np.random.default_rng(settings.seed))
    return ev, wall, plan


def check_sampling(report: AdvisorReport, trace: Any, *,
                   executor: RunExecutor | None = None) -> SamplingCheck:
    """Replay the current fleet and the recommended (else the best) candidate on the sampled
    days and on every day of the trace; compare the two paybacks and the twin's run times."""
    pick = report.recommended or (report.evaluations[0] if report.evaluations else None)
    if pick is None:
        raise AdvisorError("no candidate to check")
    df, _ = _frame(trace)
    fleets = [("current fleet", report.baseline.candidate.fleet),
              (pick.candidate.name, pick.candidate.fleet)]
    sampled, sampled_s, plan_s = _replay_pair(df, report.settings.sample_days, fleets, pick, report, executor)
    full, full_s, plan_f = _replay_pair(df, 0, fleets, pick, report, executor)
    return SamplingCheck(pick.candidate.name, sampled.payback_months, full.payback_months,
                         sampled.savings_usd_per_month["total"], full.savings_usd_per_month["total"],
                         sampled_s, full_s, int(plan_s.days.size), int(plan_f.n_days))
