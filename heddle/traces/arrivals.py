"""Arrival processes: Poisson modulated by a diurnal profile, weekly growth and MMPP bursts.

The intensity is  rate(t) = base * diurnal(t) * growth(t) * burst(t)  where each factor has
mean 1 over its own cycle, so `base` stays the mean rate in the first week:
  diurnal(t) = 1 + A cos(2 pi (hour(t) - peak) / 24)        (A in [0, 1))
  growth(t)  = (1 + g) ** (t / week)                          (week-over-week growth g)
  burst(t)   = calm or calm * factor, switching as a two-state Markov chain (an MMPP) whose
               sojourns are exponential; calm is chosen so the stationary mean is 1.
Arrivals are drawn by thinning (Lewis & Shedler 1979): candidates from a homogeneous Poisson
process at the peak intensity, each kept with probability rate(t) / peak.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ArrivalProcess", "sample_arrivals"]

SECONDS_PER_DAY = 86_400.0
SECONDS_PER_WEEK = 7 * SECONDS_PER_DAY


@dataclass(frozen=True, slots=True)
class ArrivalProcess:
    """Parameters of the modulated Poisson process (see the module docstring)."""

    rate_per_s: float
    diurnal_amplitude: float = 0.0
    peak_hour: float = 14.0
    growth_per_week: float = 0.0
    burst_factor: float = 1.0  # 1 = no bursts
    burst_mean_s: float = 300.0
    calm_mean_s: float = 3_600.0

    def __post_init__(self) -> None:
        if self.rate_per_s < 0:
            raise ValueError("rate must be >= 0")
        if not 0 <= self.diurnal_amplitude < 1:
            raise ValueError("diurnal_amplitude must be in [0, 1)")
        if self.growth_per_week <= -1:
            raise ValueError("growth_per_week must be > -1")
        if self.burst_factor < 1 or self.burst_mean_s <= 0 or self.calm_mean_s <= 0:
            raise ValueError("burst_factor must be >= 1 and sojourn means > 0")

    @property
    def burst_probability(self) -> float:
        """Stationary share of time spent bursting."""
        return self.burst_mean_s / (self.burst_mean_s + self.calm_mean_s)

    @property
    def calm_multiplier(self) -> float:
        p = self.burst_probability
        return 1.0 / (1.0 - p + p * self.burst_factor)

    def diurnal(self, t_s: np.ndarray) -> np.ndarray:
        hour = (t_s / 3600.0) % 24.0
        return 1.0 + self.diurnal_amplitude * np.cos(2 * np.pi * (hour - self.peak_hour) / 24.0)

    def growth(self, t_s: np.ndarray) -> np.ndarray:
        return (1.0 + self.growth_per_week) ** (t_s / SECONDS_PER_WEEK)


def _burst_switches(
    process: ArrivalProcess, duration_s: float, rng: np.random.Generator
) -> np.ndarray:
    """Times at which the MMPP changes state, starting calm at t=0 (alternating states)."""
    if process.burst_factor == 1.0:
        return np.empty(0)
    # enough sojourns for the horizon on average, topped up if the draw falls short
    n = int(2 * duration_s / (process.burst_mean_s + process.calm_mean_s)) + 16
    edges: list[np.ndarray] = []
    end = 0.0
    while end < duration_s:
        calm = rng.exponential(process.calm_mean_s, n)
        burst = rng.exponential(process.burst_mean_s, n)
        steps = np.column_stack([calm, burst]).ravel()
        times = end + np.cumsum(steps)
        edges.append(times)
        end = float(times[-1])
    switches = np.concatenate(edges)
    return switches[switches < duration_s]


def sample_arrivals(
    process: ArrivalProcess, duration_s: float, rng: np.random.Generator
) -> np.ndarray:
    """Sorted arrival times in [0, duration_s) drawn from `process`."""
    if duration_s <= 0 or process.rate_per_s == 0:
        return np.empty(0)
    switches = _burst_switches(process, duration_s, rng)
    burst_top = process.calm_multiplier * (process.burst_factor if len(switches) else 1.0)
    peak = (process.rate_per_s * (1 + process.diurnal_amplitude)
            * max(1.0, float(process.growth(np.array(duration_s))))
            * (burst_top if len(switches) else 1.0))
    n = rng.poisson(peak * duration_s)
    candidates = np.sort(rng.uniform(0.0, duration_s, n))
    intensity = process.rate_per_s * process.diurnal(candidates) * process.growth(candidates)
    if len(switches):
        # odd number of switches before t = inside a burst
        bursting = np.searchsorted(switches, candidates, side="right") % 2 == 1
        intensity = intensity * process.calm_multiplier * np.where(
            bursting, process.burst_factor, 1.0)
    keep = rng.uniform(0.0, peak, n) < intensity
    return candidates[keep]
