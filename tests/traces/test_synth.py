"""Synthesis: seeded reproducibility, statistics matching the parameters, workflow structure."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

from heddle.models import catalog
from heddle.traces import Trace, read_trace, write_trace
from heddle.traces.fitted import TOKEN_PROFILES, LogNormal, fit_lognormal
from heddle.traces.stats import trace_stats
from heddle.traces.synth import SynthConfig, synthesize
from tests.traces.conftest import SHARED_TRACES

Z = 5.0  # sampling-error band in standard errors: a false alarm is ~1 in 3.5 million


@pytest.fixture(scope="module")
def month() -> tuple[SynthConfig, Trace]:
    cfg = SynthConfig(seed=11, duration_h=28 * 24, rate_per_h=120, diurnal_amplitude=0.5,
                      peak_hour=9.0, growth_per_week=0.15,
                      privacy_mix={"public": 0.5, "sensitive": 0.3, "personal": 0.2})
    return cfg, synthesize(cfg)


def test_same_seed_same_trace_other_seed_other_trace(tmp_path):
    cfg = SynthConfig(seed=3, duration_h=6, rate_per_h=200, burst_factor=4)
    a, b = synthesize(cfg), synthesize(cfg)
    assert a.equals(b)
    write_trace(a, tmp_path / "a.parquet")
    assert read_trace(tmp_path / "a.parquet").equals(b)
    c = synthesize(cfg.model_copy(update={"seed": 4}))
    assert not c.equals(a)


def test_workflow_rate_matches_the_integrated_intensity(month):
    cfg, trace = month
    s = trace_stats(trace)
    week_h = 7 * 24
    g = math.log(1 + cfg.growth_per_week)
    # diurnal factor averages to 1 over whole days; growth integrates to this
    expected = cfg.rate_per_h * week_h * (math.exp(g * cfg.duration_h / week_h) - 1) / g
    assert abs(s.workflows - expected) < Z * math.sqrt(expected)


def test_diurnal_amplitude_peak_and_growth_are_recovered(month):
    cfg, trace = month
    s = trace_stats(trace)
    n = s.workflows
    # SE of 2*mean(cos) is at most 2*sqrt(1/(2n)); the peak-hour SE is that over A, in radians
    se_amp = 2 * math.sqrt(0.5 / n)
    assert abs(s.diurnal_amplitude - cfg.diurnal_amplitude) < Z * se_amp
    se_peak_h = se_amp / cfg.diurnal_amplitude * 24 / (2 * math.pi)
    assert abs(s.diurnal_peak_hour - cfg.peak_hour) < Z * se_peak_h
    # daily counts are ~Poisson: the log-count slope has SE ~ 1/sqrt(sum n_d (d - mean d)^2)
    days = np.arange(28)
    per_day = n / 28
    se_slope = 1 / math.sqrt(per_day * ((days - days.mean()) ** 2).sum())
    se_growth = 7 * se_slope * (1 + cfg.growth_per_week)
    assert abs(s.growth_per_week - cfg.growth_per_week) < Z * se_growth


def test_privacy_and_shape_mix_match_within_sampling_error(month):
    cfg, trace = month
    s = trace_stats(trace)
    for key, p in cfg.privacy_mix.items():
        assert abs(s.privacy_workflows[key] - p) < Z * math.sqrt(p * (1 - p) / s.workflows)
    for key, p in cfg.shape_mix.items():
        assert abs(s.shape_mix[key] - p) < Z * math.sqrt(p * (1 - p) / s.workflows)


def _clipped_mean(dist: LogNormal) -> float:
    """E[clip(X, min, max)] for X lognormal: what the sampler's mean should be."""
    law = stats.lognorm(s=dist.sigma, scale=math.exp(dist.mu))
    inner = integrate.quad(lambda x: x * law.pdf(x), dist.minimum, dist.maximum, limit=200)[0]
    return (inner + dist.minimum * law.cdf(dist.minimum)
            + dist.maximum * law.sf(dist.maximum))


@pytest.mark.parametrize("profile", ["conv", "code"])
def test_single_call_tokens_follow_the_fitted_distribution(profile: str):
    cfg = SynthConfig(seed=5, duration_h=24 * 7, rate_per_h=200, tokens=profile,
                      shape_mix={"single": 1.0, "pipeline": 0.0, "council": 0.0})
    df = synthesize(cfg).df
    prompt_dist, output_dist = TOKEN_PROFILES[profile]
    for column, dist in (("prompt_tokens", prompt_dist), ("output_tokens", output_dist)):
        x = df[column].to_numpy().astype(float)
        mean = _clipped_mean(dist)
        assert abs(x.mean() - mean) < Z * x.std() / math.sqrt(len(x)) + 0.5  # +0.5: rounding
        # the log-mean is the fitted mu, up to rounding small counts to integers
        assert abs(np.log(x).mean() - dist.mu) < Z * dist.sigma / math.sqrt(len(x)) + 0.02


def test_poisson_is_poisson_and_mmpp_is_bursty():
    flat = SynthConfig(seed=1, duration_h=24 * 3, rate_per_h=600, diurnal_amplitude=0.0)
    s = trace_stats(synthesize(flat))
    minutes = 3 * 24 * 60
    assert abs(s.dispersion_per_min - 1.0) < Z * math.sqrt(2 / minutes)
    bursty = flat.model_copy(update={"burst_factor": 8.0, "burst_mean_s": 600.0})
    b = trace_stats(synthesize(bursty))
    assert b.dispersion_per_min > 2.0
    # bursts redistribute arrivals but keep the configured mean rate (looser: they add variance)
    assert abs(b.workflows_per_h - 600) / 600 < 0.15


def test_workflows_have_the_documented_shapes(month):
    cfg, trace = month
    df = trace.df
    multi = df[df["pipeline_id"] != ""].astype({"pipeline_id": str, "stage": str,
                                                  "depends_on": str})
    some = multi[multi["pipeline_id"].isin(multi["pipeline_id"].unique()[:300])]
    for pid, rows in some.groupby("pipeline_id", sort=False):
        stages = list(rows["stage"])
        # one workflow: one arrival, one owner, one privacy tag, stages in dependency order
        assert rows["arrival_s"].nunique() == 1 and rows["owner"].nunique() == 1
        assert rows["privacy"].nunique() == 1
        seen: set[str] = set()
        for stage, dep in zip(stages, rows["depends_on"], strict=True):
            assert all(d in seen for d in dep.split(",") if d), (pid, stage, dep)
            seen.add(stage)
        if stages[0] == "chunk":
            assert rows["kind"].iloc[0] == "processor" and rows["cpu_seconds"].iloc[0] > 0
            assert stages[-2:] == ["summarize", "report"]
            embeds = [s for s in stages if s.startswith("embed-")]
            low, high = cfg.pipeline_fanout
            assert low <= len(embeds) <= high
            assert rows.loc[rows["stage"] == "summarize", "depends_on"].iloc[0] == ",".join(
                embeds)
        else:
            assert len(stages) == cfg.council_participants * cfg.council_rounds + 1
            assert stages[-1] == "verdict"


def test_every_model_and_quant_is_in_the_catalog(month):
    _, trace = month
    llm = trace.df[trace.df["kind"] == "llm"]
    pairs = llm[["model", "quant"]].astype(str).drop_duplicates().itertuples(index=False)
    for model_id, quant in pairs:
        assert quant in catalog.model(model_id).bytes_per_weight, (model_id, quant)
    embed = llm[llm["output_tokens"] == 0]
    assert {catalog.model(m).kind for m in embed["model"].astype(str).unique()} == {"embedding"}


def test_bad_configs_are_refused_with_the_field_named():
    with pytest.raises(ValueError, match="privacy_mix"):
        SynthConfig(privacy_mix={"public": 0.5, "sensitive": 0.2})
    with pytest.raises(ValueError, match="unknown shape_mix"):
        SynthConfig(shape_mix={"single": 0.5, "swarm": 0.5})
    with pytest.raises(ValueError, match="extra"):
        SynthConfig.model_validate({"rate": 3})


@pytest.mark.parametrize(("name", "file", "column"), [
    ("conv", "azure_llm_2023_conv.csv", "ContextTokens"),
    ("conv", "azure_llm_2023_conv.csv", "GeneratedTokens"),
    ("code", "azure_llm_2023_code.csv", "ContextTokens"),
    ("code", "azure_llm_2023_code.csv", "GeneratedTokens"),
])
def test_shipped_token_fits_match_a_refit_of_the_azure_data(name: str, file: str, column: str):
    raw = pd.read_csv(SHARED_TRACES / file)[column].to_numpy()
    fit = fit_lognormal(raw)
    stored = TOKEN_PROFILES[name][0 if column == "ContextTokens" else 1]
    assert fit.mu == pytest.approx(stored.mu, abs=1e-3)
    assert fit.sigma == pytest.approx(stored.sigma, abs=1e-3)
