"""What `place()` returns (CONTRACT shared with sim/ and live/; the optimizer owner may add fields)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from heddle.models.ids import TaskId


class DecisionStatus(str, Enum):
    PLACED = "placed"
    DEFERRED = "deferred"  # try again later (e.g. local queue will free up; budget period rolls)
    REJECTED = "rejected"  # can never run under the constraints (reason says which)


class TargetKind(str, Enum):
    NODE = "node"
    CLOUD = "cloud"


@dataclass(slots=True)
class Decision:
    task_id: TaskId
    status: DecisionStatus
    target: str | None = None  # NodeId or OfferId
    target_kind: TargetKind | None = None
    reason: str = ""  # why deferred/rejected, or why this target (short)
    est_start_s: float = 0.0  # on the state's clock
    est_seconds: float = 0.0  # predicted service time on the target
    cost_usd: dict[str, float] = field(default_factory=dict)  # objective parts: cloud, energy, time (waiting + lateness), eviction
    rejected_alternatives: dict[str, str] = field(default_factory=dict)  # target -> constraint that ruled it out


@dataclass(slots=True)
class Placement:
    decisions: list[Decision]
    status: str = "OPTIMAL"  # OPTIMAL / FEASIBLE / FAST_PATH / ...
    objective: float = 0.0
    best_bound: float = 0.0
    solver: str = "fast_path"
    wall_s: float = 0.0  # the placement's own wall time (scoring, LP, CP-SAT), not a clock to rely on
    fixed_usd: float = 0.0  # deferral costs of tasks nothing can place: in every objective

    @property
    def gap(self) -> float:
        """(objective - best_bound) / (objective - fixed_usd): the relative gap on the part of
        the objective a scheduler can change (0 when nothing can change)."""
        changeable = self.objective - self.fixed_usd
        return max(self.objective - self.best_bound, 0.0) / changeable if changeable > 1e-12 else 0.0

    def by_task(self) -> dict[TaskId, Decision]:
        return {d.task_id: d for d in self.decisions}
