"""Where a just-submitted task stands, for a caller that answers its own caller at once (the
gateway): placed on a node, waiting (the core's reason and an estimated wait) or ended.

The estimated wait reads what the scheduling core decided: each running attempt is expected
to end at its placement time plus `place()`'s ``est_seconds`` for it. A waiting task needs a
slot on a node its privacy rule allows (`privacy_allows`, the control plane's one copy);
with ``ahead`` tasks waiting before it, it gets the ``ahead``-th slot to free after the
soonest, plus one round (until the last running attempt ends) for each time the eligible
running work turns over. No estimate (None) when no eligible node runs anything: nothing is known to free.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from heddle.live.control.book import LiveTask, outcome
from heddle.live.control.privacy import privacy_allows

if TYPE_CHECKING:
    from heddle.live.control.plane import ControlPlane

__all__ = ["ended_placement", "placement", "wait_estimate_s"]


def wait_estimate_s(plane: ControlPlane, live: LiveTask, now_s: float) -> float | None:
    """Seconds until ``live`` may expect a slot (see the module docstring), or None."""
    ends: list[float] = []
    for node_id, node in plane.fleet.nodes.items():
        if not plane.fleet.usable(node_id) or not privacy_allows(live.task, node.node):
            continue
        for key in node.running:
            other = plane.tasks.get(key)
            if other is not None and other is not live:
                ends.append(max(other.est_end_s - now_s, 0.0))
    if not ends:
        return None
    ends.sort()
    ahead = max(plane.core.waiting() - 1, 0)  # every other waiting task, as if all came first
    rounds, index = divmod(ahead, len(ends))
    return ends[index] + rounds * ends[-1]  # a round: until the last running attempt ends


def ended_placement(plane: ControlPlane, task_id: str) -> dict[str, Any]:
    """``{"status": <outcome>, "reason"}`` of a task that ended (in memory or in the window of
    ended tasks; "failed" if neither knows it any more)."""
    aggregate = plane.journal.tasks.get(task_id)
    if aggregate is not None:
        return {"status": outcome(aggregate), "reason": aggregate.failure_reason}
    ended = plane.window.get(task_id)
    return {"status": ended.status, "reason": ended.reason} if ended else {"status": "failed", "reason": ""}


def placement(plane: ControlPlane, live: LiveTask | None, now_s: float, task_id: str = "") -> dict[str, Any]:
    """``{"status": "placed", "node", "attempt"}`` (and ``"offer"``: the cloud API offer the
    attempt calls through that node, when it does), ``{"status": "waiting", "reason",
    "retry_after_s"}`` (None: no estimate) or ``{"status": <outcome>, "reason"}`` once ended
    (``live`` None: ``task_id`` ended and left the working set)."""
    if live is None:
        return ended_placement(plane, task_id)
    if live.terminal:
        return ended_placement(plane, live.key)
    if live.node:
        placed = {"status": "placed", "node": live.node, "attempt": live.attempt}
        return placed | {"offer": live.offer} if live.offer else placed
    warming_s = plane.warming_left_s(now_s)
    if warming_s is not None:
        return {"status": "waiting", "reason": "the control plane has just started: waiting for "
                "every node to report", "retry_after_s": warming_s}
    est = wait_estimate_s(plane, live, now_s)
    return {"status": "waiting", "reason": live.wait_reason or "waiting for a place",
            "retry_after_s": None if est is None else math.ceil(est * 1000) / 1000}
