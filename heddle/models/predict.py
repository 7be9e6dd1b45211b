"""One prediction by catalog ids: what `heddle models predict` shows.

Resolves a device id, an instance offer id (predicted from its GPUs) or an API tier id, and
returns the step's rates, times and memory needs as one flat record.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from heddle.models import catalog, perf
from heddle.models.errors import PerfError

__all__ = ["Prediction", "predict_step"]


@dataclass(frozen=True, slots=True)
class Prediction:
    target: str  # device or offer id
    target_kind: str  # "device" | "instance" | "api"
    model: str
    quant: str
    prompt_tokens: int
    output_tokens: int
    batch: int
    resident: bool
    prefill_tokens_per_s: float
    decode_tokens_per_s: float  # per request
    decode_throughput_tokens_per_s: float  # all `batch` requests together
    prefill_s: float
    decode_s: float
    load_s: float
    seconds: float
    memory_gb: float  # weights + KV cache of `batch` requests at the full context
    device_memory_gb: float  # the target's largest memory option (0 for an API)
    fits: bool

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def predict_step(
    target_id: str,
    model_id: str,
    quant: str | None = None,
    prompt_tokens: int = 512,
    output_tokens: int = 128,
    *,
    batch: int = 1,
    resident: bool = True,
) -> Prediction:
    """Predict one LLM step of `model_id` on a catalog device or offer.

    `quant=None` picks what a task naming no quantization gets (`default_quant`: q4_k_m, else
    the model's smallest). Raises UnknownIdError / PerfError.
    """
    if prompt_tokens < 0 or output_tokens < 0:
        raise PerfError("prompt and output token counts must be >= 0")
    model = catalog.model(model_id)
    if quant is None:
        from heddle.models.workload import default_quant  # pydantic: only when it is needed

        quant = default_quant(model)
    if quant not in model.bytes_per_weight:
        raise PerfError(f"model {model.id!r} has no quantization {quant!r}; expected one of {sorted(model.bytes_per_weight)}")
    memory_gb = model.weights_gb(quant) + batch * model.kv_bytes_per_token * (prompt_tokens + output_tokens) / 1e9
    entry = catalog.lookup(target_id)
    if entry in catalog.api_offers().values():
        step = perf.api_step(entry, prompt_tokens, output_tokens)
        return Prediction(
            target_id, "api", model.id, quant, prompt_tokens, output_tokens, batch, True,
            step.prefill_tokens_per_s, step.decode_tokens_per_s, step.decode_tokens_per_s * batch,
            step.prefill_s, step.decode_s, 0.0, step.seconds, memory_gb, 0.0, True,
        )
    if entry in catalog.offers().values():
        device, kind = perf.offer_device(entry), "instance"
    elif entry in catalog.devices().values():
        device, kind = entry, "device"
    else:
        raise PerfError(f"{target_id!r} is a model, not a device or cloud offer")
    step = perf.llm_step(device, model, quant, prompt_tokens, output_tokens, resident=resident, batch=batch)
    device_memory = float(max(device.memory_options_gb))
    return Prediction(
        target_id, kind, model.id, quant, prompt_tokens, output_tokens, batch, resident,
        step.prefill_tokens_per_s, step.decode_tokens_per_s, step.decode_tokens_per_s * batch,
        step.prefill_s, step.decode_s, step.load_s, step.seconds, memory_gb, device_memory,
        memory_gb <= device_memory,
    )
