"""Settings of the control plane (the CLI fills them from flags, HEDDLE_* and config.yaml)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from heddle.models import Fleet

__all__ = ["ControlSettings"]


@dataclass(frozen=True, slots=True)
class ControlSettings:
    report_interval_s: float = 2.0
    """How often agents send capacity reports (the agent's default)."""
    missed_reports: int = 3
    """A node silent for this many intervals is lost and its work re-placed (issue 15:
    3 x 2 s; for reference k8s waits 40-50 s, Ray ~20-70 s)."""
    ack_timeout_s: float = 2.0
    """How long an agent has to acknowledge an assignment before the attempt counts as lost."""
    task_timeout_s: float = 600.0
    """Per-attempt limit for tasks whose submission sets none; then the attempt is lost."""
    timeout_grace_s: float = 2.0
    """Extra time past an attempt's timeout for the agent's own report to arrive first."""
    max_retries: int = 3
    """Re-placements after lost attempts before a task fails (the core's rule)."""
    max_defer_s: float = 3600.0
    """Longest a task may wait for a place before it is rejected (the core's rule)."""
    policy: str = "fast"
    """Placement policy (heddle.optimizer); "fast" decides in ~0.1 ms per task."""
    fallback_device: str | None = None
    """Catalog device assumed for nodes that report none (None: such nodes are refused)."""
    drain_deadline_s: float = 60.0
    """Time a draining node gets for its in-flight work."""
    keep_ended: int = 10_000
    """Ended tasks kept in memory for `heddle status` and dependencies (older ones are read
    from the event log): the control plane's memory stays bounded however long it runs."""
    keep_jobs: int = 1_000
    """Jobs without work in memory whose per-state counts are kept."""
    sender: str = "control-plane"
    """This process's sender id on the wire."""
    fleet: Fleet | None = None
    """The fleet file's cloud offers, budgets and electricity price (heddle scheduler --fleet);
    the nodes come from the agents' reports. None: no cloud, no budgets."""
    record_dir: str | None = None
    """Where every ended task is recorded as a trace (`heddle scheduler`: <data dir>/recorded);
    None: not recorded."""
    users_file: str | None = None
    """The cluster's users file (owner and account of each user login; `heddle up` passes
    it): a user's tasks may name only its own. None: not checked."""

    @property
    def silence_s(self) -> float:
        return self.report_interval_s * self.missed_reports
