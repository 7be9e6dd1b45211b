"""What the scheduler sees at one instant (built by the twin and by the live runtime)."""

from __future__ import annotations

from dataclasses import dataclass, field

from heddle.models.fleet_types import Fleet
from heddle.models.ids import (
    AccountId,
    ModelId,
    NodeId,
    NodeStatus,
    OfferId,
    PowerSource,
    ThermalState,
)


@dataclass(slots=True)
class NodeState:
    """Live view of one node."""

    node_id: NodeId
    free_memory_gb: float
    free_slots: int
    resident_models: frozenset[tuple[ModelId, str]] = frozenset()  # (model, quant) loaded now
    backlog_s: float = 0.0  # seconds of work already queued/running ahead of new work
    status: NodeStatus = NodeStatus.ACTIVE
    power_source: PowerSource = PowerSource.AC
    thermal: ThermalState = ThermalState.NOMINAL
    speed_factor: float = 1.0  # < 1 when throttled


@dataclass(slots=True)
class FleetState:
    """Fleet + per-node state + spend so far. `time_s` is the only clock the optimizer reads."""

    time_s: float
    fleet: Fleet
    nodes: dict[NodeId, NodeState]
    cloud_spend_usd: dict[AccountId, float] = field(default_factory=dict)  # this budget period
    instance_ready_at_s: dict[OfferId, float] = field(default_factory=dict)  # running instances

    @classmethod
    def idle(cls, fleet: Fleet, time_s: float = 0.0) -> FleetState:
        """Every node empty, active and on its configured power source."""
        return cls(
            time_s=time_s,
            fleet=fleet,
            nodes={
                n.id: NodeState(
                    node_id=n.id,
                    free_memory_gb=n.memory_gb - n.reserved_memory_gb,
                    free_slots=n.slots,
                    power_source=n.power_source,
                )
                for n in fleet.nodes
            },
        )
