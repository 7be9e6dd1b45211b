"""Advisor benchmark: a 30-day trace, 20+ candidates, sampled days vs a full replay.

    uv run python benchmarks/bench_advisor.py            # 30 days, ~800 requests/day
    uv run python benchmarks/bench_advisor.py --quick    # 30 days, ~300 requests/day

Prints: the advice run's wall time (goal <= 120 s on 2 cores) with the number of candidates
priced and replayed; then, for the recommended candidate, the payback from representative
sampled days and from a replay of every day (goal: within 5%), and the ratio of the twin's
run times (full / sampled) measured in the same run.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from heddle.advisor import AdvisorSettings, advise
from heddle.advisor.advise import check_sampling
from heddle.models import catalog
from heddle.models.fleet_types import Budget, Fleet, Node
from heddle.models.ids import AccountId
from heddle.traces import Trace

DAY_S = 86_400.0
DIURNAL = np.array([1, 1, 1, 1, 1, 2, 3, 6, 9, 10, 10, 9, 8, 9, 10, 10, 9, 7, 5, 4, 3, 2, 2, 1], float)
"""An office day: quiet nights, a morning and an afternoon peak (shape only; scaled below)."""
WEEKLY = np.array([1.0, 1.0, 1.0, 1.0, 0.9, 0.35, 0.3])
"""Five working days and a quiet weekend."""

# (share, model, quant, prompt mean, output mean, privacy, owner, deadline_s)
MIX = [
    (0.45, "llama-3.1-8b", "q4_k_m", 900, 250, "public", "alice", 60.0),
    (0.20, "qwen2.5-32b", "q4_k_m", 1500, 300, "sensitive", "alice", 900.0),
    (0.20, "llama-3.1-70b", "q4_k_m", 1200, 300, "personal", "alice", 3600.0),
    (0.15, "gpt-oss-20b", "q4_k_m", 2000, 400, "public", "bob", 120.0),
]


def make_trace(per_day: float, days: int, growth_per_week: float, seed: int) -> Trace:
    rng = np.random.default_rng(seed)
    parts = []
    for d in range(days):
        n = rng.poisson(per_day * WEEKLY[d % 7] * (1 + growth_per_week) ** (d / 7))
        hours = rng.choice(24, size=n, p=DIURNAL / DIURNAL.sum())
        parts.append(d * DAY_S + hours * 3600 + rng.uniform(0, 3600, n))
    arr = np.sort(np.concatenate(parts))
    n = arr.size
    kind = rng.choice(len(MIX), size=n, p=[m[0] for m in MIX])
    col = lambda k: np.array([m[k] for m in MIX], dtype=object)[kind]
    df = pd.DataFrame({
        "arrival_s": arr, "kind": "llm", "model": col(1), "quant": col(2),
        "prompt_tokens": np.maximum(16, rng.exponential(col(3).astype(float))).astype(np.int32),
        "output_tokens": np.maximum(8, rng.exponential(col(4).astype(float))).astype(np.int32),
        "cpu_seconds": np.zeros(n, np.float32), "memory_gb": np.zeros(n, np.float32),
        "privacy": col(5), "owner": col(6), "deadline_s": col(7).astype(float), "tier": "",
        "account": "office", "priority": np.zeros(n, np.int8), "pipeline_id": "", "stage": "",
        "depends_on": "", "task_id": [f"r{i}" for i in range(n)],
    })
    return Trace.from_frame(df, {"name": f"bench-{days}d"})


def make_fleet() -> Fleet:
    nodes = (
        Node("mini", catalog.device("m4-pro-20"), 48.0, "alice", frozenset({"bob"}), slots=2,
             reserved_memory_gb=6.0),
        Node("bob-air", catalog.device("m3-10"), 24.0, "bob", frozenset(), slots=1,
             reserved_memory_gb=8.0, labels={"form_factor": "laptop"}),
    )
    offers = tuple(catalog.offer(o) for o in ("claude-haiku-4.5", "claude-sonnet-4.6"))
    return Fleet("bench-office", nodes, offers,
                 {AccountId("office"): Budget(AccountId("office"), 400.0, "month")}, 0.25)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="~300 requests/day instead of ~800")
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--per-day", type=float, default=None, help="mean requests per working day")
    ap.add_argument("--sample-days", type=int, default=8)
    ap.add_argument("--shortlist", type=int, default=6, help="candidates replayed in the twin")
    args = ap.parse_args()
    per_day = args.per_day or (300 if args.quick else 800)
    trace = make_trace(per_day, args.days, 0.02, seed=1)
    fleet = make_fleet()
    settings = AdvisorSettings(budget_usd=8_000, miss_value_usd=0.05, sample_days=args.sample_days,
                               shortlist=args.shortlist, seed=0, workers=2)
    print(f"trace: {len(trace):,} requests over {args.days} days; fleet {fleet.name} "
          f"({len(fleet.nodes)} nodes)")
    t0 = time.perf_counter()
    report = advise(trace, fleet, settings)
    advise_s = time.perf_counter() - t0
    print(f"advise: {advise_s:.1f} s wall (goal <= 120 s); {report.screened} candidates priced "
          f"analytically, {len(report.evaluations) + 1} fleets replayed on "
          f"{report.plan.days.size} of {report.plan.n_days} days; timings "
          + ", ".join(f"{k} {v:.1f} s" for k, v in report.timings_s.items()))
    print(f"recommendation: {report.sentence}")
    print(f"privacy violations across all replays: {report.privacy_violations}")
    chk = check_sampling(report, trace)
    print(f"candidate checked: {chk.candidate}")
    print(f"payback, sampled {chk.days_sampled} days: {chk.sampled_payback_months:.2f} months "
          f"(saves {chk.sampled_savings_usd_per_month:,.1f} USD/month)")
    print(f"payback, full replay of {chk.days_total} days: {chk.full_payback_months:.2f} months "
          f"(saves {chk.full_savings_usd_per_month:,.1f} USD/month)")
    print(f"sampled vs full payback error: {chk.payback_error:.2%} (goal <= 5%)")
    print(f"twin time for the same two fleets: sampled {chk.sampled_twin_s:.1f} s, full "
          f"{chk.full_twin_s:.1f} s, ratio full/sampled {chk.full_twin_s / chk.sampled_twin_s:.2f}x")


if __name__ == "__main__":
    main()
