"""The vocabulary: devices, AI models, cloud offers, fleets, tasks, performance and cost.

Submodules with functions rather than types: `catalog` (device/model/offer lookups), `perf`
(step times), `cost` (USD), `calibration` (fit and accuracy of the perf model).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from heddle.models.council import CouncilIn, expand_council
    from heddle.models.fleet import load_fleet, parse_fleet, shipped_fleet_path, shipped_fleets
    from heddle.models.fleet_types import Budget, Fleet, Node
    from heddle.models.perf import StepTime
    from heddle.models.pipeline import Pipeline, StageIn, build_pipeline
    from heddle.models.predict import Prediction, predict_step
    from heddle.models.specs import CloudOffer, DeviceSpec, ModelSpec
    from heddle.models.state import FleetState, NodeState
    from heddle.models.task import Task
    from heddle.models.workload import Workload, load_workload, parse_workload

_LAZY: dict[str, str] = {
    "Budget": "fleet_types",
    "CloudOffer": "specs",
    "CouncilIn": "council",
    "DeviceSpec": "specs",
    "Fleet": "fleet_types",
    "FleetState": "state",
    "ModelSpec": "specs",
    "Node": "fleet_types",
    "NodeState": "state",
    "Pipeline": "pipeline",
    "Prediction": "predict",
    "StageIn": "pipeline",
    "StepTime": "perf",
    "Task": "task",
    "Workload": "workload",
    "build_pipeline": "pipeline",
    "expand_council": "council",
    "load_fleet": "fleet",
    "load_workload": "workload",
    "parse_fleet": "fleet",
    "parse_workload": "workload",
    "predict_step": "predict",
    "shipped_fleet_path": "fleet",
    "shipped_fleets": "fleet",
}
"""Public name -> the submodule defining it, imported on first use: `heddle catalog list` and
`heddle --help` must not pay for numpy, pydantic and the perf model at start-up."""


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'heddle.models' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"heddle.models.{module}"), name)
    globals()[name] = value  # later lookups are plain attribute reads
    return value


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
