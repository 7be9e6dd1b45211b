"""Fixtures for the advisor tests: hand-built traces and fleets with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from heddle.advisor import AdvisorSettings, advise
from heddle.models import catalog
from heddle.models.fleet_types import Fleet, Node
from heddle.traces import Trace

DAY_S = 86_400.0

EVERY_S = 600.0  # one request per owner every 10 minutes
MISS_USD = 0.5
DEVICES = ("m4-10", "m4-pro-20", "jetson-orin-nano-super", "dgx-spark")
LOAD = {"every_s": EVERY_S, "model": "llama-3.1-70b", "quant": "q8_0", "prompt": 500, "output": 200,
        "privacy": "personal", "deadline_s": 3600}
"""The hand-built case: a steady personal Llama-3.1-70B (Q8_0, ~75 GB) load that no current
node holds; of DEVICES only the DGX Spark (128 GB) does."""


def two_owner_trace():
    return steady_trace([{**LOAD, "owner": "alice"}, {**LOAD, "owner": "bob", "offset_s": 300}], days=3)


def advise_two_owners(fleet, budget_usd=10_000):
    devices = {d: catalog.device(d) for d in DEVICES}
    settings = AdvisorSettings(miss_value_usd=MISS_USD, budget_usd=budget_usd, shortlist=3, seed=0)
    return advise(two_owner_trace(), fleet, settings, devices=devices)


@pytest.fixture(scope="session")
def trusted_report():
    """bob trusts alice's machine, so a machine alice buys may run bob's personal work."""
    return advise_two_owners(fleet_of(node("mini", "m4-10", 16, "alice", ["bob"])))


@pytest.fixture(scope="session")
def distrusted_report():
    """bob trusts nobody but himself; his own node is far too small for a 70B model."""
    return advise_two_owners(fleet_of(node("mini", "m4-10", 16, "alice"),
                            node("bob-nano", "jetson-orin-nano-super", 8, "bob")))


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


def md_tables(markdown: str) -> dict[str, list[dict[str, str]]]:
    """The report's Markdown tables by the heading above them, as rows of column -> cell (what
    a reader sees, so the hand checks below read the same numbers a person would)."""
    tables: dict[str, list[dict[str, str]]] = {}
    heading, header = "", None
    for line in markdown.splitlines():
        if line.startswith("#"):
            heading, header = line.lstrip("# ").strip(), None
        elif line.startswith("|") and header is None:
            header = [c.strip() for c in line.strip("|").split(" | ")]
        elif line.startswith("|---"):
            continue
        elif line.startswith("|"):
            cells = [c.strip().replace("\\|", "|") for c in line.strip().strip("|").split(" | ")]
            tables.setdefault(heading, []).append(dict(zip(header, cells)))
    return tables


def usd(cell: str) -> float:
    """A table's money cell ('1,234.56', '-3', 'never') as a float (nan when not a number)."""
    try:
        return float(cell.replace(",", ""))
    except ValueError:
        return float("nan")
