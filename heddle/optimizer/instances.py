"""Synthetic placement problems (fleet, state, tasks) drawn from a passed-in Generator.

Used by the property tests, the benchmarks and the docs: catalog devices and offers, a few
owners who trust each other at random, busy/hot/draining/battery nodes, and a task mix of
LLM steps (several models and quantizations) and processor steps with every privacy tag.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from heddle.models import (
    AccountId,
    Budget,
    Fleet,
    FleetState,
    ModelId,
    Node,
    NodeId,
    NodeStatus,
    OfferId,
    OwnerId,
    PowerSource,
    Privacy,
    Task,
    TaskId,
    TaskKind,
    ThermalState,
    Tier,
    catalog,
)

__all__ = [
    "DEVICE_IDS",
    "MODEL_CHOICES",
    "OFFER_IDS",
    "memory_tight_problem",
    "random_fleet",
    "random_problem",
    "random_state",
    "random_tasks",
]

DEVICE_IDS = ("m2-ultra-76", "m3-max-40", "m4-pro-20", "m1-8", "jetson-agx-orin-64", "rtx-4090", "dgx-spark")
"""Devices synthetic fleets draw from (a spread of speeds, memory sizes and power draws)."""

OFFER_IDS = ("claude-haiku-4.5", "claude-sonnet-4.6", "claude-opus-4.6", "aws-g5.xlarge")
"""Cloud offers synthetic fleets allow (API tiers of each tier plus one GPU instance)."""

MODEL_CHOICES = (("llama-3.1-8b", "q4_k_m"), ("llama-3.1-8b", "f16"), ("qwen2.5-32b", "q4_k_m"),
                 ("llama-3.1-70b", "q4_k_m"), ("mistral-7b", "q8_0"))
"""(model, quant) pairs tasks draw from: small, medium and too-big-for-most-nodes."""

ACCOUNTS = (AccountId("business"), AccountId("household"))


def random_fleet(rng: np.random.Generator, n_nodes: int, *, n_owners: int = 3, offers: bool = True,
                 budget_usd: tuple[float, float] = (0.05, 5.0)) -> Fleet:
    owners = [OwnerId(f"owner{i}") for i in range(n_owners)]
    nodes = []
    for i in range(n_nodes):
        device = catalog.device(DEVICE_IDS[int(rng.integers(len(DEVICE_IDS)))])
        memory = float(device.memory_options_gb[int(rng.integers(len(device.memory_options_gb)))])
        owner = owners[int(rng.integers(n_owners))]
        trusted = frozenset(o for o in owners if o != owner and rng.random() < 0.3)
        nodes.append(Node(
            id=NodeId(f"n{i}"), device=device, memory_gb=memory, owner=owner, trusted_owners=trusted,
            slots=int(rng.integers(1, 5)), reserved_memory_gb=float(min(4.0, memory / 4)),
        ))
    cloud = tuple(catalog.offer(OfferId(o)) for o in OFFER_IDS) if offers else ()
    budgets = {a: Budget(a, float(rng.uniform(*budget_usd))) for a in ACCOUNTS}
    return Fleet(name=f"synthetic-{n_nodes}", nodes=tuple(nodes), cloud_offers=cloud, budgets=budgets)


def random_state(fleet: Fleet, rng: np.random.Generator, *, time_s: float = 1000.0, busy: float = 0.5,
                 trouble: float = 0.1) -> FleetState:
    """A state with some load; `trouble` is the chance of each of draining/hot/battery per node."""
    state = FleetState.idle(fleet, time_s)
    models = list(MODEL_CHOICES)
    for node in fleet.nodes:
        ns = state.nodes[node.id]
        running = int(rng.binomial(node.slots, busy))
        ns.free_slots = node.slots - running
        ns.free_memory_gb = max(ns.free_memory_gb * float(rng.uniform(0.3, 1.0)) if running else ns.free_memory_gb, 0.0)
        ns.backlog_s = float(rng.exponential(60.0)) if running else 0.0
        if rng.random() < 0.3:
            ns.resident_models = frozenset({models[int(rng.integers(len(models)))]})
        roll = rng.random(4)
        if roll[0] < trouble:
            ns.status = NodeStatus.DRAINING if roll[1] < 0.7 else NodeStatus.DEPARTED
        if roll[2] < trouble:
            ns.thermal = ThermalState.SERIOUS if roll[1] < 0.5 else ThermalState.CRITICAL
        elif roll[2] < 2 * trouble:  # warm but allowed: throttled
            ns.thermal = ThermalState.FAIR
            ns.speed_factor = float(rng.uniform(0.5, 1.0))
        if roll[3] < trouble:
            ns.power_source = PowerSource.BATTERY
    state.cloud_spend_usd = {a: float(rng.uniform(0, b.limit_usd)) for a, b in fleet.budgets.items()}
    return state


def random_tasks(rng: np.random.Generator, n: int, fleet: Fleet, *, time_s: float = 1000.0,
                 prefix: str = "t") -> list[Task]:
    owners = sorted({nd.owner for nd in fleet.nodes}) or [OwnerId("owner0")]
    privacies = (Privacy.PUBLIC, Privacy.SENSITIVE, Privacy.PERSONAL)
    tiers = (None, None, None, Tier.LOCAL, Tier.STANDARD, Tier.FRONTIER)
    tasks = []
    for i in range(n):
        privacy = privacies[int(rng.choice(3, p=(0.6, 0.2, 0.2)))]
        deadline = time_s + float(rng.uniform(2, 300)) if rng.random() < 0.7 else None
        common = {
            "id": TaskId(f"{prefix}{i}"), "arrival_s": time_s, "privacy": privacy,
            "owner": owners[int(rng.integers(len(owners)))], "deadline_s": deadline,
            "priority": int(rng.integers(0, 3)),
            "account": ACCOUNTS[int(rng.integers(len(ACCOUNTS)))] if rng.random() < 0.9 else None,
        }
        if rng.random() < 0.8:
            model, quant = MODEL_CHOICES[int(rng.choice(len(MODEL_CHOICES), p=(0.5, 0.1, 0.2, 0.1, 0.1)))]
            tasks.append(Task(kind=TaskKind.LLM, model=ModelId(model), quant=quant,
                              prompt_tokens=int(rng.integers(50, 4000)), output_tokens=int(rng.integers(10, 800)),
                              tier=tiers[int(rng.integers(len(tiers)))], **common))
        else:
            tasks.append(Task(kind=TaskKind.PROCESSOR, cpu_seconds=float(rng.uniform(0.1, 60)),
                              memory_gb=float(rng.uniform(0.1, 8)), **common))
    return tasks


def random_problem(rng: np.random.Generator, n_tasks: int, n_nodes: int) -> tuple[FleetState, list[Task]]:
    """A batch on a random fleet with some load (the benchmarks' standard instance)."""
    fleet = random_fleet(rng, n_nodes)
    state = random_state(fleet, rng, busy=0.3, trouble=0.05)
    return state, random_tasks(rng, n_tasks, fleet)


def memory_tight_problem(rng: np.random.Generator, n_tasks: int, n_nodes: int) -> tuple[FleetState, list[Task]]:
    """A batch where memory binds: every node at its device's smallest memory with 2-5 slots,
    LLM prompts four times as long (bigger KV caches), little load. Model loads and KV caches
    then decide what fits, which is what makes CP-SAT's search hard."""
    fleet = random_fleet(rng, n_nodes)
    nodes = tuple(
        dataclasses.replace(nd, memory_gb=float(min(nd.device.memory_options_gb)), slots=int(rng.integers(2, 6)),
                            reserved_memory_gb=min(2.0, min(nd.device.memory_options_gb) / 4))
        for nd in fleet.nodes
    )
    fleet = dataclasses.replace(fleet, nodes=nodes)
    state = random_state(fleet, rng, busy=0.2, trouble=0.02)
    tasks = [dataclasses.replace(t, prompt_tokens=t.prompt_tokens * 4) if t.kind is TaskKind.LLM else t
             for t in random_tasks(rng, n_tasks, fleet)]
    return state, tasks
