"""The shipped catalogs: devices, AI models and cloud offers, loaded from package data.

The YAML files in `heddle/data/catalog/` are the source: `catalog_yaml` validates them with
pydantic (unknown fields are errors that name the file, line and field) and builds the frozen
hot-path types of `heddle.models.specs`. Start-up reads those specs from the committed
snapshot (`catalog_snapshot`) instead while it matches the YAML and the rules byte for byte:
`heddle catalog list` then imports no pydantic or YAML. Everything is loaded once and cached:
lookups are dict reads.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, TypeVar

from heddle.models.errors import UnknownIdError
from heddle.models.ids import DeviceId, ModelId, OfferId, OfferKind
from heddle.models.specs import Catalog, CloudOffer, DeviceSpec, ModelSpec

if TYPE_CHECKING:
    from heddle.models.yamlsource import YamlDoc

__all__ = [
    "Catalog",
    "api_model_name",
    "api_offer_named",
    "api_offers",
    "device",
    "devices",
    "load_catalog",
    "lookup",
    "model",
    "models",
    "offer",
    "offers",
]

_V = TypeVar("_V")


def load_catalog(
    devices_doc: YamlDoc | None = None,
    models_doc: YamlDoc | None = None,
    offers_doc: YamlDoc | None = None,
) -> Catalog:
    """Validate and build a catalog; the shipped files are used for any doc not given."""
    from heddle.models.catalog_yaml import build_catalog

    return build_catalog(devices_doc, models_doc, offers_doc)


@cache
def _shipped() -> Catalog:
    from heddle.models import catalog_snapshot

    return catalog_snapshot.read() or load_catalog()


def _get(table: dict[str, _V], key: str, kind: str) -> _V:
    try:
        return table[key]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(str(key), list(table), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(sorted(table))}"
        raise UnknownIdError(f"unknown {kind} id {key!r}{hint}") from None


def device(device_id: str) -> DeviceSpec:
    """The catalog device `device_id` (e.g. "m2-ultra-76"); UnknownIdError if absent."""
    return _get(_shipped().devices, device_id, "device")


def devices() -> dict[DeviceId, DeviceSpec]:
    """Every catalog device by id (a copy: callers may not change the catalog)."""
    return dict(_shipped().devices)


def model(model_id: str) -> ModelSpec:
    """The catalog model `model_id` (e.g. "llama-3.1-8b"); UnknownIdError if absent."""
    return _get(_shipped().models, model_id, "model")


def models() -> dict[ModelId, ModelSpec]:
    return dict(_shipped().models)


def offer(offer_id: str) -> CloudOffer:
    """The cloud offer `offer_id` (e.g. "claude-sonnet-4.6", "aws-g5.xlarge")."""
    return _get(_shipped().offers, offer_id, "offer")


def offers() -> dict[OfferId, CloudOffer]:
    return dict(_shipped().offers)


def api_offers() -> dict[OfferId, CloudOffer]:
    """The catalog's API offers: a task (a gateway request, a trace row) may name one as its
    model, and then runs on that offer alone, with the offer's own model (no quantization)."""
    return {k: o for k, o in _shipped().offers.items() if o.kind is OfferKind.API}


def api_model_name(offer_id: OfferId) -> str:
    """An API offer's model as its provider's API names it: the catalog id with dashes for
    dots (``claude-sonnet-4.6`` -> ``claude-sonnet-4-6``)."""
    return offer_id.replace(".", "-")


def api_offer_named(name: str) -> OfferId | None:
    """The API offer whose provider's name (`api_model_name`) is ``name``, or None."""
    return next((o for o in api_offers() if api_model_name(o) == name), None)


def lookup(item_id: str) -> DeviceSpec | ModelSpec | CloudOffer:
    """Whatever catalog entry has this id (devices, then models, then offers)."""
    cat = _shipped()
    for table in (cat.devices, cat.models, cat.offers):
        if item_id in table:
            return table[item_id]
    every = {**cat.devices, **cat.models, **cat.offers}
    return _get(every, item_id, "catalog")
