"""Catalog look-ups the advisor needs, plus the price of a memory option.

The device catalog prices the usual machine at its smallest memory option; buying more memory
costs extra. `machine_price_usd` adds that extra (from the catalog if it ever lists per-option
prices, otherwise an estimate with a named source).
"""

from __future__ import annotations

from functools import lru_cache

from heddle.models.specs import DeviceSpec, ModelSpec

__all__ = ["MEMORY_UPGRADE_USD_PER_GB", "catalog_devices", "machine_price_usd", "model_spec", "node_model"]

MEMORY_UPGRADE_USD_PER_GB = 25.0
"""Apple's build-to-order memory price: Mac mini M4 16 GB -> 32 GB costs +$400 (apple.com
configurator, 2025), i.e. $25 per GB. Used for every device whose catalog entry has no
per-option price (larger Mac Studio upgrades cost less per GB: this errs on the high side)."""


@lru_cache(maxsize=4096)
def model_spec(model_id: str) -> ModelSpec:
    """The catalog's ModelSpec for an id (raises the catalog's UnknownIdError if unknown)."""
    from heddle.models import catalog

    return catalog.model(model_id)


def node_model(model_id: str) -> ModelSpec | None:
    """The catalog model a node would run for a request naming `model_id`; None when no node
    may run it: no model (a tier: an API of that tier) or a catalog API offer (that offer)."""
    from heddle.models import catalog

    if not model_id or model_id in catalog.api_offers():
        return None
    return model_spec(model_id)


def catalog_devices() -> dict[str, DeviceSpec]:
    """Every device in the shipped catalog, by id."""
    from heddle.models import catalog

    return dict(catalog.devices())


def machine_price_usd(device: DeviceSpec, memory_gb: float) -> float:
    """Price of the device's usual machine configured with `memory_gb` of memory."""
    base_gb = min(device.memory_options_gb) if device.memory_options_gb else memory_gb
    by_option = getattr(device, "price_usd_by_memory_gb", None)
    if by_option and int(memory_gb) in by_option:
        return float(by_option[int(memory_gb)])
    return float(device.price_usd + max(0.0, memory_gb - base_gb) * MEMORY_UPGRADE_USD_PER_GB)
