"""Small fleets and traces built in code, so the twin's tests do not depend on catalog figures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from heddle.models import (
    CloudOffer,
    DeviceSpec,
    Fleet,
    Node,
    NodeId,
    OfferId,
    OfferKind,
    OwnerId,
    Tier,
)


def make_device(name: str = "testchip", **overrides) -> DeviceSpec:
    """A made-up device with round numbers (the perf model turns them into speeds)."""
    fields = {
        "id": name, "name": name, "vendor": "apple", "family": "m2", "tier": "max", "gpu_cores": 38,
        "cpu_performance_cores": 8, "cpu_efficiency_cores": 4, "memory_bandwidth_gb_s": 400.0,
        "memory_options_gb": (64,), "gpu_fp32_tflops": 13.6, "gpu_fp16_tflops": 27.2, "npu_tops": 15.8,
        "idle_power_w": 10.0, "typical_power_w": 60.0, "max_power_w": 100.0, "price_usd": 3000.0,
        "machine": "test box", "source": "test fixture",
    }
    fields.update(overrides)
    return DeviceSpec(**fields)


def make_fleet(servers: int, *, slots: int = 1, memory_gb: float = 64.0, owners=("alice",),
               offers: tuple[CloudOffer, ...] = (), name: str = "test", budgets=None) -> Fleet:
    dev = make_device()
    nodes = tuple(
        Node(NodeId(f"n{k}"), dev, memory_gb=memory_gb, owner=OwnerId(owners[k % len(owners)]), slots=slots)
        for k in range(servers)
    )
    return Fleet(name, nodes, cloud_offers=offers, budgets=budgets or {})


def api_offer(**overrides) -> CloudOffer:
    fields = {
        "id": OfferId("test-api"), "name": "Test API", "kind": OfferKind.API, "tier": Tier.LOCAL,
        "price_usd_per_m_input_tokens": 1.0, "price_usd_per_m_output_tokens": 5.0,
        "network_latency_s": 0.3, "decode_tokens_per_s": 80.0, "prefill_tokens_per_s": 3000.0,
    }
    fields.update(overrides)
    return CloudOffer(**fields)


def chain_pipeline(df: pd.DataFrame, pipeline: np.ndarray) -> None:
    """Rows where `pipeline == "pipe"` become stages s<row> of one pipeline, each depending
    on the previous one (in row order)."""
    n = len(df)
    stages = [f"s{i}" for i in range(n)]
    df["stage"] = np.where(pipeline == "pipe", stages, "")
    in_pipe = [i for i in range(n) if pipeline[i] == "pipe"]
    df["depends_on"] = [
        (stages[in_pipe[in_pipe.index(i) - 1]] if pipeline[i] == "pipe" and in_pipe.index(i) > 0 else "")
        for i in range(n)
    ]


def processor_trace(arrival_s: np.ndarray, cpu_seconds: np.ndarray, **columns) -> pd.DataFrame:
    n = len(arrival_s)
    data = {
        "arrival_s": arrival_s, "kind": "processor", "cpu_seconds": cpu_seconds,
        "memory_gb": 0.5, "privacy": "public", "owner": "alice",
        "task_id": [f"p{i}" for i in range(n)],
    }
    data.update(columns)
    return pd.DataFrame(data)


def llm_trace(arrival_s: np.ndarray, prompt_tokens, output_tokens, **columns) -> pd.DataFrame:
    n = len(arrival_s)
    data = {
        "arrival_s": arrival_s, "kind": "llm", "model": "llama-3.1-8b", "quant": "q4_k_m",
        "prompt_tokens": prompt_tokens, "output_tokens": output_tokens, "privacy": "public",
        "owner": "alice", "task_id": [f"l{i}" for i in range(n)],
    }
    data.update(columns)
    return pd.DataFrame(data)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture(scope="module")
def local_ray():
    """One real local Ray cluster (2 CPUs) for a module's tests that run on Ray: starting one
    costs seconds, so they share it; RayExecutor joins it as it joins any running cluster."""
    from heddle.sim.executors import RayExecutor

    RayExecutor("local", num_cpus=2)  # starts the cluster (and sets Ray's options first)
    import ray

    yield ray
    ray.shutdown()
