"""Performance model: how long a step takes on a device.

CONTRACT (signatures other packages rely on):
  llm_rates(device, model, quant, *, batch=1) -> (prefill_tokens_per_s, decode_tokens_per_s)
  llm_step(device, model, quant, prompt_tokens, output_tokens, *, resident=True, batch=1) -> StepTime
  load_seconds(device, model, quant) -> float
  processor_seconds(device, cpu_seconds) -> float

The model (docs/performance-model.md has the derivation and the accuracy table):
- decode, one step of `batch` requests = read the active weights and every request's KV
  cache at the achieved bandwidth + a fixed per-layer cost (kernel dispatch and sync) + the
  step's arithmetic (the first row at mat-vec efficiency, the other rows at mat-mat, i.e.
  prefill, efficiency). Small batches are bandwidth-bound, large ones compute-bound: the
  aggregate rate grows with the batch until the compute term dominates, while each
  request's own rate falls.
- prefill per token = arithmetic (weights + attention over the context) at the prefill
  efficiency + a per-layer cost, never faster than reading the weights once per
  `PREFILL_UBATCH_TOKENS` tokens (the bandwidth floor).
- load = weights from disk at the device's storage read rate + a fixed start-up.
Efficiencies come from `heddle.models.perf_params` (fitted to measurements, per backend).
All functions are pure; `llm_rates` is cached because the optimizer and the twin call it in
hot loops.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from heddle.models.errors import PerfError
from heddle.models.ids import DeviceId, OfferKind
from heddle.models.perf_params import BackendParams, backend_params, quant_class
from heddle.models.specs import CloudOffer, DeviceSpec, ModelSpec

__all__ = [
    "MODEL_LOAD_FIXED_S",
    "PREFILL_UBATCH_TOKENS",
    "StepTime",
    "api_step",
    "decode_step_seconds",
    "decode_throughput_tokens_per_s",
    "llm_rates",
    "llm_step",
    "load_seconds",
    "offer_device",
    "prefill_token_seconds",
    "processor_seconds",
    "rates_with",
]

PREFILL_UBATCH_TOKENS = 512
"""llama.cpp's default physical batch (`-ub 512`): prefill reads the weights once per ubatch."""

MODEL_LOAD_FIXED_S = 1.0
"""Fixed cost of bringing a model up besides reading weights (runtime init, shader/kernel
setup); an estimate, typical of llama.cpp/Ollama cold starts on a warm disk cache."""

CONTEXT_BUCKET_TOKENS = 256
"""Context lengths are rounded up to this many tokens before the cached rate lookup, so the
cache stays small while KV-cache effects are still modelled (one bucket ~ 0.1% of a 7B step)."""

TENSOR_PARALLEL_EFFICIENCY = 0.75
"""Fraction of the summed bandwidth/compute a multi-GPU instance delivers to one model split
across its GPUs (estimate: all-reduce per layer costs a quarter at 8 GPUs)."""


@dataclass(frozen=True, slots=True)
class StepTime:
    prefill_s: float
    decode_s: float
    load_s: float
    seconds: float  # total: load + prefill + decode (+ network latency for API steps)
    prefill_tokens_per_s: float
    decode_tokens_per_s: float  # per request, at the step's batch size


def weight_bytes_read(model: ModelSpec, quant: str, batch: int = 1) -> float:
    """Bytes of weights one decode step reads. Dense: all of them. MoE: the active share per
    token; a batch touches more experts, 1 - (1 - active/total)^batch of the total (routing
    treated as independent per request)."""
    total = model.params_b * 1e9 * _bytes_per_weight(model, quant)
    share = model.active_params_b / model.params_b
    if share >= 1.0:
        return total
    return total * (1.0 - (1.0 - share) ** max(batch, 1))


def _bytes_per_weight(model: ModelSpec, quant: str) -> float:
    try:
        return model.bytes_per_weight[quant]
    except KeyError:
        raise PerfError(
            f"model {model.id!r} has no quantization {quant!r}; expected one of "
            f"{sorted(model.bytes_per_weight)}"
        ) from None


def flops_per_token(model: ModelSpec, context_tokens: float) -> float:
    """Arithmetic for one token: 2 FLOP per active weight + attention over the context
    (QK^T and AV: 2 x 2 FLOP x hidden per cached token per layer)."""
    return 2.0 * model.active_params_b * 1e9 + 4.0 * model.layers * model.hidden_size * context_tokens


def decode_step_seconds(
    weight_bytes: np.ndarray | float,
    kv_bytes_per_request: np.ndarray | float,
    flops_per_request: np.ndarray | float,
    layer_overhead_s: np.ndarray | float,
    batch: np.ndarray | float,
    bandwidth_bytes_s: np.ndarray | float,
    flops_s: np.ndarray | float,
    bandwidth_efficiency: np.ndarray | float,
    decode_compute_efficiency: np.ndarray | float,
    prefill_compute_efficiency: np.ndarray | float,
) -> np.ndarray | float:
    """Seconds for one decode step producing one token for each of `batch` requests.

    Array-friendly on purpose: the calibration fit evaluates exactly this formula.
    """
    memory_s = (weight_bytes + batch * kv_bytes_per_request) / (bandwidth_bytes_s * bandwidth_efficiency)
    compute_s = flops_per_request / (flops_s * decode_compute_efficiency) + (batch - 1) * flops_per_request / (
        flops_s * prefill_compute_efficiency
    )
    return memory_s + layer_overhead_s + compute_s


def prefill_token_seconds(
    flops: np.ndarray | float,
    layer_overhead_s: np.ndarray | float,
    weight_bytes_total: np.ndarray | float,
    bandwidth_bytes_s: np.ndarray | float,
    flops_s: np.ndarray | float,
    prefill_compute_efficiency: np.ndarray | float,
    bandwidth_efficiency: np.ndarray | float,
) -> np.ndarray | float:
    """Seconds per prompt token: compute-bound, floored by reading all weights once per ubatch."""
    compute_s = flops / (flops_s * prefill_compute_efficiency) + layer_overhead_s
    floor_s = weight_bytes_total / (bandwidth_bytes_s * bandwidth_efficiency * PREFILL_UBATCH_TOKENS)
    return np.maximum(compute_s, floor_s)


def _layer_overhead_s(p: BackendParams, model: ModelSpec, prefill: bool) -> float:
    per_layer = p.prefill_layer_overhead_s if prefill else p.decode_layer_overhead_s
    moe = p.moe_layer_overhead_factor if model.active_params_b < model.params_b else 1.0
    return model.layers * per_layer * moe


def rates_with(
    p: BackendParams, device: DeviceSpec, model: ModelSpec, quant: str, batch: int, context_tokens: int
) -> tuple[float, float]:
    """(prefill tokens/s, per-request decode tokens/s) under explicit efficiencies `p`.

    Uncached: the calibration fit calls it with candidate parameters.
    """
    q = quant_class(quant)
    bw = device.memory_bandwidth_gb_s * 1e9
    flops_s = device.gpu_fp16_tflops * 1e12
    total_bytes = weight_bytes_read(model, quant, batch=10**6)  # every expert, for the prefill floor
    # prefill: attention averaged over a prompt of `context_tokens` (half of it on average)
    prefill_s = prefill_token_seconds(
        flops_per_token(model, context_tokens / 2),
        _layer_overhead_s(p, model, prefill=True),
        total_bytes,
        bw,
        flops_s,
        p.prefill_compute_efficiency[q],
        p.bandwidth_efficiency,
    )
    step_s = decode_step_seconds(
        weight_bytes_read(model, quant, batch),
        model.kv_bytes_per_token * context_tokens,
        flops_per_token(model, context_tokens),
        _layer_overhead_s(p, model, prefill=False),
        batch,
        bw,
        flops_s,
        p.bandwidth_efficiency,
        p.decode_compute_efficiency[q],
        p.prefill_compute_efficiency[q],
    )
    return 1.0 / float(prefill_s), 1.0 / float(step_s)


@lru_cache(maxsize=65536)
def _rates(device: DeviceSpec, model: ModelSpec, quant: str, batch: int, context_tokens: int) -> tuple[float, float]:
    return rates_with(backend_params(device.backend), device, model, quant, batch, context_tokens)


def llm_rates(
    device: DeviceSpec, model: ModelSpec, quant: str, *, batch: int = 1, context_tokens: int = 0
) -> tuple[float, float]:
    """(prefill tokens/s, decode tokens/s per request) on `device`.

    `batch` requests decode together: the decode rate returned is each request's own rate
    (aggregate = batch x rate; see `decode_throughput_tokens_per_s`). Prefill is the rate of
    one prompt running alone (continuous-batching servers run prefills between decode steps).
    `context_tokens` is the typical context during the step (KV-cache reads, attention).
    """
    if batch < 1:
        raise PerfError(f"batch must be >= 1, got {batch}")
    bucket = -(-max(context_tokens, 0) // CONTEXT_BUCKET_TOKENS) * CONTEXT_BUCKET_TOKENS
    return _rates(device, model, quant, batch, bucket)


def decode_throughput_tokens_per_s(device: DeviceSpec, model: ModelSpec, quant: str, batch: int = 1) -> float:
    """Aggregate decode tokens/s of `batch` concurrent requests."""
    return batch * llm_rates(device, model, quant, batch=batch)[1]


def load_seconds(device: DeviceSpec, model: ModelSpec, quant: str) -> float:
    """Seconds to bring the model into memory from the device's disk."""
    return model.weights_gb(quant) / device.storage_read_gb_s + MODEL_LOAD_FIXED_S


def llm_step(
    device: DeviceSpec,
    model: ModelSpec,
    quant: str,
    prompt_tokens: int,
    output_tokens: int,
    *,
    resident: bool = True,
    batch: int = 1,
) -> StepTime:
    """Time of one LLM step: load (unless resident) + prefill of the prompt + decode."""
    prefill_tps, _ = llm_rates(device, model, quant, batch=batch, context_tokens=prompt_tokens)
    _, decode_tps = llm_rates(
        device, model, quant, batch=batch, context_tokens=prompt_tokens + output_tokens // 2
    )
    prefill_s = prompt_tokens / prefill_tps
    decode_s = output_tokens / decode_tps
    load_s = 0.0 if resident else load_seconds(device, model, quant)
    return StepTime(prefill_s, decode_s, load_s, load_s + prefill_s + decode_s, prefill_tps, decode_tps)


def processor_seconds(device: DeviceSpec, cpu_seconds: float) -> float:
    """Wall seconds of `cpu_seconds` of single-core work measured on the reference core
    (Apple M1 performance core) when run on one of this device's performance cores."""
    return cpu_seconds / device.cpu_single_core_relative


@lru_cache(maxsize=256)
def offer_device(offer: CloudOffer) -> DeviceSpec:
    """A cloud instance seen as one device (its GPUs pooled with tensor parallelism), so the
    same perf model predicts it from its GPU specs."""
    if offer.kind != OfferKind.INSTANCE:
        raise PerfError(f"offer {offer.id!r} is an API tier, not an instance; use api_step()")
    n = offer.gpu_count
    scale = n * (TENSOR_PARALLEL_EFFICIENCY if n > 1 else 1.0)
    return DeviceSpec(
        id=DeviceId(offer.id),
        name=offer.name,
        vendor="aws",
        family="cloud",
        tier="",
        gpu_cores=0,
        cpu_performance_cores=4,
        cpu_efficiency_cores=0,
        memory_bandwidth_gb_s=offer.gpu_bandwidth_gb_s * scale,
        memory_options_gb=(int(offer.gpu_memory_gb * n),),
        gpu_fp32_tflops=offer.gpu_fp16_tflops * scale / 2,
        gpu_fp16_tflops=offer.gpu_fp16_tflops * scale,
        npu_tops=0.0,
        idle_power_w=0.0,
        typical_power_w=0.0,
        max_power_w=0.0,
        price_usd=0.0,
        machine=offer.name,
        source=f"derived from offer {offer.id}: {offer.source}",
        unified_memory=False,
        backend=offer.backend or "cuda",
        storage_read_gb_s=2.0,
    )


def api_step(offer: CloudOffer, prompt_tokens: int, output_tokens: int) -> StepTime:
    """Time of one call to a hosted API tier: round trip + prompt ingest + streamed output."""
    if offer.kind != OfferKind.API:
        raise PerfError(f"offer {offer.id!r} is an instance; use llm_step(offer_device(offer), ...)")
    prefill_s = prompt_tokens / offer.prefill_tokens_per_s
    decode_s = output_tokens / offer.decode_tokens_per_s
    return StepTime(
        prefill_s, decode_s, 0.0, offer.network_latency_s + prefill_s + decode_s,
        offer.prefill_tokens_per_s, offer.decode_tokens_per_s,
    )
