"""Bootstrap and sensitivity of the payback."""

import numpy as np
import pytest

from heddle.advisor.uncertainty import bootstrap_monthly, payback_uncertainty


def _run(seed, daily, energy=None, scenarios=None):
    return payback_uncertainty(
        1_200.0, daily, np.zeros_like(daily) if energy is None else energy, np.ones(daily.size),
        daily.size, scenarios or {"flat": 0.0, "+100%/yr": 1.0}, np.inf, months=36, samples=300,
        electricity_factors=(0.5, 1.0, 2.0), rng=np.random.default_rng(seed))


def test_same_seed_same_distribution_and_ordered_percentiles():
    daily = np.random.default_rng(0).gamma(4.0, 1.0, 30)  # about 4 USD a day, noisy
    a, b = _run(1, daily), _run(1, daily)
    assert np.array_equal(a.samples, b.samples)
    for band in [a.pooled, *a.by_scenario.values()]:
        assert band["p10"] <= band["p50"] <= band["p90"]


def test_steady_days_give_a_tight_band_around_price_over_saving():
    u = _run(0, np.full(30, 4.0), scenarios={"flat": 0.0})
    expected = 1_200.0 / (4.0 * 365.25 / 12)
    assert u.pooled["p10"] == pytest.approx(expected) and u.pooled["p90"] == pytest.approx(expected)


def test_growth_shortens_and_dearer_energy_lengthens_payback():
    daily = np.full(30, 4.0)
    energy = np.full(30, -1.0)  # the purchase costs 1 USD a day more in electricity
    u = _run(0, daily, energy)
    assert u.by_scenario["+100%/yr"]["p50"] < u.by_scenario["flat"]["p50"]
    assert u.sensitivity_electricity["2x"] > u.sensitivity_electricity["1x"] > u.sensitivity_electricity["0.5x"]


def test_bootstrap_spread_shrinks_with_more_days():
    rng = np.random.default_rng(2)
    daily = rng.normal(10.0, 5.0, 60)
    short = bootstrap_monthly(daily, np.ones(60), 7, 2_000, np.random.default_rng(0))
    long = bootstrap_monthly(daily, np.ones(60), 60, 2_000, np.random.default_rng(0))
    assert long.std() < short.std()
