"""Validate the shipped catalog YAML with pydantic and build the catalog's specs from it.

Unknown fields are errors naming the file, line and field. `heddle.models.catalog` imports this
module only when its snapshot (catalog_snapshot) is missing or stale, or for catalog files a
caller passes in: importing pydantic and building these schemas costs about 0.1 s of start-up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from heddle.models.errors import CatalogError
from heddle.models.ids import DeviceId, ModelId, OfferId, OfferKind, Tier
from heddle.models.specs import Catalog, CloudOffer, DeviceSpec, ModelSpec
from heddle.models.yamlsource import YamlDoc, format_validation_error, load_yaml

__all__ = ["build_catalog"]

CATALOG_DIR = Path(__file__).resolve().parent.parent / "data" / "catalog"
"""Where the shipped catalog YAML lives (package data)."""

APPLE_FP32_ALUS_PER_GPU_CORE = 128
"""FP32 ALUs per Apple GPU core (Apple's M-series GPU architecture briefings)."""

_ID_PATTERN = r"^[a-z0-9][a-z0-9.\-]*$"
Id = Annotated[str, Field(pattern=_ID_PATTERN)]
Positive = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_power(power_w: tuple[float, float, float] | None) -> None:
    if power_w is not None and not power_w[0] <= power_w[1] <= power_w[2]:
        raise ValueError(f"power_w must be [idle, typical, max] in rising order, got {list(power_w)}")


class _VariantIn(_Strict):
    gpu_cores: Annotated[int, Field(gt=0)]
    cpu_cores: tuple[int, int] | None = None
    memory_bandwidth_gb_s: Positive | None = None
    memory_options_gb: list[Annotated[int, Field(gt=0)]] | None = None
    gpu_fp32_tflops: Positive | None = None
    gpu_fp16_tflops: Positive | None = None
    power_w: tuple[NonNegative, NonNegative, NonNegative] | None = None
    machine: str | None = None
    price_usd: Positive | None = None


class _ChipIn(_Strict):
    id: Id
    name: str
    family: str
    tier: Literal["base", "pro", "max", "ultra"]
    cpu_cores: tuple[int, int]
    memory_bandwidth_gb_s: Positive
    memory_options_gb: list[Annotated[int, Field(gt=0)]]
    gpu_clock_ghz: Positive
    npu_tops: NonNegative
    power_w: tuple[NonNegative, NonNegative, NonNegative]
    cpu_single_core_relative: Positive = 1.0
    storage_read_gb_s: Positive = 3.0
    machine: str | None = None
    price_usd: Positive | None = None
    source: Annotated[str, Field(min_length=1)]
    variants: list[_VariantIn] = Field(min_length=1)

    @model_validator(mode="after")
    def _power_order(self) -> _ChipIn:
        _check_power(self.power_w)
        for v in self.variants:
            _check_power(v.power_w)
            if (v.machine or self.machine) is None or (v.price_usd or self.price_usd) is None:
                raise ValueError(f"variant with {v.gpu_cores} GPU cores needs a machine and a price_usd")
        return self


class _DeviceIn(_Strict):
    id: Id
    name: str
    vendor: str
    family: str
    tier: str = ""
    backend: Literal["metal", "cuda", "neuron"]
    gpu_cores: Annotated[int, Field(ge=0)]
    cpu_cores: tuple[int, int]
    memory_bandwidth_gb_s: Positive
    memory_options_gb: list[Annotated[int, Field(gt=0)]]
    gpu_fp32_tflops: Positive
    gpu_fp16_tflops: Positive
    npu_tops: NonNegative
    power_w: tuple[NonNegative, NonNegative, NonNegative]
    price_usd: Positive
    machine: str
    unified_memory: bool = True
    system_memory_gb: Annotated[int, Field(ge=0)] = 0
    cpu_single_core_relative: Positive = 1.0
    storage_read_gb_s: Positive = 3.0
    source: Annotated[str, Field(min_length=1)]

    @model_validator(mode="after")
    def _power_order(self) -> _DeviceIn:
        _check_power(self.power_w)
        return self


class _DevicesFile(_Strict):
    chips: list[_ChipIn] = []
    devices: list[_DeviceIn] = []


class _ModelIn(_Strict):
    id: Id
    name: str
    kind: Literal["llm", "embedding"] = "llm"
    params_b: Positive
    active_params_b: Positive | None = None
    layers: Annotated[int, Field(gt=0)]
    hidden_size: Annotated[int, Field(gt=0)]
    kv_heads: Annotated[int, Field(ge=0)]
    head_dim: Annotated[int, Field(gt=0)]
    context_length: Annotated[int, Field(gt=0)]
    bytes_per_weight: dict[str, Positive] | None = None  # replaces the defaults when given
    tier: Tier = Tier.LOCAL
    tools: bool = False
    vision: bool = False
    image_tokens: Annotated[int, Field(ge=0)] = 0
    image_patch_px: Annotated[int, Field(ge=0)] = 0
    fim: bool = False
    thinking: bool = False
    source: Annotated[str, Field(min_length=1)]

    @model_validator(mode="after")
    def _active(self) -> _ModelIn:
        if self.active_params_b is not None and self.active_params_b > self.params_b:
            raise ValueError("active_params_b cannot exceed params_b")
        if self.vision != (self.image_tokens > 0):
            raise ValueError("a vision model needs image_tokens (> 0), and only a vision model has them")
        if self.image_patch_px and not self.vision:
            raise ValueError("image_patch_px is for a vision model")
        return self


class _ModelsFile(_Strict):
    default_bytes_per_weight: dict[str, Positive]
    models: list[_ModelIn]


class _ApiIn(_Strict):
    id: Id
    name: str
    tier: Tier
    price_usd_per_m_input_tokens: NonNegative
    price_usd_per_m_output_tokens: NonNegative
    decode_tokens_per_s: Positive
    prefill_tokens_per_s: Positive
    network_latency_s: NonNegative = 0.0
    rate_limit_rpm: NonNegative = 0.0
    extra: dict[str, float] = {}
    source: Annotated[str, Field(min_length=1)]


class _GpuIn(_Strict):
    count: Annotated[int, Field(gt=0)]
    memory_gb: Positive
    bandwidth_gb_s: Positive
    fp16_tflops: Positive
    backend: Literal["cuda", "neuron"]


class _InstanceIn(_Strict):
    id: Id
    name: str
    price_usd_per_hour: Positive
    startup_s: NonNegative
    network_latency_s: NonNegative = 0.0
    gpu: _GpuIn
    source: Annotated[str, Field(min_length=1)]


class _OffersFile(_Strict):
    api: list[_ApiIn] = []
    instances: list[_InstanceIn] = []


def _read(name: str) -> YamlDoc:
    text = (CATALOG_DIR / name).read_text(encoding="utf-8")
    return load_yaml(text, f"heddle/data/catalog/{name}", CatalogError)


_T = TypeVar("_T", bound=BaseModel)


def _validate(schema: type[_T], doc: YamlDoc) -> _T:
    try:
        return schema.model_validate(doc.data if doc.data is not None else {})
    except ValidationError as exc:
        raise CatalogError(format_validation_error(exc, doc)) from None


def _put(table: dict, key: str, value: object, doc: YamlDoc, path: tuple) -> None:
    if key in table:
        raise CatalogError(f"{doc.where(path)}: {key!r} is defined twice (ids must be unique)")
    table[key] = value


def _devices_from(doc: YamlDoc) -> dict[DeviceId, DeviceSpec]:
    parsed = _validate(_DevicesFile, doc)
    out: dict[DeviceId, DeviceSpec] = {}
    for ci, chip in enumerate(parsed.chips):
        for vi, v in enumerate(chip.variants):
            fp32 = v.gpu_fp32_tflops or round(
                v.gpu_cores * APPLE_FP32_ALUS_PER_GPU_CORE * 2 * chip.gpu_clock_ghz / 1000, 2
            )
            cpu = v.cpu_cores or chip.cpu_cores
            power = v.power_w or chip.power_w
            spec = DeviceSpec(
                id=DeviceId(f"{chip.id}-{v.gpu_cores}"),
                name=f"{chip.name} ({v.gpu_cores}-core GPU)",
                vendor="apple",
                family=chip.family,
                tier=chip.tier,
                gpu_cores=v.gpu_cores,
                cpu_performance_cores=cpu[0],
                cpu_efficiency_cores=cpu[1],
                memory_bandwidth_gb_s=v.memory_bandwidth_gb_s or chip.memory_bandwidth_gb_s,
                memory_options_gb=tuple(v.memory_options_gb or chip.memory_options_gb),
                gpu_fp32_tflops=fp32,
                gpu_fp16_tflops=v.gpu_fp16_tflops or fp32,  # Apple GPUs: FP16 ~ FP32 rate
                npu_tops=chip.npu_tops,
                idle_power_w=power[0],
                typical_power_w=power[1],
                max_power_w=power[2],
                price_usd=float(v.price_usd or chip.price_usd or 0.0),
                machine=v.machine or chip.machine or "",
                source=chip.source,
                backend="metal",
                cpu_single_core_relative=chip.cpu_single_core_relative,
                storage_read_gb_s=chip.storage_read_gb_s,
            )
            _put(out, spec.id, spec, doc, ("chips", ci, "variants", vi))
    for di, d in enumerate(parsed.devices):
        spec = DeviceSpec(
            id=DeviceId(d.id), name=d.name, vendor=d.vendor, family=d.family, tier=d.tier,
            gpu_cores=d.gpu_cores, cpu_performance_cores=d.cpu_cores[0],
            cpu_efficiency_cores=d.cpu_cores[1], memory_bandwidth_gb_s=d.memory_bandwidth_gb_s,
            memory_options_gb=tuple(d.memory_options_gb), gpu_fp32_tflops=d.gpu_fp32_tflops,
            gpu_fp16_tflops=d.gpu_fp16_tflops, npu_tops=d.npu_tops, idle_power_w=d.power_w[0],
            typical_power_w=d.power_w[1], max_power_w=d.power_w[2], price_usd=d.price_usd,
            machine=d.machine, source=d.source, unified_memory=d.unified_memory,
            system_memory_gb=d.system_memory_gb, backend=d.backend,
            cpu_single_core_relative=d.cpu_single_core_relative,
            storage_read_gb_s=d.storage_read_gb_s,
        )
        _put(out, spec.id, spec, doc, ("devices", di, "id"))
    return out


def _models_from(doc: YamlDoc) -> dict[ModelId, ModelSpec]:
    parsed = _validate(_ModelsFile, doc)
    out: dict[ModelId, ModelSpec] = {}
    for mi, m in enumerate(parsed.models):
        spec = ModelSpec(
            id=ModelId(m.id),
            name=m.name,
            params_b=m.params_b,
            active_params_b=m.active_params_b or m.params_b,
            layers=m.layers,
            hidden_size=m.hidden_size,
            # K and V, per layer, per KV head, head_dim values of 2 bytes (F16 cache)
            kv_bytes_per_token=2 * m.layers * m.kv_heads * m.head_dim * 2,
            context_length=m.context_length,
            bytes_per_weight=dict(m.bytes_per_weight or parsed.default_bytes_per_weight),
            kind=m.kind,
            source=m.source,
            tier=m.tier,
            tools=m.tools,
            vision=m.vision,
            image_tokens=m.image_tokens,
            image_patch_px=m.image_patch_px,
            fim=m.fim,
            thinking=m.thinking,
        )
        _put(out, spec.id, spec, doc, ("models", mi, "id"))
    return out


def _offers_from(doc: YamlDoc) -> dict[OfferId, CloudOffer]:
    parsed = _validate(_OffersFile, doc)
    out: dict[OfferId, CloudOffer] = {}
    for ai, a in enumerate(parsed.api):
        spec = CloudOffer(
            id=OfferId(a.id), name=a.name, kind=OfferKind.API, tier=a.tier,
            price_usd_per_m_input_tokens=a.price_usd_per_m_input_tokens,
            price_usd_per_m_output_tokens=a.price_usd_per_m_output_tokens,
            network_latency_s=a.network_latency_s, decode_tokens_per_s=a.decode_tokens_per_s,
            prefill_tokens_per_s=a.prefill_tokens_per_s, rate_limit_rpm=a.rate_limit_rpm,
            source=a.source, extra=dict(a.extra),
        )
        _put(out, spec.id, spec, doc, ("api", ai, "id"))
    for ii, i in enumerate(parsed.instances):
        spec = CloudOffer(
            id=OfferId(i.id), name=i.name, kind=OfferKind.INSTANCE, tier=Tier.LOCAL,
            price_usd_per_hour=i.price_usd_per_hour, startup_s=i.startup_s,
            network_latency_s=i.network_latency_s, gpu_count=i.gpu.count,
            gpu_memory_gb=i.gpu.memory_gb, gpu_bandwidth_gb_s=i.gpu.bandwidth_gb_s,
            gpu_fp16_tflops=i.gpu.fp16_tflops, source=i.source, backend=i.gpu.backend,
        )
        _put(out, spec.id, spec, doc, ("instances", ii, "id"))
    return out


def build_catalog(
    devices_doc: YamlDoc | None = None,
    models_doc: YamlDoc | None = None,
    offers_doc: YamlDoc | None = None,
) -> Catalog:
    """Validate and build a catalog; the shipped files are used for any doc not given."""
    return Catalog(
        devices=_devices_from(devices_doc or _read("devices.yaml")),
        models=_models_from(models_doc or _read("models.yaml")),
        offers=_offers_from(offers_doc or _read("offers.yaml")),
    )
