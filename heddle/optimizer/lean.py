"""The one-task path in plain Python (every one-task call of "optimal" and "fast").

The twin asks for one task per arrival tens of thousands of times a second; at that size
numpy's per-call overhead dominates, so this path walks the targets in Python with the
per-fleet lists cached in `FleetArrays`, cheapest nodes first, and stops on lower bounds. It evaluates exactly the constraints, costs and
integer rounding of scoring.py + assign.py (a property test holds the two paths equal) and
returns None for inputs it does not handle (an unknown model), so the caller falls back.
"""

# ruff: noqa: FURB136, PLR1730, PLR1716
# (inline `x if x > 0 else 0` and `if a < b: b = a` on purpose: builtin min/max calls cost
#  more than the comparison in this per-node loop)
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

from heddle.models import (
    FleetState,
    NodeStatus,
    OfferKind,
    PowerSource,
    Privacy,
    Task,
    TaskId,
    TaskKind,
    ThermalState,
)
from heddle.optimizer.costs import (
    MICRO,
    budget_micro,
    deferral_usd,
    mb_down,
    mb_up,
    micro,
    pair_micro,
    spend_micro,
    time_usd,
    wait_usd_per_s,
)
from heddle.optimizer.fleet_cache import CONTEXT_BUCKET_TOKENS, TIER_CODE, FleetArrays
from heddle.optimizer.placement import Decision, DecisionStatus, Placement, TargetKind
from heddle.optimizer.policy import Policy
from heddle.optimizer.reasons import FIRST_TRANSIENT, Reason, unplaced_reason
from heddle.optimizer.view import _DEPARTED

__all__ = ["place_one"]

_HOT = (ThermalState.SERIOUS, ThermalState.CRITICAL)
_INF = math.inf
_LB_SAFETY = 1.0 - 1e-9
"""Lower bounds are shrunk by this factor so float rounding can never prune a real candidate."""


class OfferRow(NamedTuple):
    """One cloud offer's per-call figures, as plain Python numbers."""

    j: int  # target index (after the nodes)
    name: str
    is_api: bool
    tier: int  # TIER_CODE the offer serves (APIs; instances: the model decides)
    installed_gb: float
    price_in_usd_per_token: float
    price_out_usd_per_token: float
    price_usd_per_s: float
    startup_s: float
    latency_s: float
    capacity: int  # tasks one call may send (instances: per GPU)
    long_context_tokens: float
    long_in_usd_per_token: float
    long_out_usd_per_token: float


class _Best(NamedTuple):
    """The cheapest option found so far."""

    cost: int  # micro-USD, eviction included
    target: int
    service_s: float
    wait_s: float
    cloud_usd: float
    energy_usd: float
    lateness_usd: float
    evicts: bool


@dataclass(slots=True, eq=False)
class _Lean:
    installed: list
    energy: list
    proc: list
    slots: list
    offers: list[OfferRow]


def _lean(fa: FleetArrays) -> _Lean:
    lean = fa._models.get("__lean__")
    if lean is None:
        n = fa.n_nodes
        offers = []
        for k, offer in enumerate(fa.fleet.cloud_offers):
            j = n + k
            offers.append(OfferRow(
                j, fa.target_names[j], offer.kind is OfferKind.API, int(fa.tier_code[j]), float(fa.installed_gb[j]),
                float(fa.price_in_usd_per_token[j]), float(fa.price_out_usd_per_token[j]),
                float(fa.price_usd_per_s[j]), float(fa.startup_s[j]), float(fa.latency_s[j]),
                int(fa.offer_capacity[k]), float(fa.long_context_tokens[j]), float(fa.long_in_usd_per_token[j]),
                float(fa.long_out_usd_per_token[j])))
        lean = _Lean(fa.installed_gb[:n].tolist(), fa.energy_usd_per_s[:n].tolist(),
                     fa.proc_s_per_cpu_s.tolist(), fa.slots.tolist(), offers)
        fa._models["__lean__"] = lean
    return lean


def _plan(fa: FleetArrays, lean: _Lean, ma, task: Task, wait_usd_per_s: float) -> tuple[list, list, list, list, list]:
    """Node visiting order (cheapest energy plus waiting per token first, waiting priced at
    `wait_usd_per_s`) and suffix minima along it. The order only decides how soon the scan
    can stop; the bounds hold in any order.

    From position k on, every node has service >= a*suf_a[k] + b*suf_b[k] and energy cost
    >= a*suf_ea[k] + b*suf_eb[k] (a, b = prompt and output tokens, or CPU seconds and 0):
    throttling only slows and loading only adds, so these are the scan's lower bounds.
    """
    if ma is None:
        key = ("__plan__", None, wait_usd_per_s)
    else:
        bp = -(-max(task.prompt_tokens, 0) // CONTEXT_BUCKET_TOKENS)
        bd = -(-max(task.prompt_tokens + task.output_tokens // 2, 0) // CONTEXT_BUCKET_TOKENS)
        key = ("__plan__", task.model, task.quant, bp, bd, wait_usd_per_s)
    plan = fa._models.get(key)
    if plan is None:
        n = fa.n_nodes
        if ma is None:
            per_a, per_b = lean.proc[:n], [0.0] * n
        else:
            pre = ma.rate_lists(fa, task.prompt_tokens)[0]
            dec = ma.rate_lists(fa, task.prompt_tokens + task.output_tokens // 2)[1]
            per_a, per_b = [1.0 / pre[i] for i in range(n)], [1.0 / dec[i] for i in range(n)]
        energy = lean.energy
        order = sorted(range(n), key=lambda i: ((energy[i] + wait_usd_per_s) * (per_a[i] + per_b[i] * 4), i))
        plan = tuple([0.0] * n for _ in range(4))
        run = [_INF] * 4
        for k in range(n - 1, -1, -1):
            i = order[k]
            for m, v in enumerate((per_a[i], per_b[i], energy[i] * per_a[i], energy[i] * per_b[i])):
                run[m] = v if v < run[m] else run[m]
                plan[m][k] = run[m]
        plan = fa._models[key] = (order, *plan)
    return plan


def place_one(fa: FleetArrays, state: FleetState, task: Task, policy: Policy,
              early_stop: bool = True) -> Placement | None:
    lean = _lean(fa)
    now = state.time_s
    llm = task.kind is TaskKind.LLM
    p, o = float(task.prompt_tokens), float(task.output_tokens)
    key = (task.model, task.quant)
    if llm:
        ma = fa.model(task.model, task.quant)
        if not ma.known:
            return None
        pre = ma.rate_lists(fa, task.prompt_tokens)[0]
        dec = ma.rate_lists(fa, task.prompt_tokens + task.output_tokens // 2)[1]
        load = ma.load_list()
        w = ma.weights_gb
        kv = ma.kv_gb_per_token * (p + o)
    else:
        pre = dec = load = None
        w, kv = 0.0, float(task.memory_gb)
    cpu = float(task.cpu_seconds)
    kv_mb, w_mb = mb_up(kv), mb_up(w)
    deadline = _INF if task.deadline_s is None else task.deadline_s
    prio = 1.0 + max(task.priority, 0)
    wait_rate = wait_usd_per_s(policy.wait_usd_per_task_hour, task.priority)
    rate, miss, ev_usd = policy.lateness_usd_per_s, policy.deadline_miss_usd, policy.eviction_usd
    cw, ew = policy.cloud_weight, policy.energy_weight
    ev_int = micro(ev_usd)
    personal = fa.personal_mask(task.owner) if task.privacy is Privacy.PERSONAL else None
    tier = -1 if task.tier is None else TIER_CODE[task.tier]
    model_tier = ma.tier_code if llm else 0  # nodes and instances serve tier T iff model_tier >= T
    too_long = llm and p + o > ma.context_tokens  # where the model itself runs (nodes, instances)
    chat = llm and not ma.embedding  # what an API offer can serve
    lacks = fa.lacking_list(task.needs) if task.needs else None  # targets without a needed feature
    missing = ma.missing_list if llm else None  # nodes whose servers lack the model
    static_need = kv + w
    counts: dict[int, int] = {}
    any_local = any_ok = False
    outlook = min_wait = _INF
    best: _Best | None = None

    # --- local nodes, fastest first; stop once no unseen node can matter ------------------
    nodes, node_ids = state.nodes, fa.node_ids
    order, suf_a, suf_b, suf_ea, suf_eb = _plan(fa, lean, ma if llm else None, task,
                                                wait_usd_per_s(policy.wait_usd_per_task_hour, 0))
    x_a, x_b = (p, o) if llm else (cpu, 0.0)
    cloud_matters = bool(lean.offers) and task.privacy is Privacy.PUBLIC
    stopped = False
    # a lower bound on any deferral: the outlook node finishes no sooner than the fastest node could
    soonest = (x_a * suf_a[0] + x_b * suf_b[0]) * _LB_SAFETY if order else 0.0
    min_defer = micro(deferral_usd(now + soonest, now, _INF, wait_rate, prio, policy.defer_usd, rate, miss))
    thr = policy.burst_backlog_threshold_s
    for k, i in enumerate(order):
        if early_stop and best is not None and best.cost < min_defer:
            # placing beats any deferral; stop when no unseen node can be as cheap and the
            # burst rule cannot change (cloud irrelevant, or already ruled out / settled)
            lb_f = now + (x_a * suf_a[k] + x_b * suf_b[k]) * _LB_SAFETY
            lb_cost = pair_micro(0.0, (x_a * suf_ea[k] + x_b * suf_eb[k]) * _LB_SAFETY,
                                 time_usd(lb_f, now, deadline, wait_rate, prio, rate, miss), cw, ew)
            if lb_cost > best.cost and (not cloud_matters or (outlook <= deadline and min_wait <= thr)
                                      or (lb_f >= outlook and outlook > deadline)):
                stopped = True
                break
        ns = nodes.get(node_ids[i], _DEPARTED)
        status = ns.status
        code = 0
        if status is NodeStatus.DRAINING:
            code = Reason.DRAINING
        elif personal is not None and not personal[i]:
            code = Reason.PRIVACY
        elif tier > model_tier:
            code = Reason.TIER
        elif missing is not None and missing[i]:
            code = Reason.MODEL
        elif lacks is not None and lacks[i]:
            code = Reason.FEATURE
        elif too_long:
            code = Reason.CONTEXT
        elif static_need > lean.installed[i]:
            code = Reason.MEMORY_INSTALLED
        elif status is not NodeStatus.ACTIVE:  # after the permanent checks: departure is transient
            code = Reason.DEPARTED
        if code:
            counts[code] = counts.get(code, 0) + 1
            continue
        resident = llm and bool(ns.resident_models) and key in ns.resident_models
        speed = min(ns.speed_factor, 1.0) if ns.speed_factor > 0 else 1.0
        if llm:
            service = ((0.0 if resident else load[i]) + p / pre[i] + o / dec[i]) / speed
        else:
            service = cpu * lean.proc[i] / speed
        wait = ns.backlog_s
        finish = now + wait + service
        any_local = True
        if finish < outlook:
            outlook = finish
        if wait < min_wait:
            min_wait = wait
        need = kv + (0.0 if resident else w)
        free = ns.free_memory_gb
        evictable = 0.0
        if need > free and ns.resident_models and ns.free_slots >= lean.slots[i]:
            evictable = max(sum(fa.weights_gb(*mq) for mq in ns.resident_models if mq != key), 0.0)
        if ns.thermal in _HOT:
            code = Reason.THERMAL
        elif ns.power_source is PowerSource.BATTERY and (
                service > policy.battery_heavy_seconds or need > policy.battery_heavy_memory_gb):
            code = Reason.BATTERY
        elif ns.free_slots <= 0:
            code = Reason.SLOTS
        elif need > free + evictable:
            code = Reason.MEMORY_FREE
        if code:
            counts[code] = counts.get(code, 0) + 1
            continue
        any_ok = True
        add_mb = kv_mb + (0 if resident else w_mb)
        free_mb = mb_down(free)
        needs_evict = add_mb > free_mb
        if needs_evict and add_mb > free_mb + mb_down(evictable):
            continue
        energy = service * lean.energy[i]
        lateness = time_usd(finish, now, deadline, wait_rate, prio, rate, miss)
        cost = pair_micro(0.0, energy, lateness, cw, ew) + (ev_int if needs_evict else 0)
        if best is None or cost < best.cost or (cost == best.cost and i < best.target):
            best = _Best(cost, i, service, wait, 0.0, energy, lateness, needs_evict)

    # --- cloud offers (burst rule, budget) --------------------------------------------------
    eligible = task.privacy is Privacy.PUBLIC and (not any_local or outlook > deadline or min_wait > thr)
    if lean.offers and not eligible and best is not None and best.cost < min_defer:
        pass  # the cloud is ruled out and a node wins: the offers cannot change the decision
    elif lean.offers and task.privacy is not Privacy.PUBLIC:
        counts[Reason.PRIVACY] = counts.get(Reason.PRIVACY, 0) + len(lean.offers)
    elif lean.offers:
        if task.account is None:
            remaining = _INF if policy.allow_unbudgeted_cloud else -1.0
        else:
            budget = fa.fleet.budgets.get(task.account)
            if budget is None:
                remaining = _INF if policy.allow_unbudgeted_cloud else -1.0
            else:
                remaining = budget.limit_usd - state.cloud_spend_usd.get(task.account, 0.0)
        remaining_int = budget_micro(max(remaining, 0.0)) if remaining < _INF else None
        ready = state.instance_ready_at_s
        for offer in lean.offers:
            j, is_api = offer.j, offer.is_api
            if task.privacy is not Privacy.PUBLIC:
                code = Reason.PRIVACY
            elif tier >= 0 and (offer.tier != tier if is_api else model_tier < tier):
                code = Reason.TIER
            elif is_api and not chat:
                code = Reason.KIND
            elif lacks is not None and lacks[j]:
                code = Reason.FEATURE
            elif too_long and not is_api:
                code = Reason.CONTEXT
            elif static_need > offer.installed_gb:
                code = Reason.MEMORY_INSTALLED
            elif remaining < 0:
                code = Reason.NO_BUDGET
            else:
                code = 0
            if code:
                counts[code] = counts.get(code, 0) + 1
                continue
            if llm:
                service = (0.0 + p / pre[j] + o / dec[j]) / 1.0 + offer.latency_s
            else:
                service = cpu * lean.proc[j] / 1.0 + offer.latency_s
            capacity = offer.capacity
            if is_api:
                wait = unpaid = 0.0
                if p > offer.long_context_tokens:  # like models.cost.api_cost_usd
                    cloud = p * offer.long_in_usd_per_token + o * offer.long_out_usd_per_token
                else:
                    cloud = p * offer.price_in_usd_per_token + o * offer.price_out_usd_per_token
            else:
                oid = fa.offer_ids[j - fa.n_nodes]
                if oid in ready:
                    wait, unpaid = max(ready[oid] - now, 0.0), 0.0
                else:
                    wait = unpaid = offer.startup_s
                capacity *= policy.instance_slots_per_gpu
                cloud = (service + unpaid) * offer.price_usd_per_s
            if capacity <= 0:
                code = Reason.SLOTS
            elif cloud > remaining:
                code = Reason.BUDGET_LIMIT
            elif not eligible:
                code = Reason.BURST_RULE
            if code:
                counts[code] = counts.get(code, 0) + 1
                continue
            any_ok = True
            spend_int = spend_micro(cloud)
            if remaining_int is not None and spend_int > remaining_int:
                continue
            finish = now + wait + service
            lateness = time_usd(finish, now, deadline, wait_rate, prio, rate, miss)
            cost = pair_micro(cloud, 0.0, lateness, cw, ew)
            if best is None or cost < best.cost:
                best = _Best(cost, j, service, wait, cloud, 0.0, lateness, False)

    # --- defer or place ----------------------------------------------------------------------
    if any_local:
        defer = deferral_usd(outlook, now, deadline, wait_rate, prio, policy.defer_usd, rate, miss)
    else:
        # never run locally: waiting costs the stranded price plus the lateness already incurred
        defer = deferral_usd(now, now, deadline, wait_rate, prio, policy.stranded_defer_usd, rate, miss)
    defer_int = micro(defer)
    tid = TaskId(task.id)
    if best is not None and best.cost < defer_int:
        cost, j, service, wait, cloud, energy, lateness, evicts = best
        node = j < fa.n_nodes
        decision = Decision(
            tid, DecisionStatus.PLACED, fa.target_names[j], TargetKind.NODE if node else TargetKind.CLOUD,
            reason="lowest cost (fast_path)" if node else "cloud burst (fast_path)",
            est_start_s=now + wait, est_seconds=service,
            cost_usd={"cloud": cloud, "energy": energy, "time": lateness, "eviction": ev_usd if evicts else 0.0},
        )
        objective = cost
    else:
        if stopped:  # the reason counts every target: walk them all
            return place_one(fa, state, task, policy, early_stop=False)
        permanent = not any_local and not any_ok and all(c < FIRST_TRANSIENT for c in counts)
        decision = Decision(
            tid, DecisionStatus.REJECTED if permanent else DecisionStatus.DEFERRED,
            reason=unplaced_reason(counts, any_ok, permanent, task.privacy.value, task.model, fa.offer_ids,
                                   fa.lacking_text(task.needs, task.model) if Reason.FEATURE in counts else "",
                                   fa.missing_text(task.model, task.quant) if Reason.MODEL in counts else ""),
            cost_usd={"defer": defer},
        )
        objective = defer_int
    # an unplaced task had no option cheaper than deferring: its cost is fixed (no gap)
    fixed = 0.0 if decision.status is DecisionStatus.PLACED else objective / MICRO
    return Placement([decision], status="OPTIMAL", objective=objective / MICRO,
                     best_bound=objective / MICRO, solver="fast_path", fixed_usd=fixed)
