"""One local node in the twin: slots, unified memory with resident models (LRU), its queue,
and the bookkeeping that becomes utilization and energy.

The node owns the `NodeState` object the optimizer sees and updates it in place after every
change, so building a `FleetState` for `place()` costs nothing per decision. Memory rule:
resident weights are not free memory; when a task needs room, the twin evicts the least
recently used models that no running task uses.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from heddle.models import Node, NodeState, NodeStatus
from heddle.optimizer.view import backlog_s

__all__ = ["ModelQuant", "NodeRt", "Spread"]


class ModelQuant(NamedTuple):
    """What the twin's memory model needs of one (model, quant): its integer key in the run,
    the catalog spec, weights GB, KV-cache GB per token, and the (model, quant) names."""

    key: int
    spec: Any
    weights_gb: float
    kv_gb_per_token: float
    name: tuple[str, str]


@dataclass(frozen=True, slots=True)
class Spread:
    """How a measured node's service times vary around the performance model's: a factor
    drawn for each step from its standard normal ``z``, with mean 1, and `wake_s` added to a
    step that starts on an idle node (`drawn`).

    From the measured quantiles of the factor (`quantiles`: at evenly spaced probabilities
    from 0 to 1, the distribution between them linear) when the node has them: a shared
    core's steps are skewed (most a little faster than the mean, a few much slower), which a
    lognormal of the same standard deviation does not draw. Else lognormal (`mu`, `sigma` of
    the log factor) from a coefficient of variation alone (a fleet file written by hand)."""

    mu: float = 0.0
    sigma: float = 0.0
    quantiles: tuple[float, ...] = ()
    wake_s: float = 0.0

    @classmethod
    def measured(cls, service_cv: float, quantiles: tuple[float, ...] = (), wake_s: float = 0.0) -> Spread:
        if len(quantiles) >= 2:
            steps = len(quantiles) - 1
            mean = (sum(quantiles) - (quantiles[0] + quantiles[-1]) / 2) / steps  # of the linear pieces
            return cls(quantiles=tuple(q / mean for q in quantiles), wake_s=wake_s)
        sigma = math.sqrt(math.log1p(service_cv**2))
        return cls(mu=-0.5 * sigma * sigma, sigma=sigma, wake_s=wake_s)

    def drawn(self, service_s: float, z: float, idle: bool) -> float:
        """The service time of a step the performance model gives `service_s`, for its
        standard normal draw `z`, started on an idle node (`idle`: its core wakes first) or not."""
        return service_s * self.factor(z) + (self.wake_s if idle else 0.0)

    def factor(self, z: float) -> float:
        table = self.quantiles
        if not table:
            return math.exp(self.mu + self.sigma * z)
        at = 0.5 * math.erfc(-z / _SQRT2) * (len(table) - 1)  # the normal's CDF, on the table's scale
        k = min(int(at), len(table) - 2)
        return table[k] + (table[k + 1] - table[k]) * (at - k)


_SQRT2 = math.sqrt(2.0)


@dataclass(slots=True, eq=False)  # identity hash: the twin keeps sets of nodes
class NodeRt:
    """Runtime state of one node (the twin's side; `ns` is the optimizer's view)."""

    idx: int
    node: Node
    ns: NodeState
    usable_gb: float  # installed memory minus the owner's reserve
    busy_w_per_slot: float  # (typical - idle power) / slots: the marginal power of one task
    idle_w: float
    price_usd_per_kwh: float
    present: bool = True
    present_since_s: float = 0.0
    present_spans: list[tuple[float, float]] = field(default_factory=list)  # closed (from, to) in the fleet
    busy_slot_s: float = 0.0  # slot-seconds of service, interrupted runs included
    running: set[int] = field(default_factory=set)
    queue: deque[int] = field(default_factory=deque)  # placed here, waiting for a slot/memory
    queued_work_s: float = 0.0  # estimated service of the queue (for backlog_s)
    finish_sum_s: float = 0.0  # sum of expected finish times of running tasks
    resident: OrderedDict[int, float] = field(default_factory=OrderedDict)  # key -> GB, LRU first
    loaded_at_s: dict[int, float] = field(default_factory=dict)  # key -> time its load completes
    in_use: dict[int, int] = field(default_factory=dict)  # key -> running tasks using it
    resident_gb: float = 0.0
    in_use_weights_gb: float = 0.0
    pinned_gb: float = 0.0  # KV cache / working memory of running tasks
    loads: int = 0
    evictions: int = 0
    names: dict[int, tuple[str, str]] = field(default_factory=dict)  # key -> (model, quant)
    # a measured node's steps (Node.service_cv or Node.service_quantiles, Node.wake_s,
    # Node.dispatch_s, Node.idle_dispatch_s): each service time is multiplied by the spread's
    # factor for z, the task's standard normal draw (mean 1 kept), plus the wake when the node
    # was idle, and starts dispatch_s (idle: idle_dispatch_s) after its placement
    spread: Spread | None = None
    dispatch_s: float = 0.0
    idle_dispatch_s: float = 0.0
    last_end_s: float = -math.inf  # when its last step ended
    # CPU speed the node's processor steps run at over the one the scheduler sees (a
    # scenario's `pace`: other work on the machine; a live node's measured speed over time,
    # heddle.sim.fidelity)
    pace: float = 1.0

    def measure_spread(self, service_cv: float, quantiles: tuple[float, ...] = (), wake_s: float = 0.0) -> None:
        """Draw service times from the measured `quantiles` of the factor when there are
        some, else lognormal with this coefficient of variation (both scaled to mean 1), and
        add `wake_s` to a step started on the node idle."""
        self.spread = Spread.measured(service_cv, quantiles, wake_s)

    def idle_at(self, placed_s: float) -> bool:
        """Whether a step placed at `placed_s` finds the node idle: nothing runs here and its
        last step ended before then (a step placed as the previous one ends waited for it:
        it starts back to back)."""
        return not self.running and placed_s > self.last_end_s

    def start_delay_s(self, idle: bool) -> float:
        """From a step's placement to its start: the control plane's round trip, measured for
        a step placed on the node idle and for one started back to back (after the previous
        one's end: its completion reaches the control plane first)."""
        return self.idle_dispatch_s if idle else self.dispatch_s

    @property
    def slots(self) -> int:
        return self.node.slots

    def accepts_work(self) -> bool:
        return self.present and self.ns.status is NodeStatus.ACTIVE

    # -- memory -------------------------------------------------------------------------
    def admit(self, key: int, weights_gb: float, need_gb: float, name: tuple[str, str]) -> tuple[bool, bool]:
        """Reserve memory for one task. Returns (admitted, model_was_missing).

        `key` < 0 means no model (a processor step). Evicts idle models, least recently used
        first, until the task fits; if it still does not fit, nothing changes.
        """
        missing = key >= 0 and key not in self.resident
        need = need_gb + (weights_gb if missing else 0.0)
        available = self.usable_gb - self.resident_gb - self.pinned_gb
        if need > available:
            idle = [k for k in self.resident if k != key and not self.in_use.get(k)]
            reclaimable = sum(self.resident[k] for k in idle)
            if need > available + reclaimable + 1e-9:
                return False, missing
            changed = False
            for k in idle:  # OrderedDict order = least recently used first
                if need <= available + 1e-9:
                    break
                gb = self.resident.pop(k)
                self.loaded_at_s.pop(k, None)
                self.resident_gb -= gb
                available += gb
                self.evictions += 1
                changed = True
            if changed:
                self._publish_resident()
        if key >= 0:
            if missing:
                self.resident[key] = weights_gb
                self.resident_gb += weights_gb
                self.names[key] = name
                self.loads += 1
                self._publish_resident()
            else:
                self.resident.move_to_end(key)
            uses = self.in_use.get(key, 0)
            if uses == 0:
                self.in_use_weights_gb += self.resident[key]
            self.in_use[key] = uses + 1
        self.pinned_gb += need_gb
        return True, missing

    def release(self, key: int, need_gb: float) -> None:
        """Give back what `admit` reserved (the model stays resident, now reclaimable)."""
        self.pinned_gb -= need_gb
        if key >= 0 and key in self.in_use:
            uses = self.in_use[key] - 1
            if uses <= 0:
                del self.in_use[key]
                self.in_use_weights_gb -= self.resident.get(key, 0.0)
            else:
                self.in_use[key] = uses

    def wipe(self) -> None:
        """The node left or died: memory is empty, nothing runs, nothing is queued."""
        self.running.clear()
        self.queue.clear()
        self.queued_work_s = 0.0
        self.finish_sum_s = 0.0
        self.resident.clear()
        self.loaded_at_s.clear()
        self.in_use.clear()
        self.resident_gb = self.in_use_weights_gb = self.pinned_gb = 0.0
        self._publish_resident()

    # -- what the optimizer sees --------------------------------------------------------
    def _publish_resident(self) -> None:
        self.ns.resident_models = frozenset(self.names[k] for k in self.resident)

    def publish(self, now_s: float) -> bool:
        """Refresh free slots, free memory and backlog in the optimizer's NodeState.

        Returns True when the node is full (no free slot or a queue): its backlog then moves
        with the clock and the twin refreshes it before each placement (`refresh_backlog`).
        """
        ns = self.ns
        slots = self.node.slots
        busy = len(self.running)
        queued = len(self.queue)
        free = slots - busy - queued
        ns.free_slots = free if free > 0 else 0  # noqa: FURB136 (max() is a call; this runs per event)
        # resident weights are not free: the optimizer counts them as evictable only when the
        # node is idle (heddle.optimizer.view), and the twin evicts them LRU when it must
        mem = self.usable_gb - self.pinned_gb - self.resident_gb
        ns.free_memory_gb = mem if mem > 0.0 else 0.0  # noqa: FURB136
        if busy < slots and not queued:
            ns.backlog_s = 0.0
            return False
        self.refresh_backlog(now_s)
        return True

    def refresh_backlog(self, now_s: float) -> None:
        """backlog_s of a full node: queued plus remaining running work, per slot."""
        self.ns.backlog_s = backlog_s(self.finish_sum_s, len(self.running), now_s, self.queued_work_s,
                                      self.node.slots)

    # -- presence -----------------------------------------------------------------------
    def arrive(self, now_s: float) -> None:
        if not self.present:
            self.present = True
            self.present_since_s = now_s
        self.ns.status = NodeStatus.ACTIVE

    def depart(self, now_s: float) -> None:
        if self.present:
            self.present_spans.append((self.present_since_s, now_s))
            self.present = False
        self.ns.status = NodeStatus.DEPARTED
        self.wipe()
        self.publish(now_s)

    def present_total_s(self, end_s: float) -> float:
        """Seconds in the fleet between 0 and `end_s` (the end of the run)."""
        spans = self.present_spans + ([(self.present_since_s, end_s)] if self.present else [])
        return sum(max(min(b, end_s) - min(a, end_s), 0.0) for a, b in spans)
