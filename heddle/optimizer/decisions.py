"""Read an assignment back into `Decision`s with cost parts and explanations.

Explanations of the rejected alternatives are built lazily (a Mapping that renders on first
access) from the scored table captured at call time, so a caller that never reads them (the
twin) does not pay for thousands of strings, and a caller that reads them later still sees
the state as it was when the decision was made.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping

import numpy as np

from heddle.models import FleetState, NodeState, Task, TaskId
from heddle.optimizer.assign import Assignment
from heddle.optimizer.placement import Decision, DecisionStatus, TargetKind
from heddle.optimizer.reasons import Reason, reason_text, unplaced_reason
from heddle.optimizer.scoring import Scored, score
from heddle.optimizer.view import gather

__all__ = ["Alternatives", "decisions", "explain_later"]


class _LazyMapping(Mapping):
    """A read-only str -> str mapping whose contents `_resolve()` builds on first access."""

    __slots__ = ()

    def _resolve(self) -> Mapping[str, str]:
        raise NotImplementedError

    def __getitem__(self, key: str) -> str:
        return self._resolve()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._resolve())

    def __len__(self) -> int:
        return len(self._resolve())

    def __repr__(self) -> str:
        return repr(self._resolve())


class Alternatives(_LazyMapping):
    """target -> why it was not chosen (a broken constraint, or its higher cost)."""

    __slots__ = ("_chosen", "_data", "_full", "_sc", "_t")

    def __init__(self, sc: Scored, t: int, chosen: int, full: np.ndarray | None) -> None:
        self._sc, self._t, self._chosen, self._full = sc, t, chosen, full
        self._data: dict[str, str] | None = None

    def _resolve(self) -> dict[str, str]:
        if self._data is None:
            sc, t = self._sc, self._t
            task = sc.tasks[t]
            out: dict[str, str] = {}
            for j, name in enumerate(sc.fa.target_names):
                if j == self._chosen:
                    continue
                code = int(sc.codes[t, j])
                if code:
                    out[name] = reason_text(code, task.privacy.value, task.model, sc.fa.offer_ids,
                                            sc.fa.lacking_text(task.needs, task.model) if task.needs else "",
                                            sc.fa.missing_text(task.model, task.quant) if code == Reason.MODEL else "")
                elif self._full is not None and self._full[j]:
                    out[name] = "slots/memory/budget: used by other tasks of this batch"
                else:
                    out[name] = f"cost: ${sc.total_usd[t, j]:.6f} is not the cheapest option"
            self._data = out
        return self._data


def _unplaced_reason(sc: Scored, t: int, permanent: bool) -> str:
    counts = Counter(int(c) for c in sc.codes[t] if c)
    task = sc.tasks[t]
    lacking = sc.fa.lacking_text(task.needs, task.model) if Reason.FEATURE in counts else ""
    missing = sc.fa.missing_text(task.model, task.quant) if Reason.MODEL in counts else ""
    return unplaced_reason(counts, bool(sc.ok[t].any()), permanent, task.privacy.value, task.model,
                           sc.fa.offer_ids, lacking, missing)


def decisions(sc: Scored, assignment: Assignment, solver: str, explain: bool, eviction_usd: float,
              full: np.ndarray | None = None) -> list[Decision]:
    """One Decision per task in input order. `full` [J]: targets whose batch capacity ran out."""
    fa, now = sc.fa, sc.view.time_s
    out: list[Decision] = []
    n_nodes = fa.n_nodes
    for t, task in enumerate(sc.tasks):
        j = int(assignment.target[t])
        if j < 0:
            permanent = bool(sc.permanent[t])
            status = DecisionStatus.REJECTED if permanent else DecisionStatus.DEFERRED
            d = Decision(TaskId(task.id), status, reason=_unplaced_reason(sc, t, permanent),
                         cost_usd={"defer": float(sc.defer_usd[t])})
        else:
            evict = eviction_usd if assignment.evicted_by[t] else 0.0
            d = Decision(
                TaskId(task.id), DecisionStatus.PLACED, fa.target_names[j],
                TargetKind.NODE if j < n_nodes else TargetKind.CLOUD,
                reason=f"lowest cost ({solver})" if j < n_nodes else f"cloud burst ({solver})",
                est_start_s=now + float(sc.wait_s[j]),
                est_seconds=float(sc.service_s[t, j]),
                cost_usd={
                    "cloud": float(sc.cloud_usd[t, j]),
                    "energy": float(sc.energy_usd[t, j]),
                    "time": float(sc.lateness_usd[t, j]),
                    "eviction": float(evict),
                },
            )
        if explain:
            d.rejected_alternatives = Alternatives(sc, t, j, full)  # type: ignore[assignment]
        out.append(d)
    return out


class _Deferred(_LazyMapping):
    """Alternatives of a one-task decision, scored from a snapshot only when first read."""

    __slots__ = ("_alts", "_args")

    def __init__(self, fa, snapshot: FleetState, task: Task, policy, chosen: int) -> None:
        self._args = (fa, snapshot, task, policy, chosen)
        self._alts: Alternatives | None = None

    def _resolve(self) -> Alternatives:
        if self._alts is None:
            fa, snapshot, task, policy, chosen = self._args
            sc = score(fa, gather(fa, snapshot, policy.instance_slots_per_gpu), [task], policy)
            self._alts = Alternatives(sc, 0, chosen, None)
        return self._alts


def explain_later(decision: Decision, fa, state: FleetState, task: Task, policy) -> None:
    """Attach lazily-scored alternatives, from a copy of the state as it is now (the caller
    may change its NodeStates right after the call, as the twin does)."""
    snapshot = FleetState(
        time_s=state.time_s,
        fleet=state.fleet,
        nodes={nid: NodeState(ns.node_id, ns.free_memory_gb, ns.free_slots, ns.resident_models, ns.backlog_s,
                              ns.status, ns.power_source, ns.thermal, ns.speed_factor)
               for nid, ns in state.nodes.items()},
        cloud_spend_usd=dict(state.cloud_spend_usd),
        instance_ready_at_s=dict(state.instance_ready_at_s),
    )
    chosen = fa.target_names.index(decision.target) if decision.target is not None else -1
    decision.rejected_alternatives = _Deferred(fa, snapshot, task, policy, chosen)  # type: ignore[assignment]
