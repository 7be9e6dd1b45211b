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
import pandas as pd

from heddle.advisor.causes import TAIL_PERCENTILE, row_need_gb
from heddle.advisor.lookup import machine_price_usd, node_model
from heddle.advisor.slices import Slice, UnitType
from heddle.models.fleet_types import Fleet, Node
from heddle.models.ids import NodeId, OwnerId
from heddle.models.specs import DeviceSpec

__all__ = [
    "Candidate",
    "Purchase",
    "add_candidate",
    "fleet_signature",
    "keeps_owner_work",
    "memory_choices",
    "multi_add_candidate",
    "owner_needs",
    "owner_trust",
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
    owner: str = ""  # bought by this owner for themselves ("" = the fleet's primary owner)

    @property
    def price_usd(self) -> float:
        return self.units * self.unit_price_usd

    def label(self) -> str:
        own = f", {self.owner}'s own" if self.owner else ""
        return f"{self.units} x {self.device_id} ({self.memory_gb:g} GB{own})"


@dataclass(slots=True)
class Candidate:
    name: str
    kind: str  # "current" | "add" | "replace" | "mix"
    fleet: Fleet
    purchases: tuple[Purchase, ...] = ()
    removed: tuple[NodeId, ...] = ()
    resale_usd: float = 0.0  # what the removed machines sell for used (advisor.resale)
    resale_source: str = ""
    aim: str = ""  # the failure cause this candidate was generated for ("" = general)

    @property
    def purchase_usd(self) -> float:
        return float(sum(p.price_usd for p in self.purchases))

    @property
    def net_usd(self) -> float:
        """What the change costs: the purchase less the resale of the machines it replaces."""
        return self.purchase_usd - self.resale_usd


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
    return owner_trust(fleet, primary_owner(fleet))


def reserved_fraction(fleet: Fleet) -> float:
    """New machines are set up like the existing ones: the fleet's median reserve share."""
    if not fleet.nodes:
        return 0.0
    return float(np.median([n.reserved_memory_gb / n.memory_gb for n in fleet.nodes if n.memory_gb]))


def owner_trust(fleet: Fleet, owner: OwnerId) -> frozenset[OwnerId]:
    """Owners who trust `owner`'s machines today (a machine `owner` buys is trusted by them)."""
    trusted: set[OwnerId] = set()
    for n in fleet.nodes:
        if n.owner == owner:
            trusted |= n.trusted_owners
    trusted.discard(owner)
    return frozenset(trusted)


def purchased_node(fleet: Fleet, device: DeviceSpec, memory_gb: float, index: int,
                   *, like: Node | None = None, owner: OwnerId | None = None) -> Node:
    """A new node for `device`; `like` (a replaced node) lends its owner, trust and labels;
    `owner` buys it for themselves (trusted by whoever trusts their machines today)."""
    nid = NodeId(f"buy-{device.id}-{memory_gb:g}gb-{index}" + (f"-{owner}" if owner else ""))
    if like is not None:
        return replace(like, id=nid, device=device, memory_gb=float(memory_gb),
                       reserved_memory_gb=like.reserved_memory_gb * memory_gb / like.memory_gb,
                       labels={**like.labels, "purchase": "advisor"})
    who = owner or primary_owner(fleet)
    return Node(
        id=nid, device=device, memory_gb=float(memory_gb), owner=who,
        trusted_owners=owner_trust(fleet, who), labels={"purchase": "advisor"},
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
    spec = node_model(s.model)
    if spec is None:  # a tier and no model, or an API offer: no node holds it
        return float("inf")
    if s.quant not in spec.bytes_per_weight:
        return float("inf")
    return spec.memory_gb(s.quant, int(s.tail_prompt_tokens + s.tail_output_tokens))


def add_candidate(fleet: Fleet, device: DeviceSpec, memory_gb: float, units: int,
                  *, owner: OwnerId | None = None, aim: str = "") -> Candidate:
    """Add `units` of a device, bought by the primary owner (or by `owner` for themselves)."""
    nodes = tuple(purchased_node(fleet, device, memory_gb, k + 1, owner=owner) for k in range(units))
    p = Purchase(device.id, float(memory_gb), units, machine_price_usd(device, memory_gb), owner or "")
    return Candidate(f"+ {p.label()}", "add", replace(fleet, nodes=fleet.nodes + nodes), (p,), aim=aim)


def multi_add_candidate(fleet: Fleet, buys: list[tuple[DeviceSpec, float, OwnerId | None]],
                        aim: str = "") -> Candidate:
    """Add one machine per (device, memory, buyer): e.g. one for each owner who trusts only
    their own machines."""
    nodes = tuple(purchased_node(fleet, d, m, k + 1, owner=o) for k, (d, m, o) in enumerate(buys))
    ps = tuple(Purchase(d.id, float(m), 1, machine_price_usd(d, m), o or "") for d, m, o in buys)
    return Candidate("+ " + " + ".join(p.label() for p in ps), "add",
                     replace(fleet, nodes=fleet.nodes + nodes), ps, aim=aim)


def replace_candidate(fleet: Fleet, old: Node, device: DeviceSpec, memory_gb: float,
                      resale_usd: float = 0.0, resale_source: str = "") -> Candidate:
    """Sell `old` (for `resale_usd`) and put a new device in its place, same owner and trust."""
    new = purchased_node(fleet, device, memory_gb, 1, like=old)
    nodes = tuple(new if n.id == old.id else n for n in fleet.nodes)
    p = Purchase(device.id, float(memory_gb), 1, machine_price_usd(device, memory_gb))
    return Candidate(f"replace {old.id} by {p.label()}", "replace", replace(fleet, nodes=nodes),
                     (p,), (old.id,), resale_usd, resale_source)


def owner_needs(df: pd.DataFrame) -> dict[str, list[tuple[str, float]]]:
    """What each owner runs today: owner -> [(model:quant, memory GB its p90 request needs)]."""
    out: dict[str, list[tuple[str, float]]] = {}
    tokens = df["prompt_tokens"].to_numpy(np.float64) + df["output_tokens"].to_numpy(np.float64)
    frame = df.assign(_tok=tokens)
    cols = ["owner", "kind", "model", "quant"]
    for (owner, kind, model, quant), g in frame.groupby(cols, observed=True, sort=True):
        need = row_need_gb(str(kind), str(model), str(quant),
                           float(np.percentile(g["_tok"], TAIL_PERCENTILE)),
                           float(g["memory_gb"].max()) if "memory_gb" in g else 0.0)
        out.setdefault(str(owner), []).append((f"{model}:{quant}", need))
    return out


def keeps_owner_work(old: Node, new: Node, needs: list[tuple[str, float]]) -> list[str]:
    """What `old`'s owner runs today that `old` can hold and `new` cannot (empty = all kept)."""
    def free(n: Node) -> float:
        return n.memory_gb - n.reserved_memory_gb

    return [what for what, gb in needs if gb <= free(old) and gb > free(new)]


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
