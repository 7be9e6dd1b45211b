"""Cloud offers in the twin: per-token billing, rate limits, instance start-up and billing."""

from __future__ import annotations

import numpy as np

from heddle.models import Budget, OfferId, OfferKind, Tier, cost
from heddle.models.specs import CloudOffer
from heddle.sim import simulate
from tests.sim.conftest import api_offer, llm_trace, make_fleet


def _cloud_only(offer: CloudOffer, limit_usd: float = 100.0):
    return make_fleet(0, offers=(offer,), budgets={"acct": Budget("acct", limit_usd)})


def test_api_calls_are_billed_per_token_and_spend_adds_up() -> None:
    n = 20
    df = llm_trace(np.arange(n) * 1.0, np.full(n, 1000), np.full(n, 200), account="acct")
    offer = api_offer()
    result = simulate(_cloud_only(offer), df, "fast")
    rec = result.records
    assert (rec["status"] == "completed").all() and (rec["target"] == "test-api").all()
    np.testing.assert_allclose(rec["cost_usd"], cost.api_cost_usd(offer, 1000, 200))
    assert abs(result.summary.cloud_spend_usd - rec["cost_usd"].sum()) < 1e-12
    # network round trip + prompt at the offer's prefill speed before the first token
    np.testing.assert_allclose(rec["ttft"], 0.3 + 1000 / 3000.0)


def test_rate_limit_spaces_requests_to_the_limit() -> None:
    n = 10
    df = llm_trace(np.zeros(n), np.full(n, 100), np.full(n, 10), account="acct")
    rec = simulate(_cloud_only(api_offer(rate_limit_rpm=3)), df, "fast").records
    starts = np.sort(rec["start"].to_numpy())
    for k in range(n - 3):  # any 4 consecutive sends span at least one minute
        assert starts[k + 3] - starts[k] >= 60.0 - 1e-9
    assert starts[-1] >= 180.0


def test_instance_pays_start_up_once_and_its_bill_is_split_over_its_tasks() -> None:
    offer = CloudOffer(
        id=OfferId("test-gpu"), name="Test GPU", kind=OfferKind.INSTANCE, tier=Tier.LOCAL,
        price_usd_per_hour=3.6, startup_s=90.0, network_latency_s=0.05, gpu_count=1,
        gpu_memory_gb=24.0, gpu_bandwidth_gb_s=600.0, gpu_fp16_tflops=120.0,
    )
    n = 6
    df = llm_trace(np.arange(n) * 20.0, np.full(n, 500), np.full(n, 100), account="acct")
    result = simulate(_cloud_only(offer), df, "fast")
    rec = result.records
    assert (rec["status"] == "completed").all() and (rec["target"] == "test-gpu").all()
    assert rec["start"].iloc[0] == 90.0  # waited for the instance to boot
    assert (rec["start"].iloc[1:] < 90.0 + 100.0 + 20.0 * n).all()
    assert result.summary.cloud_spend_usd > 0
    assert abs(result.summary.cloud_spend_usd - rec["cost_usd"].sum()) < 1e-12
    # one session: from the first placement to keep-alive expiry after the last finish
    session_s = rec["finish"].max() + 300.0
    assert abs(result.summary.cloud_spend_usd - cost.instance_cost_usd(offer, session_s)) < 1e-3
