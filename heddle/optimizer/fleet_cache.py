"""Static per-fleet arrays, computed once per fleet object and reused on every call.

The twin calls `place()` on every arrival, so everything that depends only on the fleet
(target order, installed memory, energy prices, privacy masks per owner, token rates per
(model, quant)) is built here once. The cache is a pure memo: it is keyed by the fleet
object's identity and keeps the fleet alive beside its arrays, so an id is never reused for
a different fleet while its entry exists. Fleets are frozen, so the arrays stay valid.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from heddle.models import CloudOffer, Fleet, OfferKind, Tier, perf
from heddle.models.catalog import model as model_spec
from heddle.models.features import lacking, needs_text
from heddle.models.installed import has_model, missing_text

__all__ = ["TIER_CODE", "FleetArrays", "ModelArrays", "fleet_arrays"]

TIER_CODE: dict[Tier, int] = {Tier.LOCAL: 0, Tier.STANDARD: 1, Tier.FRONTIER: 2}
"""Integer code of each tier, ordered local < standard < frontier (the seed's tiers).

An API offer serves exactly its own tier; a local node or an instance (both run open models)
serves a task's preferred tier T iff the catalog tier of the task's model is >= T
(`ModelSpec.tier`; processor steps and unknown models count as local)."""

CACHE_FLEETS = 32
"""Fleets kept in the memo; a twin or an advisor sweep uses a handful at a time."""

API_DEFAULT_PREFILL_TOKENS_PER_S = 2000.0
"""Prompt speed assumed for an API offer that states none (order of hosted-API TTFT figures)."""

API_DEFAULT_DECODE_TOKENS_PER_S = 60.0
"""Streaming speed assumed for an API offer that states none (typical hosted-model output rate)."""

CONTEXT_BUCKET_TOKENS: int = getattr(perf, "CONTEXT_BUCKET_TOKENS", 1 << 30)
"""Context lengths share cached rates per bucket of this many tokens (the perf model's own)."""

UNLIMITED = 1 << 30
"""Capacity used for a target without a per-call limit (API without a rate limit)."""


@dataclass(slots=True, eq=False)
class ModelArrays:
    """Per-target speeds and sizes of one (model, quant) on this fleet."""

    known: bool
    weights_gb: float
    kv_gb_per_token: float
    prefill_tps: np.ndarray  # [J] tokens/s
    decode_tps: np.ndarray  # [J] tokens/s
    load_s: np.ndarray  # [J] seconds to load the weights when not resident (0 for cloud)
    spec: object = None  # the ModelSpec (None if unknown)
    quant: str | None = None
    tier_code: int = 0  # TIER_CODE of the model's catalog tier (local if unknown)
    context_tokens: float = float("inf")  # what a step may hold: ModelSpec.step_context_tokens
    embedding: bool = False  # an embedding model: no chat API serves it
    own_model: np.ndarray | None = None  # [J] APIs that run it with their own model although the
    # catalog lacks it (unknown only): every API for no model (given a tier), the offer named
    missing: np.ndarray | None = None  # [J] nodes whose servers' known installed set lacks it
    # (heddle.models.installed.has_model; None: no node's set rules one out); the MODEL rule
    missing_list: list | None = None  # `missing` as a Python list (the one-task paths)
    _by_bucket: dict = field(default_factory=dict)
    _lists: dict = field(default_factory=dict)

    def rates(self, fa: FleetArrays, context_tokens: int) -> tuple[np.ndarray, np.ndarray]:
        """(prefill [J], decode [J]) tokens/s at this context length (bucketed like perf)."""
        bucket = -(-max(int(context_tokens), 0) // CONTEXT_BUCKET_TOKENS) * CONTEXT_BUCKET_TOKENS
        if bucket == 0 or not self.known:
            return self.prefill_tps, self.decode_tps
        found = self._by_bucket.get(bucket)
        if found is None:
            prefill, decode = self.prefill_tps.copy(), self.decode_tps.copy()
            for i, nd in enumerate(fa.fleet.nodes):
                prefill[i], decode[i] = _llm_rates(nd.device, self.spec, self.quant, bucket)
            for k, offer in enumerate(fa.fleet.cloud_offers):
                if offer.kind is OfferKind.INSTANCE and offer.gpu_bandwidth_gb_s > 0:
                    i = fa.n_nodes + k
                    prefill[i], decode[i] = _llm_rates(perf.offer_device(offer), self.spec, self.quant, bucket)
            found = self._by_bucket[bucket] = (prefill, decode)
        return found

    def load_list(self) -> list:
        """`load_s` as a Python list (cached)."""
        found = self._lists.get("load")
        if found is None:
            found = self._lists["load"] = self.load_s.tolist()
        return found

    def rate_lists(self, fa: FleetArrays, context_tokens: int) -> tuple[list, list]:
        """`rates` as Python lists (the one-task path loops in plain Python)."""
        bucket = -(-max(int(context_tokens), 0) // CONTEXT_BUCKET_TOKENS)
        found = self._lists.get(bucket)
        if found is None:
            prefill, decode = self.rates(fa, context_tokens)
            found = self._lists[bucket] = (prefill.tolist(), decode.tolist())
        return found


@dataclass(slots=True, eq=False)
class FleetArrays:
    """Target-indexed arrays: nodes first (fleet order), then cloud offers (fleet order)."""

    fleet: Fleet
    node_ids: tuple[str, ...]
    offer_ids: tuple[str, ...]
    target_names: tuple[str, ...]
    n_nodes: int
    n_targets: int
    is_node: np.ndarray  # [J] bool
    is_api: np.ndarray  # [J] bool
    is_instance: np.ndarray  # [J] bool
    tier_code: np.ndarray  # [J] int, the tier an API serves (nodes/instances: local; the model decides)
    installed_gb: np.ndarray  # [J] memory a task may ever use (nodes: installed - reserved)
    slots: np.ndarray  # [N] int, configured concurrency
    energy_usd_per_s: np.ndarray  # [J] marginal energy price while busy (0 for cloud)
    proc_s_per_cpu_s: np.ndarray  # [J] processor-step seconds per reference CPU second
    price_in_usd_per_token: np.ndarray  # [J]
    price_out_usd_per_token: np.ndarray  # [J]
    long_context_tokens: np.ndarray  # [J] prompts above this use the long-context prices (inf: none)
    long_in_usd_per_token: np.ndarray  # [J]
    long_out_usd_per_token: np.ndarray  # [J]
    price_usd_per_s: np.ndarray  # [J] instance hourly price per second
    startup_s: np.ndarray  # [J] instance cold start
    latency_s: np.ndarray  # [J] network round trip
    offer_capacity: np.ndarray  # [M] tasks one call may send to each offer
    _personal: dict = field(default_factory=dict)
    _models: dict = field(default_factory=dict)
    _lacking: dict = field(default_factory=dict)

    def personal_mask(self, owner: str | None) -> np.ndarray:
        """[J] targets that may hold `personal` work of `owner` (never the cloud)."""
        mask = self._personal.get(owner)
        if mask is None:
            mask = np.zeros(self.n_targets, dtype=bool)
            for i, node in enumerate(self.fleet.nodes):
                mask[i] = node.may_hold_personal_of(owner)
            self._personal[owner] = mask
        return mask

    def offered(self) -> list:
        """[J] the features each target offers (None: all): nodes' own, API offers' as the
        fleet lists them (instances run open models like a node: all)."""
        features = self.fleet.offer_features
        return ([nd.features for nd in self.fleet.nodes]
                + [features.get(o.id) if o.kind is OfferKind.API else None for o in self.fleet.cloud_offers])

    def lacking_mask(self, needs: frozenset) -> np.ndarray:
        """[J] targets that do not offer every feature in ``needs`` (the features rule,
        `heddle.models.features.lacking`); memoised per set of needs."""
        mask = self._lacking.get(needs)
        if mask is None:
            mask = np.array([bool(lacking(offered, needs)) for offered in self.offered()], dtype=bool)
            self._lacking[needs] = mask
        return mask

    def lacking_list(self, needs: frozenset) -> list:
        """`lacking_mask` as a Python list (the one-task paths loop in plain Python)."""
        key = ("list", needs)
        found = self._lacking.get(key)
        if found is None:
            found = self._lacking[key] = self.lacking_mask(needs).tolist()
        return found

    def lacking_text(self, needs: frozenset, model: str | None = None) -> str:
        """Which targets lack which of ``needs``, in words (`heddle.models.features.needs_text`)."""
        lacked: dict[str, list[str]] = {}
        for name, offered in zip(self.target_names, self.offered(), strict=True):
            for need in lacking(offered, needs):
                lacked.setdefault(need, []).append(name)
        return needs_text(lacked, self.n_targets, model,
                          runtimes={nd.id: nd.runtime for nd in self.fleet.nodes if nd.runtime})

    def model(self, model_id: str | None, quant: str | None) -> ModelArrays:
        """Speeds of (model, quant) on every target; `known=False` if the catalog lacks it."""
        key = (model_id, quant)
        arrays = self._models.get(key)
        if arrays is None:
            arrays = _model_arrays(self, model_id, quant)
            nodes = self.fleet.nodes
            # (a model the catalog lacks, or an API offer's id, no node runs anyway: its own reason)
            if arrays.known and any(nd.installed is not None for nd in nodes):
                missing = [not has_model(nd.installed, model_id, quant) for nd in nodes]
                if any(missing):
                    arrays.missing_list = missing + [False] * (self.n_targets - self.n_nodes)
                    arrays.missing = np.array(arrays.missing_list, dtype=bool)
            self._models[key] = arrays
        return arrays

    def missing_text(self, model_id: str | None, quant: str | None) -> str:
        """Which nodes' servers lack (model, quant), in words (heddle.models.installed.missing_text);
        empty when none does."""
        arrays = self.model(model_id, quant)
        if arrays.missing is None:
            return ""
        return missing_text([n for n, lacks in zip(self.node_ids, arrays.missing_list, strict=False) if lacks],
                            model_id, quant)

    def weights_gb(self, model_id: str, quant: str) -> float:
        """Resident size of a model (0 if unknown: an unknown resident model frees nothing)."""
        arrays = self.model(model_id, quant)
        return arrays.weights_gb if arrays.known else 0.0


_CACHE: OrderedDict[int, tuple[Fleet, FleetArrays]] = OrderedDict()


def fleet_arrays(fleet: Fleet) -> FleetArrays:
    """The memoised arrays of `fleet` (built on first use)."""
    entry = _CACHE.get(id(fleet))
    if entry is not None and entry[0] is fleet:
        return entry[1]
    arrays = _build(fleet)
    _CACHE[id(fleet)] = (fleet, arrays)
    while len(_CACHE) > CACHE_FLEETS:
        _CACHE.popitem(last=False)
    return arrays


def _build(fleet: Fleet) -> FleetArrays:
    nodes, offers = fleet.nodes, fleet.cloud_offers
    n, m = len(nodes), len(offers)
    j = n + m
    is_node = np.zeros(j, dtype=bool)
    is_node[:n] = True
    is_api = np.array([False] * n + [o.kind is OfferKind.API for o in offers], dtype=bool)
    is_instance = np.array([False] * n + [o.kind is OfferKind.INSTANCE for o in offers], dtype=bool)
    installed = np.array(
        [nd.memory_gb - nd.reserved_memory_gb for nd in nodes]
        + [o.gpu_count * o.gpu_memory_gb if o.kind is OfferKind.INSTANCE else np.inf for o in offers]
    )
    energy = np.array(
        [max(nd.device.typical_power_w - nd.device.idle_power_w, 0.0) / 3.6e6 * fleet.price_usd_per_kwh(nd) for nd in nodes]
        + [0.0] * m
    )
    proc = np.array(
        [perf.processor_seconds(nd.device, 1.0) for nd in nodes]
        + [np.inf if o.kind is OfferKind.API else 1.0 for o in offers]
    )
    zeros_n = [0.0] * n
    return FleetArrays(
        fleet=fleet,
        node_ids=tuple(nd.id for nd in nodes),
        offer_ids=tuple(o.id for o in offers),
        target_names=tuple([nd.id for nd in nodes] + [o.id for o in offers]),
        n_nodes=n,
        n_targets=j,
        is_node=is_node,
        is_api=is_api,
        is_instance=is_instance,
        tier_code=np.array([TIER_CODE[Tier.LOCAL]] * n + [TIER_CODE[o.tier] for o in offers]),
        installed_gb=installed,
        slots=np.array([nd.slots for nd in nodes], dtype=np.int64),
        energy_usd_per_s=energy,
        proc_s_per_cpu_s=proc,
        price_in_usd_per_token=np.array(zeros_n + [o.price_usd_per_m_input_tokens / 1e6 for o in offers]),
        price_out_usd_per_token=np.array(zeros_n + [o.price_usd_per_m_output_tokens / 1e6 for o in offers]),
        long_context_tokens=np.array([np.inf] * n + [o.extra.get("long_context_threshold_tokens", 0.0) or np.inf
                                                     for o in offers]),
        long_in_usd_per_token=np.array(zeros_n + [o.extra.get("long_price_usd_per_m_input_tokens",
                                                             o.price_usd_per_m_input_tokens) / 1e6 for o in offers]),
        long_out_usd_per_token=np.array(zeros_n + [o.extra.get("long_price_usd_per_m_output_tokens",
                                                              o.price_usd_per_m_output_tokens) / 1e6 for o in offers]),
        price_usd_per_s=np.array(zeros_n + [o.price_usd_per_hour / 3600.0 for o in offers]),
        startup_s=np.array(zeros_n + [o.startup_s if o.kind is OfferKind.INSTANCE else 0.0 for o in offers]),
        latency_s=np.array(zeros_n + [o.network_latency_s for o in offers]),
        offer_capacity=np.array([_offer_capacity(o) for o in offers], dtype=np.int64),
    )


def _offer_capacity(offer: CloudOffer) -> int:
    if offer.kind is OfferKind.INSTANCE:
        return max(offer.gpu_count, 1)  # multiplied by the policy's slots per GPU at call time
    return int(offer.rate_limit_rpm) if offer.rate_limit_rpm > 0 else UNLIMITED


def _model_arrays(fa: FleetArrays, model_id: str | None, quant: str | None) -> ModelArrays:
    j = fa.n_targets
    if not model_id or model_id in fa.offer_ids:
        # a tier and no model: unknown to every node and instance (they run the model named),
        # but an API of the task's tier serves it with its own model at the offer's rates;
        # a catalog API offer named as the model: that offer alone serves it, likewise
        prefill, decode = np.full(j, np.nan), np.full(j, np.nan)
        for k, offer in enumerate(fa.fleet.cloud_offers):
            if offer.kind is OfferKind.API and (not model_id or offer.id == model_id):
                prefill[fa.n_nodes + k] = offer.prefill_tokens_per_s or API_DEFAULT_PREFILL_TOKENS_PER_S
                decode[fa.n_nodes + k] = offer.decode_tokens_per_s or API_DEFAULT_DECODE_TOKENS_PER_S
        return ModelArrays(False, 0.0, 0.0, prefill, decode, np.zeros(j), own_model=np.isfinite(prefill))
    try:
        spec = model_spec(model_id)
        weights = spec.weights_gb(quant)
    except (KeyError, TypeError, LookupError):
        nan = np.full(j, np.nan)
        return ModelArrays(False, 0.0, 0.0, nan, nan, nan)
    prefill = np.empty(j)
    decode = np.empty(j)
    load = np.zeros(j)
    for i, nd in enumerate(fa.fleet.nodes):
        prefill[i], decode[i] = perf.llm_rates(nd.device, spec, quant)
        load[i] = perf.load_seconds(nd.device, spec, quant)
    for k, offer in enumerate(fa.fleet.cloud_offers):
        i = fa.n_nodes + k
        if offer.kind is OfferKind.API:
            prefill[i] = offer.prefill_tokens_per_s or API_DEFAULT_PREFILL_TOKENS_PER_S
            decode[i] = offer.decode_tokens_per_s or API_DEFAULT_DECODE_TOKENS_PER_S
        elif offer.gpu_bandwidth_gb_s > 0 and offer.gpu_fp16_tflops > 0:
            prefill[i], decode[i] = perf.llm_rates(perf.offer_device(offer), spec, quant)
        else:  # an instance that states no GPU figures: fall back to its advertised rates
            prefill[i] = offer.prefill_tokens_per_s or API_DEFAULT_PREFILL_TOKENS_PER_S
            decode[i] = offer.decode_tokens_per_s or API_DEFAULT_DECODE_TOKENS_PER_S
    return ModelArrays(True, weights, spec.kv_bytes_per_token / 1e9, prefill, decode, load, spec, quant,
                       TIER_CODE[spec.tier], spec.step_context_tokens, spec.kind == "embedding")


def _llm_rates(device, spec, quant: str, context_tokens: int) -> tuple[float, float]:
    try:
        return perf.llm_rates(device, spec, quant, context_tokens=context_tokens)
    except TypeError:  # a perf model without context-dependent rates
        return perf.llm_rates(device, spec, quant)
