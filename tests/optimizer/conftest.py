"""Hypothesis strategies for small placement problems, drawn by structure (so failures shrink
to the fleet, node, task or state field that matters): owners and whom they trust, devices
and memory sizes, cloud offers, budgets, models that fit only some nodes or exceed their
context window, embedding steps, features tasks need and targets offer (tool calls, ...), the models nodes' servers have, and
node trouble (drain, departure, heat, battery, load)."""

from __future__ import annotations

from hypothesis import strategies as st

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
from heddle.optimizer.instances import DEVICE_IDS, OFFER_IDS

OWNERS = tuple(OwnerId(o) for o in ("alice", "bob", "carol"))
ACCOUNTS = tuple(AccountId(a) for a in ("business", "household"))
NOW_S = 1000.0

FEATURES = ("tools", "embeddings", "raw", "suffix")
"""The features backends declare today (heddle.live.features)."""
OFFERED = st.one_of(st.none(), st.frozensets(st.sampled_from(FEATURES)))
"""What a target offers: every feature (None: a fleet file that says nothing) or a drawn set."""

MODELS = (("llama-3.1-8b", "q4_k_m"), ("llama-3.1-8b", "f16"), ("qwen2.5-32b", "q4_k_m"),
          ("llama-3.1-70b", "q4_k_m"), ("mistral-7b", "q8_0"), ("llama-2-7b", "q4_0"),
          ("nomic-embed-text-v1.5", "f16"), (None, None), ("claude-sonnet-4.6", None), ("claude-haiku-4.5", None))
"""(model, quant): small, medium and too big for most nodes; llama-2-7b's 4,096-token context
is exceeded by the longer prompts drawn; an embedding model no chat API can serve; none (a
task naming only a tier: an API of that tier serves it, no machine can); two API offers of
one tier named as the model (the gateway's `claude-sonnet-4.6`: that offer alone runs it)."""


INSTALLED = st.one_of(st.none(), st.frozensets(st.sampled_from([(m, q) for m, q in MODELS[:7] if q]), max_size=3))
"""What a node's servers have: unknown (None: any model) or a drawn set of catalog pairs."""


@st.composite
def nodes(draw, k: int) -> Node:
    device = catalog.device(draw(st.sampled_from(DEVICE_IDS)))
    memory = float(draw(st.sampled_from(device.memory_options_gb)))
    owner = draw(st.sampled_from(OWNERS))
    trusted = draw(st.frozensets(st.sampled_from([o for o in OWNERS if o != owner]), max_size=2))
    return Node(NodeId(f"n{k}"), device, memory, owner, trusted_owners=trusted, slots=draw(st.integers(1, 4)),
                reserved_memory_gb=draw(st.sampled_from([0.0, min(4.0, memory / 4)])),
                power_source=draw(st.sampled_from([PowerSource.AC, PowerSource.AC, PowerSource.BATTERY])),
                features=draw(OFFERED), installed=draw(INSTALLED))


@st.composite
def fleets(draw, max_nodes: int = 6, offers: bool | None = None) -> Fleet:
    n = draw(st.integers(1, max_nodes))
    members = tuple(draw(nodes(k)) for k in range(n))
    with_offers = draw(st.booleans()) if offers is None else offers
    chosen = draw(st.lists(st.sampled_from(OFFER_IDS), min_size=1, unique=True)) if with_offers else []
    budgets = {a: Budget(a, draw(st.sampled_from([0.0, 0.001, 0.05, 5.0])))
               for a in draw(st.sets(st.sampled_from(ACCOUNTS)))}
    offered = {OfferId(o): f for o in chosen if (f := draw(OFFERED)) is not None}
    return Fleet("drawn", members, tuple(catalog.offer(OfferId(o)) for o in chosen), budgets, offer_features=offered)


@st.composite
def states(draw, fleet: Fleet) -> FleetState:
    state = FleetState.idle(fleet, NOW_S)
    for node in fleet.nodes:
        ns = state.nodes[node.id]
        running = draw(st.integers(0, node.slots))
        ns.free_slots = node.slots - running
        ns.free_memory_gb *= draw(st.sampled_from([1.0, 0.6, 0.25])) if running else 1.0
        ns.backlog_s = draw(st.sampled_from([0.0, 30.0, 600.0])) if running else 0.0
        if draw(st.booleans()):
            ns.resident_models = frozenset({(ModelId(m), q) for m, q in
                                            [draw(st.sampled_from(MODELS[:5]))]})
        ns.status = draw(st.sampled_from([NodeStatus.ACTIVE] * 4 + [NodeStatus.DRAINING, NodeStatus.DEPARTED]))
        ns.thermal = draw(st.sampled_from([ThermalState.NOMINAL] * 3 + [ThermalState.FAIR, ThermalState.SERIOUS]))
        if ns.thermal is ThermalState.FAIR:
            ns.speed_factor = 0.6
    state.cloud_spend_usd = {a: b.limit_usd * draw(st.sampled_from([0.0, 0.5, 1.0]))
                             for a, b in fleet.budgets.items()}
    return state


@st.composite
def tasks(draw, k: int) -> Task:
    privacy = draw(st.sampled_from([Privacy.PUBLIC, Privacy.PUBLIC, Privacy.SENSITIVE, Privacy.PERSONAL]))
    common = {
        "id": TaskId(f"t{k}"), "arrival_s": NOW_S, "privacy": privacy, "owner": draw(st.sampled_from(OWNERS)),
        "deadline_s": draw(st.sampled_from([None, NOW_S + 5.0, NOW_S + 120.0])),
        "priority": draw(st.integers(0, 2)), "tier": draw(st.sampled_from([None, None, Tier.LOCAL, Tier.STANDARD,
                                                                            Tier.FRONTIER])),
        "account": draw(st.sampled_from([*ACCOUNTS, None])),
    }
    if draw(st.integers(0, 4)):
        model, quant = draw(st.sampled_from(MODELS))
        return Task(kind=TaskKind.LLM, model=None if model is None else ModelId(model), quant=quant,
                    prompt_tokens=draw(st.sampled_from([50, 1500, 6000])),
                    output_tokens=0 if (model or "").startswith("nomic") else draw(st.sampled_from([10, 400])),
                    needs=draw(st.frozensets(st.sampled_from(FEATURES), max_size=2)), **common)
    return Task(kind=TaskKind.PROCESSOR, cpu_seconds=draw(st.sampled_from([0.5, 30.0])),
                memory_gb=draw(st.sampled_from([0.5, 6.0])), **common)


@st.composite
def problems(draw, max_nodes: int = 6, max_tasks: int = 6, offers: bool | None = None):
    """(state, tasks): a drawn fleet, its state and a batch of drawn tasks."""
    fleet = draw(fleets(max_nodes, offers))
    state = draw(states(fleet))
    return state, [draw(tasks(k)) for k in range(draw(st.integers(1, max_tasks)))]
