"""Synthetic traces from parameters: arrivals, token lengths, privacy, owners, workflow shapes.

`synthesize(config, rng)` draws workflow arrivals from the modulated Poisson process
(arrivals.py), gives each workflow a shape (single call, pipeline, council), a privacy tag,
an owner and account, then expands it into rows (workflows.py). Token lengths come from the
lognormal fits to the Azure traces (fitted.py). All draws come from the one Generator, in a
fixed order: the same config and seed give the same trace.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from heddle.traces.arrivals import ArrivalProcess, sample_arrivals
from heddle.traces.fitted import TOKEN_PROFILES
from heddle.traces.schema import PRIVACIES, TIERS
from heddle.traces.trace import Trace
from heddle.traces.workflows import council_template, expand, pipeline_template, single_template

__all__ = ["SHAPES", "SynthConfig", "synthesize"]

SHAPES: tuple[str, ...] = ("single", "pipeline", "council")
"""Workflow shapes the generator knows."""
EMBED_CHUNK_TOKENS = (256, 1024)
"""Tokens per embedded chunk, uniform: typical RAG chunk sizes (our assumption)."""
CHUNK_CPU_SIGMA = 0.5
"""Log-spread of the chunking step's CPU seconds (our assumption: +-65% at one sigma)."""


def _mix(value: Mapping[str, float], allowed: tuple[str, ...] | None, what: str) -> dict:
    if not value:
        raise ValueError(f"{what} must not be empty")
    if allowed is not None and (unknown := sorted(set(value) - set(allowed))):
        raise ValueError(f"unknown {what} key(s) {unknown}; expected some of {list(allowed)}")
    if any(v < 0 for v in value.values()) or abs(sum(value.values()) - 1.0) > 1e-6:
        raise ValueError(f"{what} shares must be >= 0 and sum to 1, got {dict(value)}")
    return dict(value)


class SynthConfig(BaseModel):
    """Everything `synthesize` needs; the defaults make a day of the demo household's work."""

    model_config = ConfigDict(extra="forbid")
    seed: int = 0
    duration_h: float = Field(24.0, gt=0)
    rate_per_h: float = Field(120.0, ge=0)  # workflows per hour, day average, first week
    diurnal_amplitude: float = Field(0.6, ge=0, lt=1)
    peak_hour: float = Field(14.0, ge=0, lt=24)
    growth_per_week: float = Field(0.0, gt=-1)
    burst_factor: float = Field(1.0, ge=1)  # MMPP burst intensity / calm intensity
    burst_mean_s: float = Field(300.0, gt=0)
    calm_mean_s: float = Field(3600.0, gt=0)
    tokens: str = "conv"  # a TOKEN_PROFILES name
    privacy_mix: dict[str, float] = {"public": 0.6, "sensitive": 0.25, "personal": 0.15}
    shape_mix: dict[str, float] = {"single": 0.85, "pipeline": 0.1, "council": 0.05}
    model_mix: dict[str, float] = {"llama-3.1-8b": 0.35, "qwen2.5-7b": 0.2, "gpt-oss-20b": 0.2,
                                   "qwen2.5-32b": 0.15, "llama-3.1-70b": 0.1}
    pipeline_models: dict[str, float] = {"llama-3.1-8b": 0.5, "qwen2.5-7b": 0.3,
                                         "gpt-oss-20b": 0.2}
    council_models: list[str] = ["llama-3.1-8b", "qwen2.5-7b", "gpt-oss-20b"]
    embedding_model: str = "nomic-embed-text-v1.5"
    quants: dict[str, str] = {"gpt-oss-20b": "mxfp4", "gpt-oss-120b": "mxfp4",
                              "nomic-embed-text-v1.5": "f16"}
    default_quant: str = "q4_k_m"
    # the shipped demo fleet's household (heddle/data/fleets/demo.yaml): alice runs a business
    owners: list[str] = ["alice", "bob", "carol"]
    owner_weights: list[float] | None = [0.6, 0.25, 0.15]  # None = equal
    owner_accounts: dict[str, str] = {"alice": "business", "bob": "household",
                                      "carol": "household"}  # budget account of each owner
    tier_mix: dict[str, float] = {"": 0.8, "local": 0.1, "standard": 0.05, "frontier": 0.05}
    interactive_share: float = Field(0.5, ge=0, le=1)  # single calls with a deadline
    interactive_deadline_s: float = Field(60.0, gt=0)
    pipeline_fanout: tuple[int, int] = (2, 6)  # embed stages, inclusive range
    pipeline_deadline_s: float = Field(3600.0, gt=0)
    chunk_cpu_median_s: float = Field(4.0, gt=0)
    council_participants: int = Field(3, ge=1, le=16)
    council_rounds: int = Field(2, ge=1, le=8)
    council_deadline_s: float = Field(900.0, gt=0)

    @field_validator("privacy_mix")
    @classmethod
    def _privacy(cls, v: dict[str, float]) -> dict[str, float]:
        return _mix(v, PRIVACIES, "privacy_mix")

    @field_validator("shape_mix")
    @classmethod
    def _shapes(cls, v: dict[str, float]) -> dict[str, float]:
        return _mix(v, SHAPES, "shape_mix")

    @field_validator("tier_mix")
    @classmethod
    def _tiers(cls, v: dict[str, float]) -> dict[str, float]:
        return _mix(v, TIERS, "tier_mix")

    @field_validator("model_mix", "pipeline_models")
    @classmethod
    def _models(cls, v: dict[str, float]) -> dict[str, float]:
        return _mix(v, None, "model mix")

    @field_validator("tokens")
    @classmethod
    def _tokens(cls, v: str) -> str:
        if v not in TOKEN_PROFILES:
            raise ValueError(f"expected one of {sorted(TOKEN_PROFILES)}")
        return v

    @model_validator(mode="after")
    def _lists(self) -> SynthConfig:
        if not self.owners or not self.council_models:
            raise ValueError("owners and council_models must not be empty")
        if self.owner_weights is not None:
            if len(self.owner_weights) != len(self.owners):
                raise ValueError("owner_weights needs one weight per owner")
            _mix(dict(zip(self.owners, self.owner_weights, strict=True)), None, "owner_weights")
        if missing := [o for o in self.owners if o not in self.owner_accounts]:
            raise ValueError(f"owner_accounts has no account for {missing}")
        low, high = self.pipeline_fanout
        if not 1 <= low <= high <= 64:
            raise ValueError("pipeline_fanout must be (low, high) with 1 <= low <= high <= 64")
        return self

    def arrival_process(self) -> ArrivalProcess:
        return ArrivalProcess(
            rate_per_s=self.rate_per_h / 3600.0, diurnal_amplitude=self.diurnal_amplitude,
            peak_hour=self.peak_hour, growth_per_week=self.growth_per_week,
            burst_factor=self.burst_factor, burst_mean_s=self.burst_mean_s,
            calm_mean_s=self.calm_mean_s,
        )

    def quant_of(self, models: np.ndarray) -> np.ndarray:
        codes, uniques = pd.factorize(models)
        quants = np.array([self.quants.get(m, self.default_quant) for m in uniques], dtype=object)
        return quants[codes]


def _choice(rng: np.random.Generator, mix: Mapping[str, float], n: int) -> np.ndarray:
    keys = np.array(list(mix), dtype=object)
    return keys[rng.choice(len(keys), size=n, p=np.array(list(mix.values())))]


def synthesize(config: SynthConfig, rng: np.random.Generator | None = None) -> Trace:
    """Draw a trace. `rng` defaults to `numpy.random.default_rng(config.seed)`."""
    rng = np.random.default_rng(config.seed) if rng is None else rng
    arrival = sample_arrivals(config.arrival_process(), config.duration_h * 3600.0, rng)
    n = len(arrival)
    # per-workflow draws, in a fixed order
    shape = _choice(rng, config.shape_mix, n)
    privacy = _choice(rng, config.privacy_mix, n)
    owner_idx = rng.choice(len(config.owners), size=n, p=config.owner_weights)
    tier = _choice(rng, config.tier_mix, n)
    interactive = rng.random(n) < config.interactive_share
    single_model = _choice(rng, config.model_mix, n)
    pipe_model = _choice(rng, config.pipeline_models, n)
    fanout = rng.integers(config.pipeline_fanout[0], config.pipeline_fanout[1] + 1, n)

    groups = [expand(single_template(), np.flatnonzero(shape == "single"))]
    for k in np.unique(fanout[shape == "pipeline"]):
        groups.append(expand(pipeline_template(int(k)),
                             np.flatnonzero((shape == "pipeline") & (fanout == k))))
    groups.append(expand(council_template(config.council_participants, config.council_rounds),
                         np.flatnonzero(shape == "council")))
    wf = np.concatenate([g.workflow for g in groups]).astype(np.int64)
    pos = np.concatenate([g.position for g in groups])
    order = np.lexsort((pos, wf))
    wf, pos = wf[order], pos[order]
    stage = np.concatenate([g.stage for g in groups])[order]
    depends_on = np.concatenate([g.depends_on for g in groups])[order]
    role = np.concatenate([g.role for g in groups])[order]
    seat = np.concatenate([g.participant for g in groups])[order]
    rows = len(wf)

    columns = _row_values(config, rng, role, seat, wf, single_model, pipe_model, fanout)
    single = shape[wf] == "single"
    deadline = np.select(
        [single & interactive[wf], shape[wf] == "pipeline", shape[wf] == "council"],
        [config.interactive_deadline_s, config.pipeline_deadline_s, config.council_deadline_s],
        default=np.nan,
    )
    owners = np.array(config.owners, dtype=object)
    accounts = np.array([config.owner_accounts[o] for o in config.owners], dtype=object)
    wf_id = np.array([f"w{i}" for i in wf.tolist()], dtype=object)
    frame = pd.DataFrame({
        "arrival_s": arrival[wf],
        **columns,
        "privacy": privacy[wf],
        "owner": owners[owner_idx[wf]],
        "deadline_s": deadline,
        "tier": np.where(single, tier[wf], ""),
        "account": accounts[owner_idx[wf]],
        "priority": (single & interactive[wf]).astype(np.int8),
        "pipeline_id": np.where(single, "", wf_id).astype(object),
        "stage": stage,
        "depends_on": depends_on,
        "task_id": np.where(single, wf_id, wf_id + "-" + stage),
    }, index=pd.RangeIndex(rows))
    meta = {"generator": "heddle trace synth", "config": config.model_dump_json()}
    return Trace.from_frame(frame, meta)


def _row_values(
    config: SynthConfig, rng: np.random.Generator, role: np.ndarray, seat: np.ndarray,
    wf: np.ndarray, single_model: np.ndarray, pipe_model: np.ndarray, fanout: np.ndarray,
) -> dict[str, np.ndarray]:
    """kind, model, quant, tokens and CPU work for each row, by the row's role."""
    rows = len(role)
    prompt_dist, output_dist = TOKEN_PROFILES[config.tokens]
    prompt = prompt_dist.sample(rng, rows)
    output = output_dist.sample(rng, rows)
    chunk_tokens = rng.integers(EMBED_CHUNK_TOKENS[0], EMBED_CHUNK_TOKENS[1] + 1, rows)
    cpu = config.chunk_cpu_median_s * rng.lognormal(0.0, CHUNK_CPU_SIGMA, rows)
    memory = rng.uniform(0.5, 2.0, rows)

    council = np.array(config.council_models, dtype=object)
    is_chunk = role == "chunk"
    is_embed = role == "embed"
    model = np.select(
        [role == "answer", np.isin(role, ["summarize", "report"]), is_embed,
         np.isin(role, ["council", "verdict"])],
        [single_model[wf], pipe_model[wf], config.embedding_model, council[seat % len(council)]],
        default="",
    ).astype(object)
    # a summary reads every embedded chunk; a report reads the summary; a verdict every answer
    prompt = np.select(
        [is_embed, role == "summarize", role == "report", role == "verdict", is_chunk],
        [chunk_tokens, fanout[wf] * EMBED_CHUNK_TOKENS[1] // 2, output + 200,
         config.council_participants * output, 0],
        default=prompt,
    )
    output = np.where(is_chunk | is_embed, 0, np.where(role == "report", 2 * output, output))
    quant = np.where(model == "", "", config.quant_of(model)).astype(object)
    return {
        "kind": np.where(is_chunk, "processor", "llm").astype(object),
        "model": model,
        "quant": quant,
        "prompt_tokens": np.clip(prompt, 0, 2**31 - 1).astype(np.int32),
        "output_tokens": np.clip(output, 0, 2**31 - 1).astype(np.int32),
        "cpu_seconds": np.where(is_chunk, cpu, 0.0).astype(np.float32),
        "memory_gb": np.where(is_chunk, memory, 0.0).astype(np.float32),
    }
