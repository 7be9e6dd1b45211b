"""Performance model: how long a step takes on a device.

CONTRACT (signatures other packages rely on; the models owner refines the internals):
  llm_rates(device, model, quant, *, batch=1) -> (prefill_tokens_per_s, decode_tokens_per_s)
  llm_step(device, model, quant, prompt_tokens, output_tokens, *, resident=True, batch=1) -> StepTime
  load_seconds(device, model, quant) -> float
  processor_seconds(device, cpu_seconds) -> float
PLACEHOLDER internals below: a bandwidth/compute roofline without fitted factors.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from heddle.models.specs import DeviceSpec, ModelSpec


@dataclass(frozen=True, slots=True)
class StepTime:
    prefill_s: float
    decode_s: float
    load_s: float
    seconds: float  # total: load + prefill + decode
    prefill_tokens_per_s: float
    decode_tokens_per_s: float


@lru_cache(maxsize=65536)
def llm_rates(device: DeviceSpec, model: ModelSpec, quant: str, *, batch: int = 1) -> tuple[float, float]:
    weights_bytes = model.active_params_b * 1e9 * model.bytes_per_weight[quant]
    decode = 0.6 * device.memory_bandwidth_gb_s * 1e9 / weights_bytes
    prefill = 0.5 * device.gpu_fp16_tflops * 1e12 / (2 * model.active_params_b * 1e9)
    return prefill, decode


def load_seconds(device: DeviceSpec, model: ModelSpec, quant: str) -> float:
    return model.weights_gb(quant) / 3.0  # ~3 GB/s from SSD


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
    prefill_tps, decode_tps = llm_rates(device, model, quant, batch=batch)
    prefill_s = prompt_tokens / prefill_tps
    decode_s = output_tokens / decode_tps
    load_s = 0.0 if resident else load_seconds(device, model, quant)
    return StepTime(prefill_s, decode_s, load_s, load_s + prefill_s + decode_s, prefill_tps, decode_tps)


def processor_seconds(device: DeviceSpec, cpu_seconds: float) -> float:
    return cpu_seconds
