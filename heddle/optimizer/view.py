"""The dynamic half of the input: per-target arrays read from a FleetState at call time.

Nodes first, then offers, in the same order as `FleetArrays`. Offers have unlimited free
memory and are never draining, hot or on battery; instances wait for their start-up (or for
the time a running instance is ready), API offers do not wait.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from heddle.models import FleetState, NodeState, NodeStatus, PowerSource, ThermalState
from heddle.optimizer.fleet_cache import FleetArrays

__all__ = ["StateView", "backlog_s", "gather", "node_states"]

_HOT = (ThermalState.SERIOUS, ThermalState.CRITICAL)


def backlog_s(finish_sum_s: float, n_running: int, now_s: float, queued_work_s: float, slots: int) -> float:
    """A full node's `NodeState.backlog_s`: the predicted work still ahead of it per slot (what
    is left of its running tasks, `finish_sum_s` being the sum of their predicted finishes,
    plus its local queue), never negative. Both bodies publish it: the twin from its own
    runs, the live control plane from its assignments' predicted finishes."""
    left = (finish_sum_s - n_running * now_s + queued_work_s) / slots
    return left if left > 0.0 else 0.0  # noqa: FURB136 (max() is a call; runs per decision)


@dataclass(slots=True, eq=False)
class StateView:
    time_s: float
    free_mem_gb: np.ndarray  # [J]
    free_slots: np.ndarray  # [J] int (offers: per-call capacity)
    wait_s: np.ndarray  # [J] backlog (nodes) / start-up or ready time (instances) / 0 (API)
    departed: np.ndarray  # [J] bool
    draining: np.ndarray  # [J] bool
    hot: np.ndarray  # [J] bool, thermal serious or critical
    battery: np.ndarray  # [J] bool
    speed: np.ndarray  # [J] throttling factor in (0, 1] (1 = full speed; above 1 is clamped)
    evictable_gb: np.ndarray  # [J] weights of resident models an idle node could drop
    unpaid_startup_s: np.ndarray  # [J] start-up seconds billed (instances not yet running)
    resident: tuple  # [N] frozensets of (model, quant)
    remaining_usd: dict  # account -> budget left this period

    def resident_mask(self, model: object, quant: object) -> np.ndarray:
        """[J] targets where (model, quant) is loaded now."""
        key = (model, quant)
        mask = np.zeros(self.free_mem_gb.shape[0], dtype=bool)
        for i, res in enumerate(self.resident):
            if res and key in res:
                mask[i] = True
        return mask


_DEPARTED = NodeState(node_id="", free_memory_gb=0.0, free_slots=0, status=NodeStatus.DEPARTED)


def node_states(fa: FleetArrays, state: FleetState) -> list[NodeState]:
    """NodeStates in fleet order; a node missing from the state counts as departed."""
    nodes = state.nodes
    try:
        return [nodes[i] for i in fa.node_ids]
    except KeyError:
        return [nodes.get(i, _DEPARTED) for i in fa.node_ids]


def gather(fa: FleetArrays, state: FleetState, instance_slots_per_gpu: int) -> StateView:
    sts = node_states(fa, state)
    m = fa.n_targets - fa.n_nodes
    now = state.time_s
    offer_false = [False] * m
    ready = state.instance_ready_at_s
    waits, unpaid = [], []
    for k, oid in enumerate(fa.offer_ids):
        if not fa.is_instance[fa.n_nodes + k]:
            waits.append(0.0)
            unpaid.append(0.0)
        elif oid in ready:
            waits.append(max(ready[oid] - now, 0.0))
            unpaid.append(0.0)
        else:
            startup = float(fa.startup_s[fa.n_nodes + k])
            waits.append(startup)
            unpaid.append(startup)
    capacity = [
        int(c) * instance_slots_per_gpu if fa.is_instance[fa.n_nodes + k] else int(c)
        for k, c in enumerate(fa.offer_capacity)
    ]
    evictable = []
    for s, nd in zip(sts, fa.fleet.nodes):
        if s.resident_models and s.free_slots >= nd.slots:  # idle: nothing running uses them
            evictable.append(sum(fa.weights_gb(mq[0], mq[1]) for mq in s.resident_models))
        else:
            evictable.append(0.0)
    spend = state.cloud_spend_usd
    remaining = {a: b.limit_usd - spend.get(a, 0.0) for a, b in fa.fleet.budgets.items()}
    return StateView(
        time_s=now,
        free_mem_gb=np.array([s.free_memory_gb for s in sts] + [np.inf] * m),
        free_slots=np.array([s.free_slots for s in sts] + capacity, dtype=np.int64),
        wait_s=np.array([s.backlog_s for s in sts] + waits),
        departed=np.array([s.status is NodeStatus.DEPARTED for s in sts] + offer_false),
        draining=np.array([s.status is NodeStatus.DRAINING for s in sts] + offer_false),
        hot=np.array([s.thermal in _HOT for s in sts] + offer_false),
        battery=np.array([s.power_source is PowerSource.BATTERY for s in sts] + offer_false),
        speed=np.array([min(s.speed_factor, 1.0) if s.speed_factor > 0 else 1.0 for s in sts] + [1.0] * m),
        evictable_gb=np.array(evictable + [0.0] * m),
        unpaid_startup_s=np.array([0.0] * fa.n_nodes + unpaid),
        resident=tuple(s.resident_models for s in sts),
        remaining_usd=remaining,
    )
