"""How the control plane asks for placements: the core's `decide` hook, answering one-task
questions with the optimizer's `ExpressPlacer` where it is proven equal to `place()` (policies
"optimal" and "fast" without explanations; tests/optimizer/test_express.py holds the two
equal) and with `place()` itself otherwise. Every decision is `place()`'s decision; this
only skips `place()`'s general machinery for the common outcome, a local node.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from heddle.models import FleetState, Task
from heddle.optimizer import Decision, DecisionStatus, Policy, TargetKind, resolve_policy
from heddle.optimizer.express import EXPRESS_POLICIES, ExpressPlacer, task_row

__all__ = ["Decider", "live_policy"]


def live_policy(name: str) -> Policy:
    """The named policy without per-decision explanations (nobody reads them live)."""
    return replace(resolve_policy(name), explain=False)


class Decider:
    """``decide(now_s, keys)`` for the core: express for one task, else the core's place()."""

    def __init__(self, state: FleetState, policy: Policy, task_of: Callable[[str], Task],
                 fallback: Callable[[float, Sequence[str]], Sequence[Decision]],
                 refresh: Callable[[float], None] | None = None) -> None:
        self.state, self.policy, self.task_of, self.fallback = state, policy, task_of, fallback
        self.refresh = refresh  # brings the state's node backlogs up to now before a decision
        self.express = policy.name in EXPRESS_POLICIES and not policy.explain
        self._placer: ExpressPlacer | None = None
        self.express_hits = 0

    def __call__(self, now_s: float, keys: Sequence[str]) -> Sequence[Decision]:
        if self.refresh is not None:
            self.refresh(now_s)
        if self.express and len(keys) == 1:
            placer = self._placer
            if placer is None or not placer.current():
                placer = self._placer = ExpressPlacer(self.state, self.policy)
            task = self.task_of(keys[0])
            found = placer.place_row(task_row(task))
            if found is not None:
                self.express_hits += 1
                index, est_seconds = found
                return [Decision(task.id, DecisionStatus.PLACED, target=placer.fa.node_ids[index],
                                 target_kind=TargetKind.NODE, reason="lowest cost (express)",
                                 est_start_s=now_s, est_seconds=est_seconds)]
        return self.fallback(now_s, keys)
