"""The vocabulary: devices, AI models, cloud offers, fleets, tasks, performance and cost.

Submodules with functions rather than types: `catalog` (device/model/offer lookups), `perf`
(step times), `cost` (USD), `calibration` (fit and accuracy of the perf model).
"""

from heddle.models.council import CouncilIn, expand_council
from heddle.models.errors import (
    CatalogError,
    ConfigError,
    CycleError,
    FleetError,
    ModelsError,
    PerfError,
    UnknownIdError,
    WorkloadError,
)
from heddle.models.fleet import load_fleet, parse_fleet, shipped_fleet_path, shipped_fleets
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
from heddle.models.perf import StepTime
from heddle.models.pipeline import Pipeline, StageIn, build_pipeline
from heddle.models.predict import Prediction, predict_step
from heddle.models.specs import CloudOffer, DeviceSpec, ModelSpec
from heddle.models.state import FleetState, NodeState
from heddle.models.task import Task
from heddle.models.workload import Workload, load_workload, parse_workload

__all__ = [
    "AccountId",
    "Budget",
    "CatalogError",
    "CloudOffer",
    "ConfigError",
    "CouncilIn",
    "CycleError",
    "DeviceId",
    "DeviceSpec",
    "Fleet",
    "FleetError",
    "FleetState",
    "ModelId",
    "ModelSpec",
    "ModelsError",
    "Node",
    "NodeId",
    "NodeState",
    "NodeStatus",
    "OfferId",
    "OfferKind",
    "OwnerId",
    "PerfError",
    "Pipeline",
    "PowerSource",
    "Prediction",
    "Privacy",
    "StageIn",
    "StepTime",
    "Task",
    "TaskId",
    "TaskKind",
    "ThermalState",
    "Tier",
    "UnknownIdError",
    "Workload",
    "WorkloadError",
    "build_pipeline",
    "expand_council",
    "load_fleet",
    "load_workload",
    "parse_fleet",
    "parse_workload",
    "predict_step",
    "shipped_fleet_path",
    "shipped_fleets",
]
