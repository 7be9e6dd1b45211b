"""Learning from use: refit the performance model to the speeds this fleet's agents recorded.

Each live LLM attempt that ran on a local model leaves a `PerfRecord` (the agent appends one
JSON line to ``<data_dir>/perf-records.jsonl``): the device (a catalog id, or the figures a
machine measured about itself), the model and quant, the prompt and output tokens, the time to
first token and the decode tokens/s measured from the stream. `calibrate` turns them into the
shipped calibration's `Measurement`s (prefill: prompt tokens over the time to first token;
decode: the stream's rate) and refits each backend family's efficiencies with the same fit
(`calibration.fit_backend`), reporting the error on the records before and after, and the
error on each record predicted by a fit that left it out. `save_params` writes the result
beside the user's config (``perf-params.json``), where `perf_params.backend_params` finds it:
the twin, the optimizer and ``heddle models predict`` then predict with it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from heddle.models import catalog
from heddle.models.calibration import Measurement, fit_backend, predict
from heddle.models.errors import ModelsError
from heddle.models.generic import MeasuredFigures, generic_device
from heddle.models.perf_params import BackendParams, backend_params, quant_class
from heddle.models.specs import DeviceSpec

__all__ = [
    "MIN_OUTPUT_TOKENS",
    "MIN_PROMPT_TOKENS",
    "BackendFit",
    "CalibrationError",
    "PerfRecord",
    "calibrate",
    "load_records",
    "measurements",
    "save_params",
]

MIN_PROMPT_TOKENS = 64
"""Shorter prompts are not used for prefill: their time to first token is mostly fixed costs
(HTTP, scheduling, the first decode step), not prompt processing."""
MIN_OUTPUT_TOKENS = 8
"""Fewer tokens after the first give no steady decode rate."""


class CalibrationError(ModelsError, ValueError):
    """A records file was refused (the message names file, line and field). The CLI prints it."""


class PerfRecord(BaseModel):
    """One attempt's measured speed (one JSON line of a records file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    node: str
    device: str | None = None  # catalog device id; None: see ``measured``
    measured: MeasuredFigures | None = None
    backend: str  # "ollama", "lm-studio", "mlx", ...
    model: str
    quant: str
    prompt_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)
    ttft_s: float | None = Field(None, gt=0)
    decode_tokens_per_s: float | None = Field(None, gt=0)
    at: float

    def device_spec(self) -> DeviceSpec:
        if self.device is not None:
            return catalog.device(self.device)
        if self.measured is None:
            raise CalibrationError(f"record of node {self.node!r}: no device and no measured figures")
        return generic_device(self.measured, self.node)


def load_records(path: Path) -> list[PerfRecord]:
    """Every record of a JSON-lines file; CalibrationError names ``file:line: field``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CalibrationError(f"{path}: cannot read the records file: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise CalibrationError(f"{path}: byte {exc.start} is not UTF-8 text; expected JSON lines "
                               "of speed records") from None
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(PerfRecord.model_validate_json(line))
        except ValidationError as exc:
            e = exc.errors()[0]
            where = ".".join(str(p) for p in e["loc"]) or "(line)"
            raise CalibrationError(f"{path}:{number}: {where}: {e['msg']}") from None
    return out


def measurements(records: Sequence[PerfRecord]) -> list[Measurement]:
    """Prefill and decode figures of the records long enough to say something (a model or
    device the catalog does not know raises CalibrationError naming it)."""
    out = []
    for r in records:
        try:
            device, model = r.device_spec(), catalog.model(r.model)
        except ModelsError as exc:
            raise CalibrationError(f"record of node {r.node!r}: {exc}") from None
        label = f"{r.node} {device.id} {r.model} {r.quant}"
        if r.ttft_s is not None and r.prompt_tokens >= MIN_PROMPT_TOKENS:
            out.append(Measurement(device, model.id, r.quant, "pp", r.prompt_tokens,
                                   r.prompt_tokens / r.ttft_s, f"{label} prefill"))
        if r.decode_tokens_per_s is not None and r.output_tokens > MIN_OUTPUT_TOKENS:
            # predict() reads a decode run of N tokens at N/2 context: the context this run
            # decoded at, on average, is its prompt plus half its output
            context = 2 * r.prompt_tokens + r.output_tokens
            out.append(Measurement(device, model.id, r.quant, "tg", context,
                                   r.decode_tokens_per_s, f"{label} decode"))
    return out


def _mape(p: BackendParams, rows: Sequence[Measurement]) -> float:
    return float(np.mean([abs(predict(p, m) / m.tokens_per_s - 1) * 100 for m in rows]))


@dataclass(frozen=True, slots=True)
class BackendFit:
    """One backend family's refit: its parameters and its error on the records (%)."""

    backend: str
    rows: int
    before: BackendParams
    after: BackendParams
    error_before_pct: float
    error_after_pct: float
    error_left_out_pct: float | None  # each record predicted by a fit without it (None: < 2 rows)


def _keep_unmeasured(fitted: BackendParams, start: BackendParams, rows: Sequence[Measurement]) -> BackendParams:
    """``fitted`` with the per-quantization efficiencies no record measured put back to
    ``start``'s: a fleet that only runs 4-bit models says nothing about f16 arithmetic."""
    def merged(kind: str, new: tuple[float, ...], old: tuple[float, ...]) -> tuple[float, float, float]:
        seen = {quant_class(m.quant) for m in rows if m.kind == kind}
        return tuple(n if i in seen else o for i, (n, o) in enumerate(zip(new, old, strict=True)))  # type: ignore[return-value]

    return replace(
        fitted,
        decode_compute_efficiency=merged("tg", fitted.decode_compute_efficiency, start.decode_compute_efficiency),
        prefill_compute_efficiency=merged("pp", fitted.prefill_compute_efficiency, start.prefill_compute_efficiency),
    )


def calibrate(records: Sequence[PerfRecord], current: dict[str, BackendParams] | None = None) -> list[BackendFit]:
    """Refit each backend family that has records, starting from ``current`` (default: the
    parameters in use now). Families need at least one decode and one prefill figure."""
    rows = measurements(records)
    by_backend: dict[str, list[Measurement]] = {}
    for m in rows:
        by_backend.setdefault(m.device.backend, []).append(m)
    fits = []
    for backend, group in sorted(by_backend.items()):
        kinds = {m.kind for m in group}
        if kinds != {"pp", "tg"}:
            raise CalibrationError(f"backend {backend}: records give only "
                                   f"{'prefill' if 'pp' in kinds else 'decode'} figures; the fit "
                                   "needs both (longer prompts, or runs with more output)")
        start = (current or {}).get(backend) or backend_params(backend)
        after = _keep_unmeasured(fit_backend(group, start), start, group)
        left_out = None
        if len(group) > 2:
            errs = []
            for i, m in enumerate(group):
                rest = group[:i] + group[i + 1:]
                if {r.kind for r in rest} == {"pp", "tg"}:
                    fitted = _keep_unmeasured(fit_backend(rest, start), start, rest)
                    errs.append(abs(predict(fitted, m) / m.tokens_per_s - 1) * 100)
            left_out = float(np.mean(errs)) if errs else None
        fits.append(BackendFit(backend, len(group), start, after, _mape(start, group),
                               _mape(after, group), left_out))
    return fits


def save_params(path: Path, fits: Sequence[BackendFit], existing: dict[str, BackendParams] | None = None) -> None:
    """Write the fitted parameters (merged over ``existing`` ones of other backends) as JSON."""
    params = {**(existing or {}), **{f.backend: f.after for f in fits}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({b: asdict(p) for b, p in sorted(params.items())}, indent=2) + "\n",
                    encoding="utf-8")
