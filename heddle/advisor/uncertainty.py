"""How sure is a payback figure: bootstrapped days, growth scenarios, sensitivities.

Days are resampled with replacement (a seeded `numpy.random.Generator`, weights = the days
each replayed day stands for), each resample gives a monthly saving, and each growth scenario
turns that into a payback month. Savings grow with the request rate only up to the
purchase's headroom (`cap_factor`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from heddle.advisor import finance
from heddle.advisor.settings import DAYS_PER_MONTH

__all__ = ["Uncertainty", "bootstrap_monthly", "payback_uncertainty", "percentiles"]

PAYBACK_CEILING_MONTHS = 240.0
"""Paybacks beyond 20 years (or never) are reported as this in distributions and charts."""


def bootstrap_monthly(daily_usd: np.ndarray, weight_days: np.ndarray, n_draw: int,
                      samples: int, rng: np.random.Generator) -> np.ndarray:
    """Monthly savings of `samples` resampled months of `n_draw` days each."""
    p = weight_days / weight_days.sum()
    idx = rng.choice(daily_usd.size, size=(samples, max(n_draw, 1)), replace=True, p=p)
    return daily_usd[idx].mean(axis=1) * DAYS_PER_MONTH


def percentiles(values: np.ndarray) -> dict[str, float]:
    v = np.minimum(np.asarray(values, dtype=np.float64), PAYBACK_CEILING_MONTHS)
    p10, p50, p90 = np.percentile(v, [10, 50, 90])
    return {"p10": float(p10), "p50": float(p50), "p90": float(p90)}


@dataclass(slots=True)
class Uncertainty:
    by_scenario: dict[str, dict[str, float]]  # scenario -> p10/p50/p90 payback months
    pooled: dict[str, float]
    samples: np.ndarray  # pooled payback samples (capped), for the histogram
    sensitivity_electricity: dict[str, float] = field(default_factory=dict)  # factor -> payback
    sensitivity_growth: dict[str, float] = field(default_factory=dict)  # growth/yr -> payback

    def as_dict(self) -> dict:
        return {"by_scenario": self.by_scenario, "pooled": self.pooled,
                "sensitivity_electricity": self.sensitivity_electricity,
                "sensitivity_growth": self.sensitivity_growth}


def _payback(price: float, monthly: float, growth: float, cap: float, months: int) -> float:
    if growth == 0.0:
        return finance.payback_months(price, monthly)
    sched = finance.growth_schedule(monthly, max(months, int(PAYBACK_CEILING_MONTHS)), growth, cap)
    return finance.payback_months(price, sched)


def payback_uncertainty(
    price_usd: float,
    daily_savings_usd: np.ndarray,
    daily_energy_usd: np.ndarray,
    weight_days: np.ndarray,
    n_days: int,
    scenarios: dict[str, float],
    cap_factor: float,
    *,
    months: int,
    samples: int,
    electricity_factors: tuple[float, ...],
    rng: np.random.Generator,
) -> Uncertainty:
    """`daily_savings_usd` per replayed day (per-day equivalents, energy part included);
    `daily_energy_usd` is that energy part alone (scaled for the electricity sensitivity)."""
    monthly = bootstrap_monthly(daily_savings_usd, weight_days, n_days, samples, rng)
    by, pooled = {}, []
    for name, g in scenarios.items():
        pb = np.array([_payback(price_usd, m, g, cap_factor, months) for m in monthly])
        by[name] = percentiles(pb)
        pooled.append(pb)
    allpb = np.minimum(np.concatenate(pooled), PAYBACK_CEILING_MONTHS)
    w = weight_days / weight_days.sum()
    point = float(daily_savings_usd @ w) * DAYS_PER_MONTH
    energy = float(daily_energy_usd @ w) * DAYS_PER_MONTH
    elec = {f"{f:g}x": _cap(finance.payback_months(price_usd, point + (f - 1.0) * energy))
            for f in electricity_factors}
    growth = {f"{g:+.0%}/yr": _cap(_payback(price_usd, point, g, cap_factor, months))
              for g in sorted(set(scenarios.values()))}
    return Uncertainty(by, percentiles(allpb), allpb, elec, growth)


def _cap(x: float) -> float:
    return float(min(x, PAYBACK_CEILING_MONTHS)) if math.isfinite(x) else PAYBACK_CEILING_MONTHS
