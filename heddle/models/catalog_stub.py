"""PLACEHOLDER model lookup until models/catalog.py lands (then this re-exports it)."""

from heddle.models.ids import ModelId
from heddle.models.specs import ModelSpec

_LLAMA_8B = ModelSpec(
    id=ModelId("llama-3.1-8b"), name="Llama 3.1 8B", params_b=8.03, active_params_b=8.03,
    layers=32, hidden_size=4096, kv_bytes_per_token=131072, context_length=131072,
    bytes_per_weight={"f16": 2.0, "q8_0": 1.0625, "q4_0": 0.5625, "q4_k_m": 0.6},
)


def model_spec(model_id: str) -> ModelSpec:
    return _LLAMA_8B
