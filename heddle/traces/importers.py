"""Importers for public trace formats: Azure LLM inference 2023, BurstGPT, and any CSV by mapping.

Each maps the source columns onto the schema and fills the fields the source lacks from
`ImportDefaults` (docs/traces.md lists them). Arrival times become seconds from the earliest
kept request. Task ids are `<prefix><source line>`, so any row can be found in the source.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from heddle.traces.csvrows import (
    Field as CsvField,
)
from heddle.traces.csvrows import (
    SkipReport,
    as_choice,
    as_float,
    as_int,
    as_text,
    as_time_s,
    read_csv,
)
from heddle.traces.errors import TraceError, TraceValidationError
from heddle.traces.schema import COLUMN_NAMES, COLUMNS, KINDS, PRIVACIES, TIERS, Encoding
from heddle.traces.trace import Trace

__all__ = [
    "BURSTGPT_MODELS",
    "FORMATS",
    "CsvMapping",
    "ImportDefaults",
    "ImportResult",
    "import_azure",
    "import_burstgpt",
    "import_csv",
    "import_trace",
    "load_mapping",
]

AZURE_ATTRIBUTION = (
    "Azure LLM inference trace 2023 (Azure/AzurePublicDataset), CC-BY 4.0. Patel et al., "
    "'Splitwise: Efficient generative LLM inference using phase splitting', ISCA 2024."
)
"""Attribution the Azure traces' licence asks for; written into the imported trace's meta."""
BURSTGPT_ATTRIBUTION = (
    "BurstGPT (Azure OpenAI GPT usage), Wang et al., 'BurstGPT: A Real-world Workload "
    "Dataset to Optimize LLM Serving Systems', 2024."
)
"""Attribution for BurstGPT-derived traces."""


@dataclass(frozen=True, slots=True)
class BurstModel:
    """How one BurstGPT `Model` value maps onto our catalog."""

    model: str
    quant: str
    tier: str


BURSTGPT_MODELS: dict[str, BurstModel] = {
    # GPT-3.5-class chat -> a mid-size open model, "standard" tier (our judgement)
    "ChatGPT": BurstModel("qwen2.5-32b", "q4_k_m", "standard"),
    # GPT-4 -> the largest open dense model in the catalog, preferring the frontier tier
    "GPT-4": BurstModel("llama-3.1-70b", "q4_k_m", "frontier"),
}
"""BurstGPT model names -> (catalog model, quantization, tier preference)."""
BURSTGPT_LOG_TYPES: dict[str, tuple[str, int]] = {
    "Conversation log": ("chat", 1),  # a person waits: interactive priority
    "API log": ("api", 0),
}
"""BurstGPT `Log Type` -> (budget account, priority)."""


class ImportDefaults(BaseModel):
    """Values for schema fields a source does not have (CLI: `--set field=value`)."""

    model_config = ConfigDict(extra="forbid")
    kind: str = "llm"
    # runs on every catalog device, so a replay exercises the whole fleet (override freely)
    model: str = "llama-3.1-8b"
    quant: str = "q4_k_m"
    prompt_tokens: int = Field(0, ge=0)
    output_tokens: int = Field(0, ge=0)
    cpu_seconds: float = Field(0.0, ge=0)
    memory_gb: float = Field(0.0, ge=0)
    privacy: str = "public"
    owner: str = "imported"
    deadline_s: float | None = Field(None, gt=0)  # relative; None = no deadline
    tier: str = ""
    account: str = "default"
    priority: int = Field(0, ge=-128, le=127)
    pipeline_id: str = ""
    stage: str = ""
    depends_on: str = ""
    task_id_prefix: str = "r"

    @field_validator("privacy")
    @classmethod
    def _privacy(cls, v: str) -> str:
        if v not in PRIVACIES:
            raise ValueError(f"expected one of {list(PRIVACIES)}")
        return v

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str) -> str:
        if v not in KINDS:
            raise ValueError(f"expected one of {list(KINDS)}")
        return v

    @field_validator("tier")
    @classmethod
    def _tier(cls, v: str) -> str:
        if v not in TIERS:
            raise ValueError(f"expected one of {list(TIERS)}")
        return v


class CsvMapping(BaseModel):
    """Generic CSV import: schema field -> CSV column, plus defaults for the rest."""

    model_config = ConfigDict(extra="forbid")
    columns: dict[str, str]
    defaults: ImportDefaults = ImportDefaults()
    time_unit_s: float = Field(1.0, gt=0)  # a numeric time column's unit: 0.001 for ms

    @field_validator("columns")
    @classmethod
    def _known(cls, v: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(v) - set(COLUMN_NAMES))
        if unknown:
            raise ValueError(f"unknown schema field(s) {unknown}; fields: {list(COLUMN_NAMES)}")
        if "arrival_s" not in v:
            raise ValueError("the mapping must name the CSV column for arrival_s")
        return v


@dataclass(slots=True)
class ImportResult:
    trace: Trace
    report: SkipReport


def load_mapping(path: str | Path) -> CsvMapping:
    """Read a generic-CSV mapping from YAML (`columns:`, optional `defaults:`, `time_unit_s:`)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
        return CsvMapping.model_validate(data)
    except (yaml.YAMLError, ValidationError) as exc:
        raise TraceValidationError(f"bad mapping: {exc}", path=path) from None


def _converter_for(name: str):
    col = next(c for c in COLUMNS if c.name == name)
    if name == "arrival_s":
        return as_time_s
    if name == "deadline_s":
        return as_float(minimum=1e-9, allow_empty=True)
    if col.encoding is Encoding.NUMERIC:
        if col.dtype.startswith("int"):
            info = np.iinfo(col.dtype)
            low = int(info.min) if name == "priority" else 0
            return as_int(low, int(info.max))
        return as_float(0.0)
    if col.fixed_categories:
        return as_choice(col.fixed_categories)
    return as_text


def _build(
    columns: Mapping[str, np.ndarray], lines: np.ndarray, defaults: ImportDefaults,
    meta: Mapping[str, str], time_unit_s: float = 1.0,
) -> Trace:
    """Fill defaults, make arrivals relative to the earliest, sort, derive task ids."""
    n = len(lines)
    data: dict[str, object] = {}
    for name in COLUMN_NAMES:
        if name in columns:
            data[name] = columns[name]
        elif name == "task_id":
            data[name] = np.char.add(defaults.task_id_prefix, lines.astype(str)).astype(object)
        elif name == "deadline_s":
            data[name] = np.full(n, np.nan if defaults.deadline_s is None else defaults.deadline_s)
        else:
            data[name] = np.full(n, getattr(defaults, name), dtype=object)
    arrival = np.asarray(data["arrival_s"], dtype="float64") * time_unit_s
    data["arrival_s"] = arrival - arrival.min() if n else arrival
    frame = pd.DataFrame(data)
    # depends_on etc. must still pass validate(); a bad mapping shows up here
    return Trace.from_frame(frame, meta)


def import_azure(
    path: str | Path, *, skip_bad: bool = False, defaults: ImportDefaults | None = None
) -> ImportResult:
    """Azure LLM inference 2023 CSV: TIMESTAMP,ContextTokens,GeneratedTokens."""
    fields = [
        CsvField("arrival_s", "TIMESTAMP", as_time_s),
        CsvField("prompt_tokens", "ContextTokens", as_int()),
        CsvField("output_tokens", "GeneratedTokens", as_int()),
    ]
    columns, lines, report = read_csv(path, fields, skip_bad=skip_bad)
    meta = {"source": Path(path).name, "format": "azure-llm-2023",
            "attribution": AZURE_ATTRIBUTION}
    return ImportResult(_build(columns, lines, defaults or ImportDefaults(), meta), report)


def import_burstgpt(
    path: str | Path, *, skip_bad: bool = False, defaults: ImportDefaults | None = None
) -> ImportResult:
    """BurstGPT CSV: Timestamp, Model, Request tokens, Response tokens, Total tokens, Log Type.

    Model and Log Type map through BURSTGPT_MODELS / BURSTGPT_LOG_TYPES; an unknown value is
    a bad row. Total tokens is not used (it is Request + Response).
    """
    fields = [
        CsvField("arrival_s", "Timestamp", as_time_s),
        CsvField("model", "Model", as_choice(list(BURSTGPT_MODELS))),
        CsvField("prompt_tokens", "Request tokens", as_int()),
        CsvField("output_tokens", "Response tokens", as_int()),
        CsvField("account", "Log Type", as_choice(list(BURSTGPT_LOG_TYPES))),
    ]
    columns, lines, report = read_csv(path, fields, skip_bad=skip_bad)
    # map through the (two or so) distinct values, then index: no per-row Python
    model_codes, models = pd.factorize(columns["model"])
    log_codes, log_types = pd.factorize(columns["account"])
    columns = dict(columns)
    for name, attr in (("model", "model"), ("quant", "quant"), ("tier", "tier")):
        table = np.array([getattr(BURSTGPT_MODELS[m], attr) for m in models], dtype=object)
        columns[name] = table[model_codes] if len(table) else np.empty(0, dtype=object)
    accounts = np.array([BURSTGPT_LOG_TYPES[t][0] for t in log_types], dtype=object)
    priorities = np.array([BURSTGPT_LOG_TYPES[t][1] for t in log_types], dtype=np.int64)
    columns["account"] = accounts[log_codes] if len(accounts) else np.empty(0, dtype=object)
    columns["priority"] = priorities[log_codes] if len(priorities) else np.empty(0, np.int64)
    meta = {"source": Path(path).name, "format": "burstgpt", "attribution": BURSTGPT_ATTRIBUTION}
    return ImportResult(_build(columns, lines, defaults or ImportDefaults(), meta), report)


def import_csv(path: str | Path, mapping: CsvMapping, *, skip_bad: bool = False) -> ImportResult:
    """Any CSV: `mapping.columns` names the CSV column for each schema field it provides."""
    fields = [CsvField(name, source, _converter_for(name))
              for name, source in mapping.columns.items()]
    columns, lines, report = read_csv(path, fields, skip_bad=skip_bad)
    meta = {"source": Path(path).name, "format": "csv"}
    trace = _build(columns, lines, mapping.defaults, meta, mapping.time_unit_s)
    return ImportResult(trace, report)


FORMATS: tuple[str, ...] = ("azure", "burstgpt", "csv")
"""Names accepted by `import_trace` and `heddle trace import`."""


def import_trace(
    fmt: str, path: str | Path, *, skip_bad: bool = False,
    defaults: ImportDefaults | None = None, mapping: CsvMapping | None = None,
) -> ImportResult:
    """Dispatch on the format name (one of FORMATS)."""
    if fmt == "azure":
        return import_azure(path, skip_bad=skip_bad, defaults=defaults)
    if fmt == "burstgpt":
        return import_burstgpt(path, skip_bad=skip_bad, defaults=defaults)
    if fmt == "csv":
        if mapping is None:
            raise TraceError("the csv format needs a column mapping (--map or --mapping)")
        if defaults is not None:
            mapping = mapping.model_copy(update={"defaults": defaults})
        return import_csv(path, mapping, skip_bad=skip_bad)
    raise TraceError(f"unknown format {fmt!r}; expected one of {list(FORMATS)}")
