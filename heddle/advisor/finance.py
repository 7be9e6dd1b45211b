"""Money over time: payback, TCO, NPV and break-even request rate for one purchase.

Pure functions on floats and numpy arrays. A purchase costs `price_usd` at month 0 and then
saves `monthly_savings_usd[m]` in month m (m = 0 .. horizon-1, paid at the end of the month).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "break_even_requests_per_day",
    "discount_factors",
    "growth_schedule",
    "npv_usd",
    "payback_months",
    "tco_usd",
]


def growth_schedule(
    base_usd: float, months: int, growth_per_year: float = 0.0, cap_factor: float = math.inf
) -> np.ndarray:
    """Monthly amounts that start at `base_usd` and compound by `growth_per_year`.

    `cap_factor` bounds the multiplier: a device cannot save more than its capacity allows, so
    the evaluation passes the headroom (capacity / current load) here.
    """
    m = np.arange(months, dtype=np.float64)
    factor = (1.0 + growth_per_year) ** (m / 12.0) if growth_per_year > -1 else np.zeros(months)
    return base_usd * np.minimum(factor, cap_factor)


def payback_months(price_usd: float, monthly_savings_usd: float | np.ndarray) -> float:
    """Months until cumulative savings reach the price (inf if they never do).

    A constant saving gives exactly price / saving. A schedule is walked month by month and
    interpolated linearly inside the month that crosses the price; past the schedule's end the
    last month's saving is assumed to continue.
    """
    if price_usd <= 0:
        return 0.0
    if np.isscalar(monthly_savings_usd):
        s = float(monthly_savings_usd)
        return price_usd / s if s > 0 else math.inf
    sched = np.asarray(monthly_savings_usd, dtype=np.float64)
    if sched.size == 0:
        return math.inf
    cum = np.cumsum(sched)
    hit = np.nonzero(cum >= price_usd)[0]
    if hit.size:
        k = int(hit[0])
        before = cum[k - 1] if k else 0.0
        return k + (price_usd - before) / sched[k]
    last = sched[-1]
    if last <= 0:
        return math.inf
    return sched.size + (price_usd - cum[-1]) / last


def discount_factors(months: int, discount_rate_annual: float) -> np.ndarray:
    """End-of-month discount factors 1 / (1 + r)^((m + 1) / 12)."""
    m = np.arange(1, months + 1, dtype=np.float64)
    return (1.0 + discount_rate_annual) ** (-m / 12.0)


def npv_usd(price_usd: float, monthly_savings_usd: np.ndarray, discount_rate_annual: float) -> float:
    """Net present value of buying: minus the price plus the discounted monthly savings."""
    sched = np.asarray(monthly_savings_usd, dtype=np.float64)
    return float(-price_usd + sched @ discount_factors(sched.size, discount_rate_annual))


def tco_usd(price_usd: float, monthly_operating_usd: float | np.ndarray, months: int) -> float:
    """Total cost of ownership over `months`: purchase plus operating cost (cloud, energy,
    the value of missed deadlines), undiscounted as owners usually read a TCO."""
    if np.isscalar(monthly_operating_usd):
        return float(price_usd + float(monthly_operating_usd) * months)
    return float(price_usd + np.sum(np.asarray(monthly_operating_usd)[:months]))


def break_even_requests_per_day(
    price_usd: float,
    savings_per_request_usd: float,
    fixed_monthly_usd: float,
    months: int,
    discount_rate_annual: float,
    days_per_month: float,
) -> float:
    """Request rate (per day) at which the purchase's NPV over `months` is exactly zero.

    Savings are modelled as linear in the rate: monthly = rate * days * per_request - fixed
    (fixed = the new hardware's idle energy). inf when a request saves nothing.
    """
    if savings_per_request_usd <= 0:
        return math.inf
    annuity = float(discount_factors(months, discount_rate_annual).sum())
    monthly_needed = price_usd / annuity + fixed_monthly_usd
    return max(0.0, monthly_needed / (savings_per_request_usd * days_per_month))
