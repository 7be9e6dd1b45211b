"""Plain data for what the catalogs describe: devices, AI models, cloud offers.

These are the hot-path types (frozen slotted dataclasses); the catalog loader validates the
shipped YAML with pydantic and builds them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from heddle.models.ids import DeviceId, ModelId, OfferId, OfferKind, Tier


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    """One catalog device: a chip or accelerator and the machine that usually carries it."""

    id: DeviceId  # lower-case, hyphenated, names the GPU-core variant: "m2-ultra-76"
    name: str  # "Apple M2 Ultra (76-core GPU)"
    vendor: str  # "apple" | "nvidia"
    family: str  # "m1" ... "m4", "jetson", "rtx", "dgx"
    tier: str  # "base" | "pro" | "max" | "ultra" | "" for non-Apple
    gpu_cores: int
    cpu_performance_cores: int
    cpu_efficiency_cores: int
    memory_bandwidth_gb_s: float
    memory_options_gb: tuple[int, ...]
    gpu_fp32_tflops: float
    gpu_fp16_tflops: float
    npu_tops: float  # Neural Engine / DLA TOPS as the vendor states them (0 if none)
    idle_power_w: float
    typical_power_w: float
    max_power_w: float
    price_usd: float  # list price of the usual machine that carries it
    machine: str  # "Mac Studio (2023)"
    source: str  # where the figures come from
    unified_memory: bool = True  # False: discrete GPU with its own VRAM (memory_options = VRAM)
    system_memory_gb: int = 0  # host RAM of a discrete-GPU desktop (0 for unified memory)
    backend: str = "metal"  # inference runtime family the perf model calibrates: "metal" | "cuda" | "neuron"
    cpu_single_core_relative: float = 1.0  # one performance core's speed vs the reference (Apple M1 P-core)
    storage_read_gb_s: float = 3.0  # sequential read of the disk models load from

    def __hash__(self) -> int:  # cheap: perf lookups hash devices in hot loops (eq still compares all)
        return hash(self.id)


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One AI model that can run on devices (an LLM or an embedding model)."""

    id: ModelId  # "llama-3.1-8b"
    name: str
    params_b: float  # total parameters, billions
    active_params_b: float  # parameters read per token (== params_b unless MoE)
    layers: int
    hidden_size: int
    kv_bytes_per_token: int  # KV cache bytes per token at F16
    context_length: int
    bytes_per_weight: dict[str, float]  # quantization name -> bytes per weight, e.g. {"q4_0": 0.5625}
    kind: str = "llm"  # "llm" | "embedding"
    source: str = ""
    tier: Tier = Tier.LOCAL  # highest model tier it can serve: big open models qualify for "standard"
    tools: bool = False  # its chat template takes tools: it can call functions
    vision: bool = False  # it takes images in its messages
    image_tokens: int = 0  # a vision model's prompt tokens per image (with image_patch_px: the cap)
    image_patch_px: int = 0  # >0: one token per image_patch_px x image_patch_px block of the image
    fim: bool = False  # it fills in the middle: its template takes a suffix (Ollama's "insert")
    thinking: bool = False  # a reasoning model: it can think before it answers (``think``)

    def __hash__(self) -> int:  # the dict field makes the generated hash fail; ids are unique
        return hash(self.id)

    @property
    def step_context_tokens(self) -> float:
        """The most tokens one step may hold (prompt + output): the context window for an
        LLM; no bound for an embedding model, which embeds a step's inputs one by one, the
        window binding each input, not their sum."""
        return math.inf if self.kind == "embedding" else float(self.context_length)

    def image_prompt_tokens(self, width: int, height: int) -> int:
        """The prompt tokens one image of ``width`` x ``height`` pixels takes: the catalog's
        fixed figure, or one per ``image_patch_px`` square block up to it (Qwen2.5-VL)."""
        if not self.image_patch_px:
            return self.image_tokens
        blocks = math.ceil(width / self.image_patch_px) * math.ceil(height / self.image_patch_px)
        return min(max(blocks, 1), self.image_tokens)

    def weights_gb(self, quant: str) -> float:
        """Resident size of the weights in GB (1e9 bytes) at a quantization."""
        return self.params_b * self.bytes_per_weight[quant]

    def memory_gb(self, quant: str, context_tokens: int) -> float:
        """Weights plus the KV cache for `context_tokens` tokens, in GB."""
        return self.weights_gb(quant) + self.kv_bytes_per_token * context_tokens / 1e9


@dataclass(frozen=True, slots=True)
class CloudOffer:
    """A place in the cloud a task can burst to: an API tier or a rented instance."""

    id: OfferId  # "claude-sonnet-4.6", "aws-g5.xlarge"
    name: str
    kind: OfferKind
    tier: Tier  # which model tier it serves (instances serve open models: LOCAL-tier models)
    price_usd_per_m_input_tokens: float = 0.0  # API only
    price_usd_per_m_output_tokens: float = 0.0  # API only
    price_usd_per_hour: float = 0.0  # instance only
    startup_s: float = 0.0  # instance cold start
    network_latency_s: float = 0.0  # one round trip
    decode_tokens_per_s: float = 0.0  # API streaming speed (instances: from the perf model)
    prefill_tokens_per_s: float = 0.0
    rate_limit_rpm: float = 0.0  # 0 = unlimited
    gpu_count: int = 0
    gpu_memory_gb: float = 0.0  # per GPU
    gpu_bandwidth_gb_s: float = 0.0  # per GPU
    gpu_fp16_tflops: float = 0.0  # per GPU
    source: str = ""
    extra: dict[str, float] = field(default_factory=dict)
    backend: str = ""  # instance only: "cuda" | "neuron" (perf model calibration family)

    def __hash__(self) -> int:  # the dict field makes the generated hash fail; ids are unique
        return hash(self.id)


@dataclass(frozen=True, slots=True)
class Catalog:
    """Everything the shipped catalog holds, keyed by id."""

    devices: dict[DeviceId, DeviceSpec]
    models: dict[ModelId, ModelSpec]
    offers: dict[OfferId, CloudOffer]
