"""The placement engine: `place(state, pending, policy="optimal") -> Placement`.

Pure and deterministic; policies by name ("optimal", "fast", "round-robin", "least-loaded",
"ray-hybrid", "cheapest") or as a `Policy` with custom weights. See docs/optimizer.md.
"""

from heddle.optimizer.engine import REGISTRY, place, resolve_policy, scored
from heddle.optimizer.errors import OptimizerError, TaskFileError, UnknownPolicyError
from heddle.optimizer.placement import Decision, DecisionStatus, Placement, TargetKind
from heddle.optimizer.policy import POLICY_NAMES, Policy
from heddle.optimizer.reasons import Reason
from heddle.optimizer.scheduling import (
    CoreSettings,
    CoreSink,
    SchedulingCore,
    SchedulingError,
    UnknownTaskError,
)

__all__ = [
    "POLICY_NAMES",
    "REGISTRY",
    "CoreSettings",
    "CoreSink",
    "Decision",
    "DecisionStatus",
    "OptimizerError",
    "Placement",
    "Policy",
    "Reason",
    "SchedulingCore",
    "SchedulingError",
    "TargetKind",
    "TaskFileError",
    "UnknownPolicyError",
    "UnknownTaskError",
    "place",
    "resolve_policy",
    "scored",
]
