"""The placement engine (PLACEHOLDER until the optimizer lands: the signature is the contract).

    place(state: FleetState, pending: Sequence[Task], policy: Policy | str = "optimal") -> Placement
"""

from heddle.optimizer._stub import place
from heddle.optimizer.placement import Decision, DecisionStatus, Placement, TargetKind

__all__ = ["Decision", "DecisionStatus", "Placement", "TargetKind", "place"]
