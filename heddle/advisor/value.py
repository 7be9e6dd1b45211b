"""What a request that is not done in time is worth: the price of work that fails.

A rejected request, a failed one and one that finishes after its deadline all cost their owner
something; a purchase that serves them is worth that much more. The value is per request:

  * an owner who states a value for a task priority (`miss_value_usd_by_priority`) gets it;
  * otherwise a flat value (`miss_value_usd`), when set;
  * otherwise (the default) what the same request would cost on the cheapest cloud API of the
    tier it asked for: the price of getting the work done elsewhere. A request with no tier
    preference (or "local") is priced at the cheapest API of any tier; one naming a catalog
    API offer as its model (as the gateway records `claude-sonnet-4.6`), at that offer's price
    (`models.cost.api_cost_usd`, long-context rates included). Processor steps (CPU work no
    API sells) are worth 0 by default.

The default is deliberately modest: it says what the work costs to buy, not what it is worth
to the business. An owner whose rejected requests matter more sets the value, and the report
says how high it would have to be for each purchase to pay back.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from heddle.advisor.settings import AdvisorSettings
from heddle.models import catalog
from heddle.models.cost import api_cost_usd
from heddle.models.ids import OfferKind
from heddle.models.specs import CloudOffer

__all__ = ["TIER_ANY", "describe_value", "request_values", "tier_prices"]

TIER_ANY = ""
"""A request with no tier preference (or `local`) is priced at the cheapest API of any tier."""


def tier_prices(offers: dict | None = None) -> dict[str, tuple[float, float, str]]:
    """Tier -> (USD per M input tokens, USD per M output tokens, offer id) of the cheapest API
    offer of that tier (by the price of a 1,000 + 200 token request); "" = any tier."""
    if offers is None:
        offers = catalog.offers()
    best: dict[str, tuple[float, float, str]] = {}

    def cost(p: tuple[float, float, str]) -> float:
        return p[0] * 1000 + p[1] * 200

    for o in offers.values():
        if not isinstance(o, CloudOffer) or o.kind is not OfferKind.API:
            continue
        price = (o.price_usd_per_m_input_tokens, o.price_usd_per_m_output_tokens, str(o.id))
        for tier in (o.tier.value, TIER_ANY):
            if tier not in best or cost(price) < cost(best[tier]):
                best[tier] = price
    return best


def request_values(df: pd.DataFrame, settings: AdvisorSettings,
                   prices: dict[str, tuple[float, float, str]] | None = None) -> np.ndarray:
    """USD value of each row of a trace frame if it is not done in time (see the module doc)."""
    n = len(df)
    prices = tier_prices() if prices is None else prices
    if settings.miss_value_usd is not None:
        value = np.full(n, float(settings.miss_value_usd))
    else:
        value = np.zeros(n)
        tier = df["tier"].astype(str).to_numpy() if "tier" in df.columns else np.full(n, "")
        tier = np.where(tier == "local", TIER_ANY, tier)
        llm = df["kind"].astype(str).to_numpy() == "llm"
        prompt = df["prompt_tokens"].to_numpy(np.float64)
        output = df["output_tokens"].to_numpy(np.float64)
        for t in np.unique(tier):
            p_in, p_out, _ = prices.get(str(t), prices.get(TIER_ANY, (0.0, 0.0, "")))
            rows = (tier == t) & llm
            value[rows] = (prompt[rows] * p_in + output[rows] * p_out) / 1e6
        offers = catalog.api_offers()
        model = df["model"].astype(str).to_numpy() if "model" in df.columns else np.full(n, "")
        for m in sorted(set(model[llm]) & offers.keys()):  # an offer named: its own price
            rows = np.flatnonzero(llm & (model == m))
            value[rows] = [api_cost_usd(offers[m], p, o) for p, o in zip(prompt[rows], output[rows])]
    if settings.miss_value_usd_by_priority and "priority" in df.columns:
        prio = df["priority"].to_numpy(np.int64)
        for p, v in settings.miss_value_usd_by_priority.items():
            value[prio == int(p)] = float(v)
    return value


def describe_value(settings: AdvisorSettings) -> str:
    """The value rule in one phrase, for the report."""
    parts = []
    if settings.miss_value_usd is not None:
        parts.append(f"{settings.miss_value_usd:g} USD per request")
    else:
        prices = tier_prices()
        named = ", ".join(f"{t or 'no tier'}: {prices[t][2]}" for t in sorted(prices))
        parts.append(f"the request's price on the cheapest cloud API of the tier it asked for ({named}), "
                     "or on the API offer it names")
    for p, v in sorted(settings.miss_value_usd_by_priority.items()):
        parts.append(f"priority {p}: {v:g} USD per request")
    return "; ".join(parts)

