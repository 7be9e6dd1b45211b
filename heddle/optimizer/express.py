"""The express one-task path: `place_one` reduced to its common outcome, a local node.

The twin asks about one task per arrival, a million times in a long replay. `lean.place_one`
walks every target and works out why a task cannot be placed as it goes; most arrivals,
though, are simply placed on a local node. `place_row` computes only that outcome:

- the task comes as a plain tuple in `Task` field order (`task_row`), so the caller need not
  build a `Task`;
- the nodes a task class could ever use (privacy, tier) are listed once per class, in
  `lean._plan`'s cheapest-first order with its lower bounds, and cached with the fleet's
  arrays (a fleet change brings new arrays, so nothing goes stale);
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
from dataclasses import fields

from heddle.models import FleetState, NodeStatus, PowerSource, Privacy, Task, TaskKind, ThermalState
from heddle.optimizer.fleet_cache import CONTEXT_BUCKET_TOKENS, TIER_CODE, FleetArrays
from heddle.optimizer.lean import _lean, _plan
from heddle.optimizer.policy import Policy
from heddle.optimizer.scoring import MICRO
from heddle.optimizer.view import _DEPARTED

__all__ = ["EXPRESS_POLICIES", "place_row", "task_row"]

EXPRESS_POLICIES = ("optimal", "fast")
"""Policies whose one-task calls go through `place_one` (so `place_row` may stand in)."""

_TASK_FIELDS = tuple(f.name for f in fields(Task))
_ACTIVE, _BATTERY = NodeStatus.ACTIVE, PowerSource.BATTERY
_HOT = (ThermalState.SERIOUS, ThermalState.CRITICAL)
_PERSONAL, _PUBLIC, _LLM = Privacy.PERSONAL, Privacy.PUBLIC, TaskKind.LLM
_INF = math.inf
_LB_SAFETY = 1.0 - 1e-9


def task_row(task: Task) -> tuple:
    """`task` as the tuple `place_row` reads (Task's fields, in order)."""
    return tuple(getattr(task, name) for name in _TASK_FIELDS)


def _candidates(fa: FleetArrays, row: tuple, llm: bool, key: tuple) -> list | None:
    """The candidate entries of the task's class, cached in `fa` under `key` (place_row's
    class key); None if place_one would not handle the task (an unknown model). Entries are
    the nodes privacy and tier allow, in plan order: (the plan's four suffix lower bounds at
    the node's position, node index, node id, prefill tokens/s (processor steps: seconds per
    CPU second), decode tokens/s, load seconds, energy USD/s, usable GB, slots)."""
    privacy, tier = row[9], row[13]
    owner = row[10] if privacy is _PERSONAL else None
    tier_code = -1 if tier is None else TIER_CODE[tier]
    ma = fa.model(row[3], row[4]) if llm else None
    if llm and not ma.known:
        return None
    lean = _lean(fa)
    task = Task(*row)
    order, suf_a, suf_b, suf_ea, suf_eb = _plan(fa, lean, ma, task)
    personal = fa.personal_mask(owner) if privacy is _PERSONAL else None
    model_tier = ma.tier_code if llm else 0
    if llm:
        pre = ma.rate_lists(fa, row[5])[0]
        dec = ma.rate_lists(fa, row[5] + row[6] // 2)[1]
        load = ma.load_list()
    entries = []
    for k, i in enumerate(order):
        if (personal is not None and not personal[i]) or tier_code > model_tier:
            continue
        bounds = (suf_a[k], suf_b[k], suf_ea[k], suf_eb[k])
        if llm:
            entries.append((*bounds, i, fa.node_ids[i], pre[i], dec[i], load[i], lean.energy[i],
                            lean.installed[i], lean.slots[i]))
        else:
            entries.append((*bounds, i, fa.node_ids[i], lean.proc[i], 0.0, 0.0, lean.energy[i],
                            lean.installed[i], lean.slots[i]))
    found = fa._models[key] = entries
    return found


def place_row(fa: FleetArrays, state: FleetState, row: tuple, policy: Policy) -> tuple[int, float] | None:
    """(node index, est_seconds) if `place_one` would place the task on that node, else None.

    `row` is the task as `task_row` gives it; `policy` one of EXPRESS_POLICIES, explanations
    off (the caller checks both once).

    Why nothing else is needed: a task placed on a node also had that node in place_one's
    outlook, so place_one's deferral cost is at least `defer_usd * priority`; a best node
    cheaper than that is placed whatever the other nodes' finish times, and every node
    without a free slot can be skipped unseen. If the best node costs more, this returns None.
    """
    privacy = row[9]
    if privacy is _PUBLIC and fa.offer_ids:
        return None  # the cloud may matter: place_one decides
    llm = row[1] is _LLM
    # the class key: everything the candidate list depends on (the plan's context buckets,
    # not the token counts themselves); an int for privacy (hashes faster than the enum)
    personal = privacy is _PERSONAL
    if llm:
        p_int, ctx = row[5], row[5] + row[6] // 2
        key = ("__express__", row[3], row[4], 0 if privacy is _PUBLIC else (2 if personal else 1),
               row[10] if personal else None, -1 if row[13] is None else TIER_CODE[row[13]],
               -(-(p_int if p_int > 0 else 0) // CONTEXT_BUCKET_TOKENS),
               -(-(ctx if ctx > 0 else 0) // CONTEXT_BUCKET_TOKENS))
    else:
        key = ("__express__", None, None, 0 if privacy is _PUBLIC else (2 if personal else 1),
               row[10] if personal else None, -1 if row[13] is None else TIER_CODE[row[13]])
    plan = fa._models.get(key)
    if plan is None:
        plan = _candidates(fa, row, llm, key)
        if plan is None:
            return None
    entries = plan
    now = state.time_s
    p, o = float(row[5]), float(row[6])
    if llm:
        ma = fa.model(row[3], row[4])
        w = ma.weights_gb
        kv = ma.kv_gb_per_token * (p + o)
        key = (row[3], row[4])
        x_a, x_b = p, o
    else:
        w, kv = 0.0, float(row[8])
        key = None
        x_a, x_b = float(row[7]), 0.0
    kv_mb = math.ceil(kv * 1000 - 1e-9)
    w_mb = math.ceil(w * 1000 - 1e-9)
    deadline = _INF if row[11] is None else row[11]
    timely = deadline == _INF  # no deadline: no lateness, which place_one computes as 0.0 too
    priority = row[12]
    prio = 1.0 + (priority if priority > 0 else 0)
    rate, miss, ev_usd = policy.lateness_usd_per_s, policy.deadline_miss_usd, policy.eviction_usd
    ew = policy.energy_weight
    cw0 = policy.cloud_weight * 0.0
    static_need = kv + w
    min_defer = round(policy.defer_usd * prio * MICRO)
    nodes = state.nodes
    best_cost = best_i = -1
    best_service = 0.0
    found = False
    for sa, sb, sea, seb, i, nid, a_i, b_i, load_i, e_i, installed_i, slots_i in entries:
        if found and best_cost < min_defer:  # place_one's early stop
            if timely:
                lb_cost = round(ew * (x_a * sea + x_b * seb) * _LB_SAFETY * MICRO)
            else:
                late = now + (x_a * sa + x_b * sb) * _LB_SAFETY - deadline
                late = late if late > 0.0 else 0.0
                lb_cost = round((ew * (x_a * sea + x_b * seb) * _LB_SAFETY
                                 + (late * rate + (miss if late > 0.0 else 0.0)) * prio) * MICRO)
            if lb_cost > best_cost:
                break
        ns = nodes.get(nid, _DEPARTED)
        free_slots = ns.free_slots
        if free_slots <= 0 or ns.status is not _ACTIVE or static_need > installed_i or ns.thermal in _HOT:
            continue
        rm = ns.resident_models
        resident = llm and bool(rm) and key in rm
        sf = ns.speed_factor
        speed = (sf if sf < 1.0 else 1.0) if sf > 0 else 1.0
        if llm:
            service = ((0.0 if resident else load_i) + p / a_i + o / b_i) / speed
        else:
            service = x_a * a_i / speed
        need = kv + (0.0 if resident else w)
        if ns.power_source is _BATTERY and (
                service > policy.battery_heavy_seconds or need > policy.battery_heavy_memory_gb):
            continue
        free = ns.free_memory_gb
        evictable = 0.0
        if need > free:
            if rm and free_slots >= slots_i:
                evictable = max(sum(fa.weights_gb(*mq) for mq in rm if mq != key), 0.0)
            if need > free + evictable:
                continue
        add_mb = kv_mb + (0 if resident else w_mb)
        free_mb = math.floor(free * 1000 + 1e-9)
        needs_evict = add_mb > free_mb
        if needs_evict and add_mb > free_mb + math.floor(evictable * 1000 + 1e-9):
            continue
        energy = service * e_i
        if timely:
            lateness = 0.0
        else:
            late = now + ns.backlog_s + service - deadline
            late = late if late > 0.0 else 0.0
            lateness = (late * rate + (miss if late > 0.0 else 0.0)) * prio
        evf = ev_usd if need > free else 0.0
        total = cw0 + ew * energy + lateness + evf
        cost = round((total - evf) * MICRO) + (round(ev_usd * MICRO) if needs_evict else 0)
        if not found or cost < best_cost or (cost == best_cost and i < best_i):
            found = True
            best_cost, best_i, best_service = cost, i, service
    if found and best_cost < min_defer:
        return best_i, best_service
    return None
