"""Fit the performance model's efficiencies to measurements and measure its accuracy.

The Metal efficiencies are fitted (scipy least squares on log error) to the shipped llama.cpp
LLaMA-2-7B measurements on Apple M1/M2. Accuracy is measured on chips the fit never saw:
fit on one family and predict the other (M1 <-> M2), and leave out each tier in turn.
CUDA factors are anchored on one published figure each and checked against the others.
The MoE layer overhead on Metal is fitted to published gpt-oss-20b figures on two Apple chips
(`MOE_CSV`); its accuracy is measured by leaving each chip out in turn.
`python -m heddle.models.calibration` prints the fit and the accuracy tables.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from scipy.optimize import brentq, least_squares

from heddle.models import catalog
from heddle.models.perf import offer_device, rates_with
from heddle.models.perf_params import CUDA, METAL, QUANT_CLASSES, BackendParams
from heddle.models.specs import DeviceSpec

__all__ = [
    "CALIBRATION_CSV",
    "CUDA_ANCHORS",
    "CUDA_CHECKS",
    "HOLDOUT_SCENARIOS",
    "MOE_CSV",
    "Measurement",
    "accuracy_report",
    "anchor_cuda",
    "cuda_check_errors",
    "fit_backend",
    "fit_moe",
    "holdout_mape",
    "load_measurements",
    "load_moe_measurements",
    "mape_by_quant",
    "moe_holdout_errors",
]

CALIBRATION_CSV = (
    Path(__file__).resolve().parent.parent / "data" / "catalog" / "calibration_llamacpp_llama2_7b_apple_m1_m2.csv"
)
"""llama.cpp discussion #4167 (Apple Silicon, LLaMA-2-7B, Metal): see the file's header."""

MOE_CSV = CALIBRATION_CSV.parent / "calibration_moe_gpt_oss_published.csv"
"""Published llama-bench figures for gpt-oss (one row per figure, with build and source URL)."""

CALIBRATION_MODEL = "llama-2-7b"
PP_TOKENS, TG_TOKENS = 512, 128
"""llama-bench's default test sizes: pp512 (prompt of 512) and tg128 (generate 128)."""


@dataclass(frozen=True, slots=True)
class Measurement:
    device: DeviceSpec
    model_id: str
    quant: str
    kind: str  # "pp" (prefill tokens/s) | "tg" (decode tokens/s)
    context_tokens: int  # the run's prompt length (pp) or generated length (tg)
    tokens_per_s: float
    label: str  # what the figure is, for reports


def _device_id(chip: str, gpu_cores: str) -> str:
    parts = chip.lower().split()
    return f"{'-'.join(parts)}-{gpu_cores}"


def load_measurements(path: Path = CALIBRATION_CSV) -> list[Measurement]:
    """Every non-empty figure in the calibration CSV as a Measurement on a catalog device."""
    out: list[Measurement] = []
    with path.open(encoding="utf-8") as fh:
        rows = csv.DictReader(line for line in fh if not line.startswith("#"))
        for row in rows:
            dev = catalog.device(_device_id(row["chip"], row["gpu_cores"]))
            for quant in ("f16", "q8_0", "q4_0"):
                for kind, n in (("pp", PP_TOKENS), ("tg", TG_TOKENS)):
                    cell = row[f"{quant}_{kind}{n}"]
                    if cell:
                        out.append(Measurement(dev, CALIBRATION_MODEL, quant, kind, n, float(cell), f"{dev.id} {quant} {kind}{n}"))
    return out


def predict(p: BackendParams, m: Measurement) -> float:
    """The model's tokens/s for the conditions of measurement `m`."""
    model = catalog.model(m.model_id)
    if m.kind == "pp":
        return rates_with(p, m.device, model, m.quant, 1, m.context_tokens)[0]
    # tg: generating N tokens from an empty context sees N/2 tokens of context on average
    return rates_with(p, m.device, model, m.quant, 1, m.context_tokens // 2)[1]


# Parameter vectors (scaled so every entry is of order 1 for the optimizer).
_DECODE_SCALE = np.array([1.0, 1e-4, 1.0, 1.0, 1.0])
_PREFILL_SCALE = np.array([1.0, 1.0, 1.0, 1e-6])


def _with_decode(p: BackendParams, x: np.ndarray) -> BackendParams:
    v = [float(f) for f in x * _DECODE_SCALE]
    return replace(p, bandwidth_efficiency=v[0], decode_layer_overhead_s=v[1], decode_compute_efficiency=tuple(v[2:5]))


def _with_prefill(p: BackendParams, x: np.ndarray) -> BackendParams:
    v = [float(f) for f in x * _PREFILL_SCALE]
    return replace(p, prefill_compute_efficiency=tuple(v[0:3]), prefill_layer_overhead_s=v[3])


def _fit(rows: Sequence[Measurement], start: BackendParams, setter: Callable, x0, upper) -> BackendParams:
    def residuals(x: np.ndarray) -> np.ndarray:
        p = setter(start, x)
        return np.array([np.log(predict(p, m) / m.tokens_per_s) for m in rows])

    result = least_squares(residuals, np.asarray(x0, float), bounds=(1e-3, np.asarray(upper, float)))
    return setter(start, result.x)


def fit_backend(rows: Sequence[Measurement], start: BackendParams = METAL) -> BackendParams:
    """Least-squares fit (log error) of the decode and prefill efficiencies to `rows`.

    Efficiencies are bounded to (0, 1] (a fraction of the peak); overheads to (0, 1 ms].
    """
    tg = [m for m in rows if m.kind == "tg"]
    pp = [m for m in rows if m.kind == "pp"]
    p = _fit(tg, start, _with_decode, [0.8, 1.0, 0.5, 0.5, 0.5], [1.0, 10.0, 1.0, 1.0, 1.0])
    return _fit(pp, p, _with_prefill, [0.6, 0.6, 0.6, 1.0], [1.0, 1.0, 1.0, 1000.0])


def mape_by_quant(p: BackendParams, rows: Sequence[Measurement]) -> dict[tuple[str, str], float]:
    """Mean absolute percentage error per (kind, quant) over `rows`."""
    errs: dict[tuple[str, str], list[float]] = {}
    for m in rows:
        errs.setdefault((m.kind, m.quant), []).append(abs(predict(p, m) / m.tokens_per_s - 1) * 100)
    return {k: float(np.mean(v)) for k, v in sorted(errs.items())}


def holdout_mape(
    rows: Sequence[Measurement], held_out: Callable[[DeviceSpec], bool]
) -> dict[tuple[str, str], float]:
    """Fit on the rows whose device is not `held_out`, report MAPE on the held-out ones."""
    train = [m for m in rows if not held_out(m.device)]
    test = [m for m in rows if held_out(m.device)]
    return mape_by_quant(fit_backend(train), test)


# ---- MoE: the Metal layer-overhead factor from published gpt-oss figures --------------

def load_moe_measurements(path: Path = MOE_CSV) -> list[Measurement]:
    """Every row of the MoE CSV as a Measurement (`test` is pp<N> or tg<N>)."""
    out: list[Measurement] = []
    with path.open(encoding="utf-8") as fh:
        for row in csv.DictReader(line for line in fh if not line.startswith("#")):
            kind, n = row["test"][:2], int(row["test"][2:])
            dev = catalog.device(row["device"])
            label = f"{dev.id} {row['model']} {row['quant']} {row['test']}"
            out.append(Measurement(dev, row["model"], row["quant"], kind, n, float(row["tokens_per_s"]), label))
    return out


def fit_moe(rows: Sequence[Measurement], start: BackendParams = METAL) -> BackendParams:
    """`start` with its MoE layer-overhead factor fitted (log least squares) to the decode
    rows of `rows`. Prefill rows are not fitted: they check the model."""
    tg = [m for m in rows if m.kind == "tg"]
    if not tg:
        raise ValueError("fit_moe needs at least one decode (tg) measurement")

    def residuals(x: np.ndarray) -> np.ndarray:
        p = replace(start, moe_layer_overhead_factor=float(x[0]))
        return np.array([np.log(predict(p, m) / m.tokens_per_s) for m in tg])

    result = least_squares(residuals, np.array([1.0]), bounds=(0.05, 50.0))
    return replace(start, moe_layer_overhead_factor=float(result.x[0]))


def moe_holdout_errors(rows: Sequence[Measurement] | None = None) -> list[tuple[str, float, float, float]]:
    """(label, measured, predicted, error %) for every Metal MoE figure, each predicted by a
    fit that left its chip out (the factor then comes from the other chips only)."""
    rows = load_moe_measurements() if rows is None else rows
    metal = [m for m in rows if m.device.backend == "metal"]
    out = []
    for m in metal:
        fitted = fit_moe([r for r in metal if r.device.id != m.device.id])
        pred = predict(fitted, m)
        out.append((m.label, m.tokens_per_s, pred, (pred / m.tokens_per_s - 1) * 100))
    return out


# ---- CUDA: one anchor per runtime-dependent factor, the rest are checks -----------------

_H100_SXM = replace(
    offer_device(catalog.offer("aws-p5.48xlarge")),
    memory_bandwidth_gb_s=catalog.offer("aws-p5.48xlarge").gpu_bandwidth_gb_s,
    gpu_fp16_tflops=catalog.offer("aws-p5.48xlarge").gpu_fp16_tflops,
    gpu_fp32_tflops=catalog.offer("aws-p5.48xlarge").gpu_fp16_tflops / 2,
)
"""One H100 SXM (the GPU of p5.48xlarge) for the published single-GPU figure."""


def _m(device: DeviceSpec, model_id: str, quant: str, kind: str, n: int, value: float) -> Measurement:
    return Measurement(device, model_id, quant, kind, n, value, f"{device.id} {model_id} {quant} {kind}{n}")


def _cuda_measurements() -> tuple[list[Measurement], list[Measurement]]:
    dev = catalog.device
    anchors = [
        # third-party llama.cpp notes (docs/hardware-facts.md lists them)
        _m(dev("rtx-4090"), "llama-2-7b", "q4_0", "tg", 128, 186.21),
        _m(dev("dgx-spark"), "gpt-oss-20b", "mxfp4", "tg", 32, 84.10),
        _m(dev("dgx-spark"), "gpt-oss-20b", "mxfp4", "pp", 2048, 3782.76),
    ]
    checks = [
        _m(dev("rtx-5090"), "llama-2-7b", "q4_0", "tg", 128, 290.02),
        _m(_H100_SXM, "llama-2-7b", "q4_0", "tg", 128, 267.81),
        _m(dev("dgx-spark"), "llama-2-7b", "q4_0", "tg", 128, 57.21),
        _m(dev("dgx-spark"), "gpt-oss-120b", "mxfp4", "tg", 32, 59.02),
        _m(dev("dgx-spark"), "gpt-oss-120b", "mxfp4", "pp", 2048, 1937.54),
    ]
    return anchors, checks


CUDA_ANCHORS, CUDA_CHECKS = _cuda_measurements()


def _solve(p: BackendParams, m: Measurement, field: str, lo: float, hi: float, as_tuple: bool = False) -> BackendParams:
    def make(v: float) -> BackendParams:
        return replace(p, **{field: (v, v, v) if as_tuple else v})

    v = brentq(lambda v: np.log(predict(make(v), m) / m.tokens_per_s), lo, hi, xtol=1e-12)
    return make(float(v))


def anchor_cuda(metal: BackendParams = METAL) -> BackendParams:
    """CUDA = Metal's efficiencies with the runtime-dependent factors solved from the anchors:
    per-layer decode overhead (RTX 4090), MoE overhead factor and prefill efficiency
    (DGX Spark, gpt-oss-20b). Solved in that order; each anchor then matches exactly."""
    tg_dense, tg_moe, pp_moe = CUDA_ANCHORS
    p = replace(metal, prefill_layer_overhead_s=0.0, moe_layer_overhead_factor=1.0)
    p = _solve(p, tg_dense, "decode_layer_overhead_s", 1e-7, 1e-3)
    p = _solve(p, tg_moe, "moe_layer_overhead_factor", 0.1, 50.0)
    return _solve(p, pp_moe, "prefill_compute_efficiency", 0.01, 1.0, as_tuple=True)


def cuda_check_errors(p: BackendParams = CUDA) -> list[tuple[str, float, float, float]]:
    """(label, measured, predicted, error %) for every held-out CUDA figure."""
    out = []
    for m in CUDA_CHECKS:
        pred = predict(p, m)
        out.append((m.label, m.tokens_per_s, pred, (pred / m.tokens_per_s - 1) * 100))
    return out


HOLDOUT_SCENARIOS: tuple[tuple[str, Callable[[DeviceSpec], bool]], ...] = (
    ("fit M2, predict M1", lambda d: d.family == "m1"),
    ("fit M1, predict M2", lambda d: d.family == "m2"),
    ("leave out base", lambda d: d.tier == "base"),
    ("leave out pro", lambda d: d.tier == "pro"),
    ("leave out max", lambda d: d.tier == "max"),
    ("leave out ultra", lambda d: d.tier == "ultra"),
)
"""The unseen-chip scenarios the accuracy is reported for."""


def accuracy_report() -> str:
    """Markdown: the fitted factors, MAPE per scenario and quantization, CUDA checks."""
    rows = load_measurements()
    fitted = fit_backend(rows)
    quants = ("f16", "q8_0", "q4_0")
    lines = [
        "| scenario | " + " | ".join(f"decode {q}" for q in quants) + " | "
        + " | ".join(f"prefill {q}" for q in quants) + " |",
        "|---" * 7 + "|",
    ]
    for name, held in (("in-sample (all 16 chips)", None), *HOLDOUT_SCENARIOS):
        mape = mape_by_quant(fitted, rows) if held is None else holdout_mape(rows, held)
        cells = [f"{mape[(k, q)]:.1f}%" for k in ("tg", "pp") for q in quants]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    lines += ["", "| held-out published figure | measured tok/s | predicted tok/s | error |", "|---|---|---|---|"]
    lines += [f"| {label} | {meas:.1f} | {pred:.1f} | {err:+.1f}% |" for label, meas, pred, err in cuda_check_errors()]
    moe = load_moe_measurements()
    lines += ["", "| MoE figure (Metal: its chip left out of the fit) | measured tok/s | predicted tok/s | error |",
              "|---|---|---|---|"]
    lines += [f"| {label} | {meas:.1f} | {pred:.1f} | {err:+.1f}% |" for label, meas, pred, err in moe_holdout_errors(moe)]
    lines += [f"| {m.label} (older build) | {m.tokens_per_s:.1f} | {predict(CUDA, m):.1f} | "
              f"{(predict(CUDA, m) / m.tokens_per_s - 1) * 100:+.1f}% |" for m in moe if m.device.backend != "metal"]
    lines += [
        "",
        (f"Metal fit (all rows): bandwidth efficiency {fitted.bandwidth_efficiency:.3f}, decode per-layer "
        f"overhead {fitted.decode_layer_overhead_s * 1e6:.1f} us, decode compute efficiency "
        f"{', '.join(f'{q} {e:.3f}' for q, e in zip(QUANT_CLASSES, fitted.decode_compute_efficiency))}, "
        f"prefill compute efficiency "
        f"{', '.join(f'{q} {e:.3f}' for q, e in zip(QUANT_CLASSES, fitted.prefill_compute_efficiency))}, "
        f"prefill per-layer overhead {fitted.prefill_layer_overhead_s * 1e6:.2f} us."),
    ]
    lines.append(f"Metal MoE layer overhead (gpt-oss on Apple chips): x{fit_moe(moe, fitted).moe_layer_overhead_factor:.3f}.")
    cuda = anchor_cuda(fitted)
    lines.append(
        f"CUDA anchors: decode per-layer overhead {cuda.decode_layer_overhead_s * 1e6:.1f} us, MoE layer "
        f"overhead x{cuda.moe_layer_overhead_factor:.2f}, prefill compute efficiency "
        f"{cuda.prefill_compute_efficiency[0]:.3f}."
    )
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    print(accuracy_report())
