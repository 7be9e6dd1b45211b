"""Fixtures for the advisor tests: hand-built traces and fleets with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from heddle.models import catalog
from heddle.models.fleet_types import Fleet, Node
from heddle.traces import Trace

DAY_S = 86_400.0


def steady_trace(parts: list[dict], days: float) -> Trace:
    """Requests at fixed intervals. Each part: every_s, model, quant, prompt, output, privacy,
    owner, deadline_s (relative), offset_s."""
    frames = []
    for k, p in enumerate(parts):
        arr = np.arange(p.get("offset_s", 0.0), days * DAY_S, p["every_s"])
        n = arr.size
        frames.append(pd.DataFrame({
            "arrival_s": arr, "kind": "llm", "model": p["model"], "quant": p["quant"],
            "prompt_tokens": np.full(n, p["prompt"], np.int32),
            "output_tokens": np.full(n, p["output"], np.int32),
            "cpu_seconds": np.zeros(n, np.float32), "memory_gb": np.zeros(n, np.float32),
            "privacy": p["privacy"], "owner": p["owner"],
            "deadline_s": np.full(n, p.get("deadline_s", np.nan)), "tier": "",
            "account": p.get("account", "main"), "priority": np.zeros(n, np.int8),
            "pipeline_id": "", "stage": "", "depends_on": "",
            "task_id": [f"p{k}-{i}" for i in range(n)],
        }))
    df = pd.concat(frames, ignore_index=True).sort_values("arrival_s", kind="stable")
    return Trace.from_frame(df.reset_index(drop=True))


def node(node_id: str, device: str, memory_gb: float, owner: str, trusted=()) -> Node:
    return Node(node_id, catalog.device(device), memory_gb, owner, frozenset(trusted))


def fleet_of(*nodes: Node, electricity: float = 0.0, offers=("claude-haiku-4.5",)) -> Fleet:
    return Fleet("test", tuple(nodes), tuple(catalog.offer(o) for o in offers),
                 electricity_usd_per_kwh=electricity)


@pytest.fixture
def small_catalog() -> dict:
    """Purchasable devices for the hand-checked cases: only the DGX Spark (128 GB, its only
    option) can hold Llama-3.1-70B at Q8_0 (~75 GB); the others top out at 64 GB or less."""
    return {d: catalog.device(d) for d in ("m4-10", "m4-pro-20", "jetson-orin-nano-super", "dgx-spark")}
