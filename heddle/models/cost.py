"""Cost model, all in USD with the unit in every name: local energy, hardware amortization,
cloud instance time and hosted-API tokens.

Local work is charged its MARGINAL energy by default (power above idle: the machine is on
anyway); amortization is the purchase price spread over the service life, per calendar hour.
"""

from __future__ import annotations

import math

from heddle.models.errors import ModelsError
from heddle.models.ids import OfferKind
from heddle.models.perf import StepTime
from heddle.models.specs import CloudOffer, DeviceSpec

__all__ = [
    "HOURS_PER_YEAR",
    "INSTANCE_BILLING_INCREMENT_S",
    "INSTANCE_MINIMUM_BILLED_S",
    "amortization_usd_per_hour",
    "api_cost_usd",
    "energy_kwh",
    "energy_usd",
    "instance_cost_usd",
    "step_energy_kwh",
    "step_power_w",
]

HOURS_PER_YEAR = 8760.0
"""365 x 24 calendar hours."""

INSTANCE_MINIMUM_BILLED_S = 60.0
"""AWS bills on-demand Linux EC2 per second with a one-minute minimum (EC2 pricing page)."""

INSTANCE_BILLING_INCREMENT_S = 1.0
"""...in one-second increments after the minimum (EC2 pricing page)."""

J_PER_KWH = 3.6e6


def energy_kwh(power_w: float, seconds: float) -> float:
    """Energy of drawing `power_w` for `seconds`."""
    return power_w * seconds / J_PER_KWH


def energy_usd(power_w: float, seconds: float, usd_per_kwh: float) -> float:
    """Electricity cost of drawing `power_w` for `seconds` at `usd_per_kwh`."""
    return energy_kwh(power_w, seconds) * usd_per_kwh


def amortization_usd_per_hour(price_usd: float, service_life_years: float) -> float:
    """Straight-line depreciation of a purchase over its service life, per calendar hour."""
    if service_life_years <= 0:
        raise ModelsError(f"service_life_years must be > 0, got {service_life_years}")
    return price_usd / (service_life_years * HOURS_PER_YEAR)


def api_cost_usd(
    offer: CloudOffer, input_tokens: int, output_tokens: int, *, cached_input_tokens: int = 0
) -> float:
    """Price of one API call. Long prompts switch to the long-context prices when the offer
    lists them (extra: long_context_threshold_tokens, long_price_usd_per_m_*); cached input
    tokens are billed at `cache_read_price_factor` x the input price when given."""
    if offer.kind != OfferKind.API:
        raise ModelsError(f"offer {offer.id!r} is priced per hour; use instance_cost_usd()")
    extra = offer.extra
    in_price, out_price = offer.price_usd_per_m_input_tokens, offer.price_usd_per_m_output_tokens
    threshold = extra.get("long_context_threshold_tokens", 0.0)
    if threshold and input_tokens + cached_input_tokens > threshold:
        in_price = extra.get("long_price_usd_per_m_input_tokens", in_price)
        out_price = extra.get("long_price_usd_per_m_output_tokens", out_price)
    cache_factor = extra.get("cache_read_price_factor", 1.0)
    return (input_tokens * in_price + cached_input_tokens * in_price * cache_factor + output_tokens * out_price) / 1e6


def instance_cost_usd(offer: CloudOffer, seconds: float) -> float:
    """Price of running an instance for `seconds` (start-up included by the caller):
    per-second billing with a one-minute minimum."""
    if offer.kind != OfferKind.INSTANCE:
        raise ModelsError(f"offer {offer.id!r} is priced per token; use api_cost_usd()")
    if seconds <= 0:
        return 0.0
    billed_s = max(INSTANCE_MINIMUM_BILLED_S, math.ceil(seconds / INSTANCE_BILLING_INCREMENT_S) * INSTANCE_BILLING_INCREMENT_S)
    return offer.price_usd_per_hour * billed_s / 3600.0


def step_power_w(device: DeviceSpec, phase: str) -> float:
    """Wall power while a step is in `phase`: "prefill"/"decode" at the device's typical
    load power, "load" halfway between idle and typical (disk-bound), "idle" at idle."""
    if phase in ("prefill", "decode"):
        return device.typical_power_w
    if phase == "load":
        return (device.idle_power_w + device.typical_power_w) / 2
    if phase == "idle":
        return device.idle_power_w
    raise ModelsError(f"unknown phase {phase!r}; expected prefill, decode, load or idle")


def step_energy_kwh(device: DeviceSpec, step: StepTime, *, marginal: bool = True) -> float:
    """Energy of one step; `marginal` subtracts what the device draws idle anyway."""
    base = device.idle_power_w if marginal else 0.0
    busy_s = step.prefill_s + step.decode_s
    return energy_kwh(step_power_w(device, "decode") - base, busy_s) + energy_kwh(
        step_power_w(device, "load") - base, step.load_s
    )
