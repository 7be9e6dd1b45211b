"""heddle.sim: the SimPy digital twin.

Replays a workload (trace or tasks) against a fleet that may not exist, scheduling every task
through the shared scheduling core and `heddle.optimizer.place()` exactly as the live runtime
does, and reports per-task records and summary metrics. `simulate()` runs once; `run_many()` runs side by side.
"""

from heddle.sim.engine import TwinSettings
from heddle.sim.errors import PrivacyViolationError, ScenarioError, SimError, WorkloadError
from heddle.sim.metrics import SimSummary, class_table
from heddle.sim.result import SimResult
from heddle.sim.runner import RunSpec, run_many, simulate
from heddle.sim.scenario import Scenario, load_scenario, shipped_scenario_path
from heddle.sim.workload import Workload, as_workload

__all__ = [
    "PrivacyViolationError",
    "RunSpec",
    "Scenario",
    "ScenarioError",
    "SimError",
    "SimResult",
    "SimSummary",
    "TwinSettings",
    "Workload",
    "WorkloadError",
    "as_workload",
    "class_table",
    "load_scenario",
    "run_many",
    "shipped_scenario_path",
    "simulate",
]
