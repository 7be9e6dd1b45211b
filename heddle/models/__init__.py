"""The vocabulary: devices, AI models, cloud offers, fleets, tasks, performance and cost."""

from heddle.models.fleet_types import Budget, Fleet, Node
from heddle.models.ids import (
    AccountId,
    DeviceId,
    ModelId,
    NodeId,
    NodeStatus,
    OfferId,
    OfferKind,
    OwnerId,
    PowerSource,
    Privacy,
    TaskId,
    TaskKind,
    ThermalState,
    Tier,
)
from heddle.models.specs import CloudOffer, DeviceSpec, ModelSpec
from heddle.models.state import FleetState, NodeState
from heddle.models.task import Task

__all__ = [
    "AccountId",
    "Budget",
    "CloudOffer",
    "DeviceId",
    "DeviceSpec",
    "Fleet",
    "FleetState",
    "ModelId",
    "ModelSpec",
    "Node",
    "NodeId",
    "NodeState",
    "NodeStatus",
    "OfferId",
    "OfferKind",
    "OwnerId",
    "PowerSource",
    "Privacy",
    "Task",
    "TaskId",
    "TaskKind",
    "ThermalState",
    "Tier",
]
