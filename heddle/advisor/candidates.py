"""Candidate fleets: the current fleet, + each catalog device (1..n units, with a memory
option), replacement of an existing node, and the CP-SAT optimized mix.

Ownership and trust of a purchase (the privacy rule this module keeps):
  * A new machine is owned by the fleet's *primary owner*: the owner of the most nodes (ties:
    the most memory, then the name). Whoever buys the hardware for the fleet owns it.
  * It is trusted by exactly the owners who already trust the primary owner's machines (the
    union of those nodes' `trusted_owners`). A purchase never widens who may run personal
    work where: an owner whose personal data may not go to the primary owner's machines today
    may not send it to the new one either.
  * A replacement takes over the replaced node's owner and trust: it does the same job.
So a candidate serves an owner's personal work locally only where that owner already extends
trust; the evaluation checks every twin run for violations and `serves_personal_locally`
keeps a candidate that cannot hold some owner's personal work out of the recommendation.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from heddle.advisor.lookup import machine_price_usd, model_spec
from heddle.advisor.slices import Slice, UnitType
from heddle.models.fleet_types import Fleet, Node
from heddle.models.ids import NodeId, OwnerId
from heddle.models.specs import DeviceSpec

__all__ = [
    "Candidate",
    "Purchase",
    "add_candidate",
    "fleet_signature",
    "memory_choices",
    "primary_owner",
    "purchase_trust",
    "purchase_unit",
    "purchased_node",
    "replace_candidate",
    "reserved_fraction",
    "serves_personal_locally",
]


@dataclass(frozen=True, slots=True)
class Purchase:
    device_id: str
    memory_gb: float
    units: int
    unit_price_usd: float

    @property
    def price_usd(self) -> float:
        return self.units * self.unit_price_usd

    def label(self) -> str:
        return f"{self.units} x {self.device_id} ({self.memory_gb:g} GB)"


@dataclass(slots=True)
class Candidate:
    name: str
    kind: str  # "current" | "add" | "replace" | "mix"
    fleet: Fleet
    purchases: tuple[Purchase, ...] = ()
    removed: tuple[NodeId, ...] = ()

    @property
    def purchase_usd(self) -> float:
        return float(sum(p.price_usd for p in self.purchases))


def primary_owner(fleet: Fleet) -> OwnerId:
    """The owner of the most nodes (ties: most memory, then alphabetical)."""
    if not fleet.nodes:
        return OwnerId("owner")
    score: dict[str, tuple[int, float]] = {}
    for n in fleet.nodes:
        c, m = score.get(n.owner, (0, 0.0))
        score[n.owner] = (c + 1, m + n.memory_gb)
    return OwnerId(min(score, key=lambda o: (-score[o][0], -score[o][1], o)))


def purchase_trust(fleet: Fleet) -> frozenset[OwnerId]:
    """Owners who trust the primary owner's machines today (they will trust a new one)."""
    owner = primary_owner(fleet)
    trusted: set[OwnerId] = set()
    for n in fleet.nodes:
        if n.owner == owner:
            trusted |= n.trusted_owners
    trusted.discard(owner)
    return frozenset(trusted)


def reserved_fraction(fleet: Fleet) -> float:
    """New machines are set up like the existing ones: the fleet's median reserve share."""
    if not fleet.nodes:
        return 0.0
    return float(np.median([n.reserved_memory_gb / n.memory_gb for n in fleet.nodes if n.memory_gb]))


def purchased_node(fleet: Fleet, device: DeviceSpec, memory_gb: float, index: int,
                   *, like: Node | None = None) -> Node:
    """A new node for `device`; `like` (a replaced node) lends its owner, trust and labels."""
    nid = NodeId(f"buy-{device.id}-{memory_gb:g}gb-{index}")
    if like is not None:
        return replace(like, id=nid, device=device, memory_gb=float(memory_gb),
                       reserved_memory_gb=like.reserved_memory_gb * memory_gb / like.memory_gb,
                       labels={**like.labels, "purchase": "advisor"})
    return Node(
        id=nid, device=device, memory_gb=float(memory_gb), owner=primary_owner(fleet),
        trusted_owners=purchase_trust(fleet), labels={"purchase": "advisor"},
        reserved_memory_gb=reserved_fraction(fleet) * memory_gb,
    )


def purchase_unit(fleet: Fleet, device: DeviceSpec, memory_gb: float, max_units: int,
                  electricity_usd_per_kwh: float) -> UnitType:
    """A purchase option for the sizing model (a representative new node, up to max_units)."""
    node = purchased_node(fleet, device, memory_gb, 1)
    return UnitType(f"buy:{device.id}:{memory_gb:g}", node, max_units,
                    machine_price_usd(device, memory_gb), electricity_usd_per_kwh)


def memory_choices(device: DeviceSpec, slices: list[Slice], reserved_fraction: float = 0.0) -> list[int]:
    """The smallest memory option for each distinct set of slices the device can hold.

    Larger options that hold nothing more only cost more, so they are never candidates.
    """
    seen: dict[frozenset[int], int] = {}
    for mem in sorted(device.memory_options_gb):
        usable = mem * (1.0 - reserved_fraction)
        holds = frozenset(i for i, s in enumerate(slices) if _need_gb(s) <= usable)
        if holds and holds not in seen:
            seen[holds] = mem
    return sorted(seen.values())


def _need_gb(s: Slice) -> float:
    if s.kind != "llm":
        return s.memory_gb
    spec = model_spec(s.model)
    if s.quant not in spec.bytes_per_weight:
        return float("inf")
    return spec.memory_gb(s.quant, int(s.tail_prompt_tokens + s.tail_output_tokens))


def add_candidate(fleet: Fleet, device: DeviceSpec, memory_gb: float, units: int) -> Candidate:
    nodes = tuple(purchased_node(fleet, device, memory_gb, k + 1) for k in range(units))
    p = Purchase(device.id, float(memory_gb), units, machine_price_usd(device, memory_gb))
    return Candidate(f"+ {p.label()}", "add", replace(fleet, nodes=fleet.nodes + nodes), (p,))


def replace_candidate(fleet: Fleet, old: Node, device: DeviceSpec, memory_gb: float) -> Candidate:
    new = purchased_node(fleet, device, memory_gb, 1, like=old)
    nodes = tuple(new if n.id == old.id else n for n in fleet.nodes)
    p = Purchase(device.id, float(memory_gb), 1, machine_price_usd(device, memory_gb))
    return Candidate(f"replace {old.id} by {p.label()}", "replace", replace(fleet, nodes=nodes),
                     (p,), (old.id,))


def fleet_signature(fleet: Fleet) -> tuple:
    """Two candidates with the same signature are the same hardware (deduplicated)."""
    return tuple(sorted((n.device.id, n.memory_gb, n.owner, tuple(sorted(n.trusted_owners)))
                        for n in fleet.nodes))


def serves_personal_locally(fleet: Fleet, slices: list[Slice]) -> list[str]:
    """Personal slices this fleet cannot hold on any node the owner trusts (empty = all fine)."""
    missing = []
    for s in slices:
        if s.privacy != "personal":
            continue
        need = _need_gb(s)
        if not any(n.may_hold_personal_of(OwnerId(s.owner))
                   and need <= n.memory_gb - n.reserved_memory_gb for n in fleet.nodes):
            missing.append(s.key)
    return missing
