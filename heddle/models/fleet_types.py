"""Nodes, budgets and fleets as plain data (the fleet YAML loader builds these)."""

from __future__ import annotations

from dataclasses import dataclass, field

from heddle.models.ids import AccountId, NodeId, OfferId, OwnerId, PowerSource
from heddle.models.specs import CloudOffer, DeviceSpec


@dataclass(frozen=True, slots=True)
class Node:
    """A device in a fleet."""

    id: NodeId
    device: DeviceSpec
    memory_gb: float  # installed unified memory (or VRAM for a discrete GPU)
    owner: OwnerId
    trusted_owners: frozenset[OwnerId] = frozenset()  # owners whose personal work may run here
    labels: dict[str, str] = field(default_factory=dict)  # e.g. {"location": "office"}
    power_source: PowerSource = PowerSource.AC
    slots: int = 1  # concurrent tasks
    electricity_usd_per_kwh: float = 0.0  # 0 = use the fleet's price
    reserved_memory_gb: float = 0.0  # kept for the OS and the owner's own apps
    replaceable: bool = False  # the owner agrees to the advisor proposing to replace it
    # measured on a live node (`heddle fleet export` writes them; 0 = the performance model exactly):
    service_cv: float = 0.0  # spread of a step's service time around the model's (coefficient of variation)
    service_quantiles: tuple[float, ...] = ()  # that spread's shape: the factor at probabilities 0..1, evenly spaced
    dispatch_s: float = 0.0  # from placing a step on a free slot to its start (the control plane's round trip)
    idle_dispatch_s: float | None = None  # the same for a step placed on the node idle (None: dispatch_s)
    wake_s: float = 0.0  # what a step started on an idle node takes beyond one started back to back (a waking core)
    speed_profile: tuple[tuple[float, float], ...] = ()  # (from Unix s, per-core speed) over a recorded window
    features: frozenset[str] | None = None  # what its model servers run (heddle.models.features; None: all)
    installed: frozenset[tuple[str, str]] | None = None  # (model, quant) its servers have (heddle.models.installed; None: unknown, any)
    runtime: str = ""  # what runs its models, for reasons in words (a live node: its backends, e.g. "mlx")

    def __hash__(self) -> int:  # the labels dict makes the generated hash fail
        return hash((self.id, self.device.id, self.memory_gb, self.owner))

    @property
    def measured_spread(self) -> bool:
        """Whether the twin draws this node's service times around the model's (or adds a wake to them)."""
        return self.service_cv > 0 or bool(self.service_quantiles) or self.wake_s > 0

    def may_hold_personal_of(self, owner: OwnerId | None) -> bool:
        """Privacy rule for `personal` work: the owner's own node or one the owner trusts."""
        return owner is not None and (owner == self.owner or owner in self.trusted_owners)


@dataclass(frozen=True, slots=True)
class Budget:
    """A budget account's cloud spending limit for a period."""

    account: AccountId
    limit_usd: float
    period: str = "month"  # "day" | "week" | "month"


@dataclass(frozen=True, slots=True)
class Fleet:
    """The whole fleet: local nodes, the cloud offers it allows, budgets and prices."""

    name: str
    nodes: tuple[Node, ...]
    cloud_offers: tuple[CloudOffer, ...] = ()
    budgets: dict[AccountId, Budget] = field(default_factory=dict)
    electricity_usd_per_kwh: float = 0.15
    # what each API offer runs (heddle.models.features); an offer not listed runs every feature
    offer_features: dict[OfferId, frozenset[str]] = field(default_factory=dict)

    def __hash__(self) -> int:  # the budgets dict makes the generated hash fail
        return hash((self.name, self.nodes, self.cloud_offers))

    def node(self, node_id: NodeId) -> Node:
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(node_id)

    def offer(self, offer_id: OfferId) -> CloudOffer:
        for o in self.cloud_offers:
            if o.id == offer_id:
                return o
        raise KeyError(offer_id)

    def unknown_account(self, account: str) -> str | None:
        """None if the fleet defines budget account `account`, else what to tell the user (a
        task charged to an account the fleet does not define could never use the cloud: the
        file readers turn this into an error naming the file and field)."""
        if account in self.budgets:
            return None
        known = ", ".join(sorted(self.budgets)) if self.budgets else "none: the fleet defines no budgets"
        return f"budget account {account!r} is not defined by fleet {self.name!r}; expected one of: {known}"

    def price_usd_per_kwh(self, node: Node) -> float:
        return node.electricity_usd_per_kwh or self.electricity_usd_per_kwh
