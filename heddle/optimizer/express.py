"""The express one-task path: `place_one` reduced to its common outcome, a local node.

The twin asks about one task per arrival, a million times in a long replay. `lean.place_one`
walks every target and works out why a task cannot be placed as it goes; most arrivals,
though, are simply placed on a local node. `place_row` computes only that outcome:

- the task comes as a plain tuple in `Task` field order (`task_row`), so the caller need not
  build a `Task`;
- the nodes a task class could ever use (privacy, tier, features) are listed once per class, in
  `lean._plan`'s cheapest-first order with its lower bounds, and kept by an `ExpressPlacer`
  bound to one `FleetState` (with the node views in fleet order, so a node costs one list
  read; a fleet change brings a new fleet object, and the caller builds a new placer);
- a caller that sees many tasks of few classes (the twin) gets the class once
  (`ExpressPlacer.klass`) and then passes four numbers per task (`ExpressPlacer.place`);
- it returns `(node index, est_seconds)` exactly when `place_one` would place the task on
  that node, and None in every other case: a deferral or a rejection, a public task while
  the fleet has cloud offers (the burst rule and budgets are `place_one`'s business), an
  unknown model. The caller then asks `place()`, so every decision is `place()`'s decision.

It evaluates `place_one`'s expressions in the same order, so costs agree bit for bit; a
property test (tests/optimizer/test_express.py) holds the two equal on random states.
"""

# ruff: noqa: FURB136
# (inline comparisons instead of min/max calls on purpose: this loop runs per node per arrival)
from __future__ import annotations

import math
from collections import namedtuple
from dataclasses import MISSING, dataclass, fields
from typing import NamedTuple

from heddle.models import FleetState, NodeStatus, PowerSource, Privacy, Task, TaskKind, ThermalState
from heddle.optimizer.costs import (
    deferral_usd,
    mb_down,
    mb_up,
    micro,
    pair_micro,
    time_usd,
    wait_usd_per_s,
)
from heddle.optimizer.fleet_cache import CONTEXT_BUCKET_TOKENS, TIER_CODE, fleet_arrays
from heddle.optimizer.lean import _lean, _plan
from heddle.optimizer.policy import Policy
from heddle.optimizer.view import _DEPARTED

__all__ = ["EXPRESS_POLICIES", "ExpressClass", "ExpressEntry", "ExpressPlacer", "TaskRow", "place_row", "task_row"]

EXPRESS_POLICIES = ("optimal", "fast")
"""Policies whose one-task calls go through `place_one` (so `place_row` may stand in)."""

TaskRow = namedtuple("TaskRow", [f.name for f in fields(Task)],
                     defaults=[f.default if f.default is not MISSING else f.default_factory()
                               for f in fields(Task) if f.default is not MISSING or f.default_factory is not MISSING])
"""A task as a tuple in `Task` field order, with the fields' names and `Task`'s defaults (the
twin passes plain tuples in the same order, possibly without the trailing defaulted fields;
`klass` names them)."""

_ACTIVE, _BATTERY = NodeStatus.ACTIVE, PowerSource.BATTERY
_HOT = (ThermalState.SERIOUS, ThermalState.CRITICAL)
_PERSONAL, _PUBLIC, _LLM = Privacy.PERSONAL, Privacy.PUBLIC, TaskKind.LLM
_INF = math.inf
_LB_SAFETY = 1.0 - 1e-9
_MB_SLACK_GB = 0.004
"""Below `free - this`, place_one's whole-MB memory test passes: rounding the need up and the
free memory down to MB moves each by under 1 MB (the need has two parts), plus float slack."""


def task_row(task: Task) -> TaskRow:
    """`task` as the tuple `place_row` reads (Task's fields, in order)."""
    return TaskRow._make(getattr(task, name) for name in TaskRow._fields)


class ExpressEntry(NamedTuple):
    """A node a task class may use, with what `place` reads of it (plain Python numbers)."""

    node: int  # index in the fleet's nodes
    suf_a: float  # lean._plan's suffix lower bounds at the node's position in the plan
    suf_b: float
    suf_ea: float
    suf_eb: float
    rate_a: float  # prefill tokens/s (processor steps: seconds per reference CPU second)
    rate_b: float  # decode tokens/s (processor steps: unused)
    load_s: float  # loading the weights when not resident (processor steps: 0)
    energy_usd_per_s: float
    installed_gb: float  # memory a task may ever use
    slots: int  # configured concurrency


@dataclass(frozen=True, slots=True)
class ExpressClass:
    """What `place` needs of a task class: everything but the task's own four numbers.

    `entries`: the nodes privacy, tier, features and installed models allow, in plan order, as (the node's `NodeState` in
    the placer's state, its `ExpressEntry`). A class belongs to one placer."""

    entries: tuple
    llm: bool
    weights_gb: float  # 0 for processor steps
    kv_gb_per_token: float
    weights_mb: int
    model: tuple | None  # (model, quant) as in NodeState.resident_models
    context_tokens: float  # the model's context window (inf for processor steps)
    soonest_a: float  # lean._plan's lower bounds over every node (the outlook's soonest finish)
    soonest_b: float


def class_key(row: tuple) -> tuple:
    """Everything a class's candidate list depends on: model, quant, privacy, the owner of
    personal work, tier, the features it needs, and the plan's context buckets (not the token counts themselves).
    `row`: a tuple in `Task` field order (a `TaskRow` or a plain tuple)."""
    if type(row) is not TaskRow:
        row = TaskRow(*row)
    personal = row.privacy is _PERSONAL
    p_code = 0 if row.privacy is _PUBLIC else (2 if personal else 1)
    owner = row.owner if personal else None
    tier = -1 if row.tier is None else TIER_CODE[row.tier]
    if row.kind is not _LLM:
        return (None, None, p_code, owner, tier, row.needs)
    p, ctx = row.prompt_tokens, row.prompt_tokens + row.output_tokens // 2
    return (row.model, row.quant, p_code, owner, tier, row.needs, -(-(p if p > 0 else 0) // CONTEXT_BUCKET_TOKENS),
            -(-(ctx if ctx > 0 else 0) // CONTEXT_BUCKET_TOKENS))


class ExpressPlacer:
    """`place_one`'s node placements for one `FleetState` (mutated in place between calls)
    and one policy of EXPRESS_POLICIES with explanations off (the caller checks both)."""

    __slots__ = ("by_priority", "classes", "eviction_micro", "fa", "fleet", "n_views", "policy", "state", "views")

    def __init__(self, state: FleetState, policy: Policy):
        self.state = state
        self.policy = policy
        self.fleet = state.fleet
        self.fa = fleet_arrays(state.fleet)
        nodes = state.nodes
        self.views = [nodes.get(nid, _DEPARTED) for nid in self.fa.node_ids]
        self.n_views = len(nodes)
        self.classes: dict[tuple, ExpressClass | None] = {}
        self.by_priority: dict[int, tuple[float, float]] = {}  # priority -> (weight, waiting USD/s)
        self.eviction_micro = micro(policy.eviction_usd)

    def current(self) -> bool:
        """False once the state's fleet or node set changed (build a new placer then)."""
        return self.state.fleet is self.fleet and len(self.state.nodes) == self.n_views

    def klass(self, row: tuple) -> ExpressClass | None:
        """The class of the task `row` (a tuple in `Task` field order, as `task_row` gives
        it); None if `place` cannot answer for it: a public task while the fleet has cloud
        offers (the burst rule and budgets are place_one's business) or an unknown model."""
        if type(row) is not TaskRow:
            row = TaskRow(*row)
        key = class_key(row)
        try:
            return self.classes[key]
        except KeyError:
            found = self.classes[key] = self._build(row)
            return found

    def _build(self, row: TaskRow) -> ExpressClass | None:
        fa = self.fa
        if row.privacy is _PUBLIC and fa.offer_ids:
            return None
        llm = row.kind is _LLM
        ma = fa.model(row.model, row.quant) if llm else None
        if llm and not ma.known:
            return None
        lean = _lean(fa)
        order, suf_a, suf_b, suf_ea, suf_eb = _plan(fa, lean, ma, Task(*row),
                                                    wait_usd_per_s(self.policy.wait_usd_per_task_hour, 0))
        personal = fa.personal_mask(row.owner) if row.privacy is _PERSONAL else None
        lacks = fa.lacking_list(row.needs) if row.needs else None
        missing = ma.missing_list if llm else None  # nodes whose servers lack the model
        tier_code = -1 if row.tier is None else TIER_CODE[row.tier]
        if llm:
            pre = ma.rate_lists(fa, row.prompt_tokens)[0]
            dec = ma.rate_lists(fa, row.prompt_tokens + row.output_tokens // 2)[1]
            load = ma.load_list()
        entries = []
        for k, i in enumerate(order):
            if ((personal is not None and not personal[i]) or tier_code > (ma.tier_code if llm else 0)
                    or (lacks is not None and lacks[i]) or (missing is not None and missing[i])):
                continue
            rates = (pre[i], dec[i], load[i]) if llm else (lean.proc[i], 0.0, 0.0)
            entries.append((self.views[i], ExpressEntry(i, suf_a[k], suf_b[k], suf_ea[k], suf_eb[k], *rates,
                                                        lean.energy[i], lean.installed[i], lean.slots[i])))
        soonest = (suf_a[0], suf_b[0]) if order else (0.0, 0.0)
        if not llm:
            return ExpressClass(tuple(entries), False, 0.0, 0.0, 0, None, _INF, *soonest)
        return ExpressClass(tuple(entries), True, ma.weights_gb, ma.kv_gb_per_token, mb_up(ma.weights_gb),
                            (row.model, row.quant), ma.context_tokens, *soonest)

    def place_row(self, row: tuple) -> tuple[int, float] | None:
        """`place` for a task given as `task_row` gives it."""
        cls = self.klass(row)
        if cls is None:
            return None
        row = row if type(row) is TaskRow else TaskRow(*row)
        deadline = _INF if row.deadline_s is None else row.deadline_s
        if cls.llm:
            return self.place(cls, float(row.prompt_tokens), float(row.output_tokens), deadline, row.priority)
        return self.place(cls, float(row.cpu_seconds), float(row.memory_gb), deadline, row.priority)

    def place(self, cls: ExpressClass, a: float, b: float, deadline: float,
              priority: int) -> tuple[int, float] | None:
        """(node index, est_seconds) if `place_one` would place the task on that node, else
        None. `a`, `b`: prompt and output tokens (LLM steps) or CPU seconds and working
        memory GB (processor steps); `deadline`: absolute, `inf` for none.

        Why nothing else is needed: a task placed on a node also had that node in place_one's
        outlook, so place_one's deferral cost is at least `min_defer` (the deferral price plus
        waiting for the soonest finish any node could give); a best node cheaper than that is
        placed whatever the other nodes' finish times, and every node
        without a free slot can be skipped unseen. If the best node costs more, this returns
        None. A full node is skipped before the early-stop test (place_one tests first): the
        lower bounds are suffix minima, so they only grow along the list, and the test stops
        at the next node with a free slot if it would have stopped at the full one.
        """
        policy = self.policy
        llm = cls.llm
        if llm:
            if a + b > cls.context_tokens:  # no node can run it: place_one rejects it
                return None
            w = cls.weights_gb
            kv = cls.kv_gb_per_token * (a + b)
            x_a, x_b = a, b
        else:
            w, kv = 0.0, b
            x_a, x_b = a, 0.0
        key = cls.model
        now = self.state.time_s
        rate, miss = policy.lateness_usd_per_s, policy.deadline_miss_usd
        cw, ew = policy.cloud_weight, policy.energy_weight
        by_priority = self.by_priority.get(priority)
        if by_priority is None:
            prio = 1.0 + (priority if priority > 0 else 0)
            by_priority = self.by_priority[priority] = (prio, wait_usd_per_s(policy.wait_usd_per_task_hour, priority))
        prio, wait_rate = by_priority
        soonest = (x_a * cls.soonest_a + x_b * cls.soonest_b) * _LB_SAFETY
        min_defer = micro(deferral_usd(now + soonest, now, _INF, wait_rate, prio, policy.defer_usd, rate, miss))
        static_need = kv + w
        found = False
        best_cost = best_i = -1
        best_service = 0.0
        for ns, e in cls.entries:
            free_slots = ns.free_slots
            if free_slots <= 0:
                continue
            i, sa, sb, sea, seb, a_i, b_i, load_i, e_i, installed_i, slots_i = e
            if found and best_cost < min_defer:  # place_one's early stop, the same bound
                lb_f = now + (x_a * sa + x_b * sb) * _LB_SAFETY
                lateness = time_usd(lb_f, now, deadline, wait_rate, prio, rate, miss)
                if pair_micro(0.0, (x_a * sea + x_b * seb) * _LB_SAFETY, lateness, cw, ew) > best_cost:
                    break
            if ns.status is not _ACTIVE or static_need > installed_i or ns.thermal in _HOT:
                continue
            rm = ns.resident_models
            resident = key in rm  # key is None for processor steps: never resident
            sf = ns.speed_factor
            speed = (sf if sf < 1.0 else 1.0) if sf > 0 else 1.0
            if llm:
                service = ((0.0 if resident else load_i) + a / a_i + b / b_i) / speed
            else:
                service = x_a * a_i / speed
            need = kv + (0.0 if resident else w)
            if ns.power_source is _BATTERY and (
                    service > policy.battery_heavy_seconds or need > policy.battery_heavy_memory_gb):
                continue
            free = ns.free_memory_gb
            needs_evict = False
            if need > free - _MB_SLACK_GB:  # place_one's memory tests; further below none can fail
                evictable = 0.0
                if need > free:
                    if rm and free_slots >= slots_i:
                        evictable = max(sum(self.fa.weights_gb(*mq) for mq in rm if mq != key), 0.0)
                    if need > free + evictable:
                        continue
                add_mb = mb_up(kv) + (0 if resident else cls.weights_mb)
                free_mb = mb_down(free)
                needs_evict = add_mb > free_mb
                if needs_evict and add_mb > free_mb + mb_down(evictable):
                    continue
            finish = now + ns.backlog_s + service
            lateness = time_usd(finish, now, deadline, wait_rate, prio, rate, miss)
            cost = pair_micro(0.0, service * e_i, lateness, cw, ew)
            if needs_evict:
                cost += self.eviction_micro
            if not found or cost < best_cost or (cost == best_cost and i < best_i):
                found = True
                best_cost, best_i, best_service = cost, i, service
        if found and best_cost < min_defer:
            return best_i, best_service
        return None


def place_row(state: FleetState, row: tuple, policy: Policy) -> tuple[int, float] | None:
    """(node index in `fleet_arrays(state.fleet)`, est_seconds) if `place_one` would place the
    task on that node, else None.

    `row` is the task as `task_row` gives it; `policy` one of EXPRESS_POLICIES, explanations
    off. One call; a caller placing many tasks on one state keeps an `ExpressPlacer`."""
    return ExpressPlacer(state, policy).place_row(row)
