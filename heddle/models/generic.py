"""A machine the catalog does not list, described by what it measured about itself.

An agent on unknown hardware runs a short micro-benchmark at start (heddle.live.agent.
benchmark): one core's speed on the same work as the ``burn`` step, the memory bandwidth of a
large copy and the arithmetic rate of a matrix product. `generic_device` turns those figures
into a `DeviceSpec` the performance model can predict from, its ``source`` saying the figures
were measured, not catalogued. The measured bandwidth and arithmetic rate stand in for the
peaks of a catalog entry (they are achieved figures, so the efficiencies of the ``cpu``
backend are estimates until `heddle models calibrate` fits them to this machine's own runs).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from heddle.models.ids import DeviceId
from heddle.models.specs import DeviceSpec

__all__ = [
    "GENERIC_FAMILY",
    "REFERENCE_BURN_ITERATIONS_PER_S",
    "MeasuredFigures",
    "generic_device",
]

GENERIC_FAMILY = "generic"
REFERENCE_BURN_ITERATIONS_PER_S = 500_000
"""Iterations of the ``burn`` step (chained SHA-256 of 64 bytes) one reference core (the
catalog's ``cpu_single_core_relative`` 1.0, an Apple M1 performance core) runs per second: an
estimate (0.33-0.6 M/s measured on a loaded 2-core Linux machine, 2026-12-06). A submission
turns a step's ``cpu_seconds`` into burn iterations with it and the micro-benchmark turns a
measured burn rate into a per-core speed with it, so the two agree by construction."""
IDLE_POWER_W = 10.0
POWER_PER_CORE_W = 5.0
"""Estimates for a machine nobody catalogued: a small desktop idles near 10 W and draws about
5 W per busy core (typical) or 10 W (max); the energy cost model needs some figure."""
STORAGE_READ_GB_S = 1.0
"""Model load speed of an unknown disk: an estimate between a SATA SSD and an NVMe drive."""


class MeasuredFigures(BaseModel):
    """What a machine measured about itself (the agent's capacity report and its speed records
    carry these; the wire message adds when and how long)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cpu_single_core_relative: float = Field(gt=0, description="One core's speed vs the reference core (the burn step's rate).")
    memory_bandwidth_gb_s: float = Field(gt=0, description="Large-array copy: bytes read + written per second.")
    cpu_gflops: float = Field(gt=0, description="float32 matrix product, all cores.")
    cores: int = Field(ge=1, description="Logical cores.")
    memory_gb: float = Field(gt=0, description="Installed memory.")


def generic_device(figures: MeasuredFigures, name: str) -> DeviceSpec:
    """The DeviceSpec of a measured machine (id ``generic-<name>``, backend ``cpu``)."""
    tflops = figures.cpu_gflops / 1000.0
    return DeviceSpec(
        id=DeviceId(f"{GENERIC_FAMILY}-{name}"),
        name=f"{name} (measured, not in the catalog)",
        vendor=GENERIC_FAMILY,
        family=GENERIC_FAMILY,
        tier="",
        gpu_cores=0,
        cpu_performance_cores=figures.cores,
        cpu_efficiency_cores=0,
        memory_bandwidth_gb_s=figures.memory_bandwidth_gb_s,
        memory_options_gb=(max(1, round(figures.memory_gb)),),
        gpu_fp32_tflops=tflops,
        gpu_fp16_tflops=tflops,  # CPUs do half-precision arithmetic no faster than single
        npu_tops=0.0,
        idle_power_w=IDLE_POWER_W,
        typical_power_w=IDLE_POWER_W + POWER_PER_CORE_W * figures.cores,
        max_power_w=IDLE_POWER_W + 2 * POWER_PER_CORE_W * figures.cores,
        price_usd=0.0,
        machine=name,
        source=(f"measured by the agent at start: one core {figures.cpu_single_core_relative:.2f}x "
                f"the reference, memory copy {figures.memory_bandwidth_gb_s:.1f} GB/s, "
                f"{figures.cpu_gflops:.1f} GFLOP/s float32; power and disk are estimates"),
        unified_memory=True,
        backend="cpu",
        cpu_single_core_relative=figures.cpu_single_core_relative,
        storage_read_gb_s=STORAGE_READ_GB_S,
    )
