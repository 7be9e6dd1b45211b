"""Cost model: units and pricing rules a user would check against a bill."""

import pytest

from heddle.models import catalog, cost, perf
from heddle.models.errors import ModelsError


def test_energy_units():
    assert cost.energy_kwh(1000, 3600) == pytest.approx(1.0)
    assert cost.energy_usd(100, 36000, 0.30) == pytest.approx(0.30)


def test_amortization_spreads_the_price_over_the_life():
    per_hour = cost.amortization_usd_per_hour(4999, 5)
    assert per_hour * 5 * 8760 == pytest.approx(4999)
    with pytest.raises(ModelsError):
        cost.amortization_usd_per_hour(100, 0)


def test_api_cost_per_million_tokens_and_long_context_and_cache():
    sonnet = catalog.offer("claude-sonnet-4.6")
    assert cost.api_cost_usd(sonnet, 100_000, 0) == pytest.approx(0.3)
    assert cost.api_cost_usd(sonnet, 0, 1_000_000) == pytest.approx(15.0)
    # above 200K prompt tokens the whole call is billed at 6 / 22.50
    assert cost.api_cost_usd(sonnet, 300_000, 1000) == pytest.approx((300_000 * 6 + 1000 * 22.5) / 1e6)
    assert cost.api_cost_usd(sonnet, 0, 0, cached_input_tokens=100_000) == pytest.approx(0.03)
    opus = catalog.offer("claude-opus-4.6")
    assert cost.api_cost_usd(opus, 2000, 500) > cost.api_cost_usd(catalog.offer("claude-haiku-4.5"), 2000, 500)
    with pytest.raises(ModelsError, match="per hour"):
        cost.api_cost_usd(catalog.offer("aws-g5.xlarge"), 1, 1)


def test_instance_billing_per_second_with_a_minute_minimum():
    g5 = catalog.offer("aws-g5.xlarge")
    assert cost.instance_cost_usd(g5, 3600) == pytest.approx(1.006)
    assert cost.instance_cost_usd(g5, 10) == pytest.approx(cost.instance_cost_usd(g5, 60))
    assert cost.instance_cost_usd(g5, 90.2) == pytest.approx(1.006 * 91 / 3600)
    assert cost.instance_cost_usd(g5, 0) == 0
    with pytest.raises(ModelsError, match="per token"):
        cost.instance_cost_usd(catalog.offer("claude-opus-4.6"), 10)


def test_step_energy_is_marginal_by_default():
    d = catalog.device("m2-ultra-76")
    step = perf.llm_step(d, catalog.model("llama-3.1-8b"), "q4_k_m", 2000, 500, resident=False)
    marginal = cost.step_energy_kwh(d, step)
    total = cost.step_energy_kwh(d, step, marginal=False)
    assert 0 < marginal < total
    assert total == pytest.approx(
        cost.energy_kwh(d.typical_power_w, step.prefill_s + step.decode_s)
        + cost.energy_kwh((d.idle_power_w + d.typical_power_w) / 2, step.load_s)
    )
    assert cost.step_power_w(d, "idle") == d.idle_power_w
    with pytest.raises(ModelsError):
        cost.step_power_w(d, "sleep")


def test_local_step_is_cheaper_than_the_api_for_a_long_generation():
    d = catalog.device("m4-pro-20")
    step = perf.llm_step(d, catalog.model("llama-3.1-8b"), "q4_k_m", 4000, 1000)
    local_usd = cost.step_energy_kwh(d, step) * 0.30
    assert local_usd < cost.api_cost_usd(catalog.offer("claude-haiku-4.5"), 4000, 1000)
