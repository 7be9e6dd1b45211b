"""Money arithmetic, checked against figures computed by hand in each test."""

import math

import numpy as np
import pytest

from heddle.advisor import finance


def test_constant_saving_pays_back_in_price_over_saving():
    assert finance.payback_months(3_000.0, 250.0) == pytest.approx(12.0)


def test_no_saving_never_pays_back_and_free_purchase_pays_back_at_once():
    assert finance.payback_months(1_000.0, 0.0) == math.inf
    assert finance.payback_months(1_000.0, -5.0) == math.inf
    assert finance.payback_months(0.0, 10.0) == 0.0


def test_schedule_payback_interpolates_inside_the_crossing_month():
    # 100, 200, 300, ... cumulative 100, 300, 600: 450 is reached halfway through month 3
    assert finance.payback_months(450.0, np.array([100.0, 200.0, 300.0])) == pytest.approx(2.5)


def test_schedule_payback_continues_the_last_month_past_the_end():
    assert finance.payback_months(500.0, np.array([100.0, 100.0])) == pytest.approx(5.0)


def test_growth_schedule_compounds_yearly_and_respects_the_cap():
    s = finance.growth_schedule(100.0, 25, growth_per_year=1.0)
    assert s[0] == pytest.approx(100.0) and s[12] == pytest.approx(200.0) and s[24] == pytest.approx(400.0)
    capped = finance.growth_schedule(100.0, 25, growth_per_year=1.0, cap_factor=1.5)
    assert capped.max() == pytest.approx(150.0)


def test_npv_without_discount_is_total_saving_minus_price():
    assert finance.npv_usd(1_000.0, np.full(36, 50.0), 0.0) == pytest.approx(36 * 50.0 - 1_000.0)


def test_npv_discounts_end_of_month_cash():
    # one saving of 1,000 at the end of month 12 at 10%/year is worth 1,000 / 1.1 today
    sched = np.zeros(12)
    sched[11] = 1_000.0
    assert finance.npv_usd(0.0, sched, 0.10) == pytest.approx(1_000.0 / 1.1)


def test_tco_adds_operating_cost_over_the_horizon():
    assert finance.tco_usd(2_000.0, 100.0, 36) == pytest.approx(5_600.0)


def test_break_even_rate_makes_npv_zero():
    price, per_req, fixed, months, rate = 4_000.0, 0.01, 5.0, 36, 0.08
    days = 30.4375
    r = finance.break_even_requests_per_day(price, per_req, fixed, months, rate, days)
    monthly = r * days * per_req - fixed
    assert finance.npv_usd(price, np.full(months, monthly), rate) == pytest.approx(0.0, abs=1e-6)
    assert finance.break_even_requests_per_day(price, 0.0, fixed, months, rate, days) == math.inf
