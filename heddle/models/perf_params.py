"""Fitted efficiency factors of the performance model, one set per inference backend.

`METAL` is fitted by `heddle.models.calibration.fit_backend()` to the shipped llama.cpp
measurements on Apple M1/M2 (heddle/data/catalog/calibration_*.csv), and its MoE factor by
`fit_moe()` to published gpt-oss figures on Apple chips; a test refits and checks these
literals still match. `CUDA` keeps the Metal bandwidth and mat-vec efficiencies (same
physics) and replaces the factors that depend on the runtime (per-layer decode overhead, MoE
overhead, prefill efficiency), each solved from ONE published measurement and checked against
the other published figures (docs/performance-model.md).
`NEURON` (Inferentia/Trainium) has no measurement at all: it reuses CUDA's (estimate).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

from heddle.models.errors import PerfError
from heddle.models.userdir import config_path

__all__ = [
    "CPU",
    "CUDA",
    "METAL",
    "NEURON",
    "QUANT_CLASSES",
    "BackendParams",
    "backend_params",
    "learned_params",
    "learned_params_path",
    "quant_class",
]

QUANT_CLASSES = ("f16", "q8_0", "q4")
"""Quantizations the calibration measured; every catalog quant maps onto one of them."""

_QUANT_TO_CLASS = {
    "f16": 0, "bf16": 0,
    "q8_0": 1,
    "q4_0": 2,
    "q4_k_m": 2,  # assumption: K-quant kernels run like q4_0 (no shipped measurement)
    "mxfp4": 2,  # assumption: 4-bit microscaled weights run like q4_0
}


def quant_class(quant: str) -> int:
    """Index into QUANT_CLASSES of the calibrated quantization `quant` behaves like."""
    try:
        return _QUANT_TO_CLASS[quant]
    except KeyError:
        raise PerfError(f"no performance calibration for quantization {quant!r}; expected one of {sorted(_QUANT_TO_CLASS)}") from None


@dataclass(frozen=True, slots=True)
class BackendParams:
    """Efficiencies of one inference runtime family (fractions of the device's peak)."""

    bandwidth_efficiency: float  # share of peak memory bandwidth decode reaches
    decode_layer_overhead_s: float  # fixed cost per layer per decode step (dispatch, sync)
    decode_compute_efficiency: tuple[float, float, float]  # per QUANT_CLASSES, mat-vec
    prefill_compute_efficiency: tuple[float, float, float]  # per QUANT_CLASSES, mat-mat
    prefill_layer_overhead_s: float  # fixed cost per layer per prompt token
    moe_layer_overhead_factor: float = 1.0  # MoE layers launch router + per-expert kernels


# ---- fitted: python -m heddle.models.calibration (all 16 Apple M1/M2 rows, 90 figures)
METAL = BackendParams(
    bandwidth_efficiency=1.0,
    decode_layer_overhead_s=1.909e-04,
    decode_compute_efficiency=(0.3476, 0.7577, 1.0),
    prefill_compute_efficiency=(0.7770, 0.6869, 0.6826),
    prefill_layer_overhead_s=1.382e-06,
    # fitted: calibration.fit_moe() on published gpt-oss-20b decode figures (M1 Max, M4 Pro;
    # heddle/data/catalog/calibration_moe_gpt_oss_published.csv)
    moe_layer_overhead_factor=1.226,
)

# ---- anchored: one published measurement each (see calibration.CUDA_ANCHORS)
CUDA = replace(
    METAL,
    decode_layer_overhead_s=4.669e-05,
    moe_layer_overhead_factor=3.681,
    prefill_compute_efficiency=(0.4529, 0.4529, 0.4529),
    prefill_layer_overhead_s=0.0,
)

NEURON = CUDA
"""No measurement: Inferentia2/Trainium are predicted like a CUDA GPU of the same specs."""

CPU = METAL
"""A measured machine without a catalogued accelerator (heddle.models.generic): its
bandwidth and FLOP rate are achieved figures, not peaks, so Metal's efficiencies are an
estimate for llama.cpp on its CPU until `heddle models calibrate` fits them to its runs."""

_BY_NAME = {"metal": METAL, "cuda": CUDA, "neuron": NEURON, "cpu": CPU}


LEARNED_FILE = "perf-params.json"
"""`heddle models calibrate` writes this beside the user's config (heddle.models.learned)."""


def learned_params_path() -> Path:
    return config_path().parent / LEARNED_FILE


@lru_cache(maxsize=8)
def learned_params(path: Path) -> dict[str, BackendParams]:
    """The parameters `heddle models calibrate` fitted for this fleet ({} when it never ran);
    PerfError names the file and the field when it cannot be used."""
    if not path.is_file():
        return {}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        out = {}
        for backend, fields in doc.items():
            if backend not in _BY_NAME:
                raise ValueError(f"{backend}: unknown backend; expected one of {sorted(_BY_NAME)}")
            out[backend] = BackendParams(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})
        return out
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise PerfError(f"{path}: cannot use the calibrated parameters ({exc}); run "
                        "`heddle models calibrate` again or delete the file") from None


def backend_params(backend: str) -> BackendParams:
    """The parameters in use for ``backend``: this fleet's calibration when there is one
    (`learned_params`), else the shipped fit."""
    if backend not in _BY_NAME:
        raise PerfError(f"unknown inference backend {backend!r}; expected one of {sorted(_BY_NAME)}")
    return learned_params(learned_params_path()).get(backend, _BY_NAME[backend])
