"""Shared helpers for the trace tests: a small valid trace and the reference data location."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from heddle.traces import Trace

SHARED_TRACES = Path(__file__).resolve().parents[1] / "data" / "azure"
"""The Azure LLM inference trace 2023 (Azure/AzurePublicDataset, CC-BY 4.0), kept in the repo for clean clones."""


def make_frame(n: int, seed: int = 0) -> pd.DataFrame:
    """A valid frame of `n` rows with every column varied, including a 3-stage pipeline."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "arrival_s": np.sort(rng.uniform(0, 3600, n)),
        "kind": "llm",
        "model": rng.choice(["llama-3.1-8b", "qwen2.5-7b"], n),
        "quant": "q4_k_m",
        "prompt_tokens": rng.integers(1, 4000, n),
        "output_tokens": rng.integers(1, 500, n),
        "cpu_seconds": 0.0,
        "memory_gb": 0.0,
        "privacy": rng.choice(["public", "sensitive", "personal"], n),
        "owner": rng.choice(["alice", "bob"], n),
        "deadline_s": np.where(rng.random(n) < 0.5, np.nan, 30.0),
        "tier": "",
        "account": "team",
        "priority": 0,
        "pipeline_id": "",
        "stage": "",
        "depends_on": "",
        "task_id": [f"t{i}" for i in range(n)],
    })
    if n >= 3:
        frame.loc[0:2, "pipeline_id"] = "p0"
        frame.loc[0:2, "stage"] = ["chunk", "embed", "report"]
        frame.loc[1:2, "depends_on"] = ["chunk", "embed"]
        frame.loc[0, ["kind", "model", "quant", "cpu_seconds", "memory_gb"]] = [
            "processor", "", "", 2.5, 0.5]
    return frame


@pytest.fixture
def small_trace() -> Trace:
    return Trace.from_frame(make_frame(50), {"source": "test"})
