"""A self-contained record of one placement for `heddle place --json`.

It carries the solver status, objective and best bound, every task's demands, every
target's capacities and, per task, the cost of each feasible (task, target) pair and the
constraint that rules out every other pair, so an external solver can check the answer.
"""

from __future__ import annotations

import math

import numpy as np

from heddle.models import FleetState, Task
from heddle.optimizer.placement import Placement
from heddle.optimizer.policy import Policy
from heddle.optimizer.reasons import Reason, reason_text
from heddle.optimizer.scoring import Scored

__all__ = ["placement_report"]


def _num(x: float) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def placement_report(state: FleetState, tasks: list[Task], placement: Placement, sc: Scored,
                     policy: Policy) -> dict:
    fa, view = sc.fa, sc.view
    kv_mb, w_mb, free_mb, evictable_mb = sc.memory_mb()
    # each table once: rebuilding one per pair made the record quadratic (58 s at 2,000 x 50)
    base, spend, defer = sc.base_int(), sc.spend_int(), sc.defer_int()
    pay = sc.total_usd - sc.eviction_usd
    targets = []
    for j, name in enumerate(fa.target_names):
        node = j < fa.n_nodes
        targets.append({
            "target": name,
            "kind": "node" if node else ("api" if fa.is_api[j] else "instance"),
            "free_slots": int(view.free_slots[j]),
            "free_memory_mb": int(free_mb[j]) if node else None,
            "evictable_memory_mb": int(evictable_mb[j]) if node else None,
            "installed_memory_gb": _num(fa.installed_gb[j]),
            "wait_s": float(view.wait_s[j]),
        })
    by_task = placement.by_task()
    out_tasks = []
    for t, task in enumerate(tasks):
        d = by_task[task.id]
        pairs = []
        for j, name in enumerate(fa.target_names):
            code = int(sc.codes[t, j])
            if code:
                why = reason_text(code, task.privacy.value, task.model, fa.offer_ids,
                                  fa.lacking_text(task.needs, task.model) if task.needs else "",
                                  fa.missing_text(task.model, task.quant) if code == Reason.MODEL else "")
                pairs.append({"target": name, "feasible": False, "reason": why})
                continue
            pairs.append({
                "target": name, "feasible": True,
                "cost_usd": float(pay[t, j]),
                "cost_micro_usd": int(base[t, j]),
                "spend_micro_usd": int(spend[t, j]),
                "memory_mb": int(kv_mb[t] + (0 if sc.resident[t, j] else w_mb[t])),
                "service_s": float(sc.service_s[t, j]),
                "est_finish_s": float(view.time_s + view.wait_s[j] + sc.service_s[t, j]),
            })
        out_tasks.append({
            "id": task.id,
            "demands": {
                "kind": task.kind.value, "model": task.model, "quant": task.quant,
                "prompt_tokens": task.prompt_tokens, "output_tokens": task.output_tokens,
                "cpu_seconds": task.cpu_seconds, "kv_or_working_memory_mb": int(kv_mb[t]),
                "weights_mb": int(w_mb[t]), "model_group": int(sc.group[t]),
                "privacy": task.privacy.value, "owner": task.owner, "deadline_s": task.deadline_s,
                "priority": task.priority, "tier": task.tier.value if task.tier else None,
                "account": task.account, **({"needs": sorted(task.needs)} if task.needs else {}),
            },
            "defer_cost_micro_usd": int(defer[t]),
            "burst_allowed": bool(sc.eligible[t]),
            "decision": {
                "status": d.status.value, "target": d.target,
                "target_kind": d.target_kind.value if d.target_kind else None,
                "reason": d.reason, "est_start_s": d.est_start_s, "est_seconds": d.est_seconds,
                "cost_usd": dict(d.cost_usd),
                "rejected_alternatives": dict(d.rejected_alternatives),
            },
            "pairs": pairs,
        })
    remaining = sc.remaining_int()
    return {
        "status": placement.status,
        "objective_usd": placement.objective,
        "best_bound_usd": placement.best_bound,
        "solver": placement.solver,
        "policy": policy.name,
        "time_s": state.time_s,
        "fleet": state.fleet.name,
        "eviction_cost_micro_usd": sc.eviction_int(policy),
        "evicting_nodes": sorted({d.target for d in placement.decisions
                                  if d.target is not None and d.cost_usd.get("eviction", 0.0) > 0}),
        "objective_note": ("objective = sum of cost_micro_usd of placed pairs + defer_cost_micro_usd of "
                           "unplaced tasks + eviction_cost_micro_usd per node that must evict; "
                           "constraints: free_slots per target, memory_mb per node (a model group's "
                           "weights count once per node) <= free (+ evictable when evicting), "
                           "spend per account <= budget_remaining_micro_usd"),
        "budget_remaining_micro_usd": {a: int(remaining[i]) for i, a in enumerate(sc.accounts)},
        "targets": targets,
        "tasks": out_tasks,
        "wall_s": placement.wall_s,
        "gap": placement.gap,
        "fixed_usd": placement.fixed_usd,
        "n_placed": int(np.sum([d.status.value == "placed" for d in placement.decisions])),
    }
