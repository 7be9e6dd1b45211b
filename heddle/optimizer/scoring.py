"""Score every (task, target) pair at once: hard-constraint codes, cost parts, burst rule.

This is the model's data section. Every policy works from the same `Scored` table, so the
hard constraints (privacy, features, memory, slots, drain, courtesy, budget, tier) are decided in one
place and no policy can skip them. Per pair the cost is

    cloud_weight * cloud_usd + energy_weight * energy_usd + time_usd (+ eviction, per node)

(time_usd: the price of waiting until the predicted finish, plus lateness past a deadline)

and each task also gets the cost of deferring it (see docs/optimizer.md); the formulas and
their integer rounding are costs.py's, shared with the one-task and express paths.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from heddle.models import Privacy, Task, TaskKind
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
from heddle.optimizer.fleet_cache import TIER_CODE, FleetArrays
from heddle.optimizer.policy import Policy
from heddle.optimizer.reasons import FIRST_TRANSIENT, Reason
from heddle.optimizer.view import StateView

__all__ = ["INFEASIBLE", "MICRO", "Scored", "score"]

INFEASIBLE = 1 << 40
"""Integer cost standing for a ruled-out pair (never chosen: any defer cost is smaller)."""

_PRIVACY_CODE = {Privacy.PUBLIC: 0, Privacy.SENSITIVE: 1, Privacy.PERSONAL: 2}


@dataclass(slots=True, eq=False)
class Scored:
    """Everything the policies need about a batch, as [T] and [T, J] arrays."""

    tasks: list
    codes: np.ndarray  # [T,J] int8 Reason (0 = feasible now)
    ok: np.ndarray  # [T,J] bool
    base: np.ndarray  # [T,J] int64 micro-USD cost of the pair without eviction (costs.pair_micro; INFEASIBLE where ruled out)
    total_usd: np.ndarray  # [T,J] that cost in USD + eviction_usd (what the explanations quote)
    cloud_usd: np.ndarray  # [T,J] spend charged to the budget account (unweighted)
    energy_usd: np.ndarray  # [T,J]
    lateness_usd: np.ndarray  # [T,J] the price of time: waiting until the finish, plus lateness
    eviction_usd: np.ndarray  # [T,J] (only if this task alone forces an eviction)
    service_s: np.ndarray  # [T,J]
    wait_s: np.ndarray  # [J]
    kv_gb: np.ndarray  # [T] memory that grows with the task (KV cache / working set)
    weights_gb: np.ndarray  # [T] weights of the task's model (0 for processor steps)
    resident: np.ndarray  # [T,J] bool, model already loaded on the target
    group: np.ndarray  # [T] index of the task's (model, quant) group
    n_groups: int
    defer_usd: np.ndarray  # [T]
    eligible: np.ndarray  # [T] bool, burst rule allows the cloud
    permanent: np.ndarray  # [T] bool, every target is ruled out for good
    account: np.ndarray  # [T] int index into `accounts` (-1 = none)
    accounts: list
    remaining_usd: np.ndarray  # [A]
    outlook_finish_s: np.ndarray  # [T] best local finish ignoring free slots (inf = none)
    evictable_gb: np.ndarray  # [J] memory an eviction may free (models this batch does not use)
    view: StateView
    fa: FleetArrays

    def base_int(self) -> np.ndarray:
        """[T,J] objective without the eviction part, in micro-dollars (huge where infeasible).

        Eviction is charged once per node in a batch (see `eviction_int`), not per pair.
        """
        return self.base

    def eviction_int(self, policy: Policy) -> int:
        return micro(policy.eviction_usd)

    def memory_mb(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Integer memory data (MB): kv [T] and weights [T] rounded up, free and evictable [J] down."""
        free = np.where(np.isfinite(self.view.free_mem_gb), self.view.free_mem_gb, 1e9)
        return mb_up(self.kv_gb), mb_up(self.weights_gb), mb_down(free), mb_down(self.evictable_gb)

    def spend_int(self) -> np.ndarray:
        """[T,J] spend in micro-dollars rounded UP, so integer budget checks never overspend."""
        return spend_micro(np.where(self.ok, self.cloud_usd, 0.0))

    def remaining_int(self) -> np.ndarray:
        """[A] budget left in micro-dollars rounded DOWN."""
        return budget_micro(np.maximum(self.remaining_usd, 0.0))

    def defer_int(self) -> np.ndarray:
        return micro(self.defer_usd)


def score(fa: FleetArrays, view: StateView, tasks: list[Task], policy: Policy) -> Scored:
    """Score `tasks` against every target (infinities in ruled-out pairs are expected)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return _score(fa, view, tasks, policy)


def _score(fa: FleetArrays, view: StateView, tasks: list[Task], policy: Policy) -> Scored:
    t_n, j_n = len(tasks), fa.n_targets
    now = view.time_s

    # --- task columns ---------------------------------------------------------------------
    llm = np.array([t.kind is TaskKind.LLM for t in tasks], dtype=bool)
    # an LLM step an API may run with its own model: one naming a catalog API offer (that
    # offer alone), or a tier and no model (an API of that tier); naming neither, nothing may
    names_work = llm & np.array([bool(t.model) or t.tier is not None for t in tasks], dtype=bool)
    prompt = np.array([t.prompt_tokens for t in tasks], dtype=float)[:, None]
    output = np.array([t.output_tokens for t in tasks], dtype=float)[:, None]
    cpu_s = np.array([t.cpu_seconds for t in tasks], dtype=float)[:, None]
    priv = np.array([_PRIVACY_CODE[t.privacy] for t in tasks])
    deadline = np.array([np.inf if t.deadline_s is None else t.deadline_s for t in tasks])[:, None]
    prio_w = np.array([1.0 + max(t.priority, 0) for t in tasks])
    wait_rate = np.array([wait_usd_per_s(policy.wait_usd_per_task_hour, t.priority) for t in tasks])
    tier = np.array([-1 if t.tier is None else TIER_CODE[t.tier] for t in tasks])[:, None]
    accounts = sorted({t.account for t in tasks if t.account is not None})
    acc_index = {a: i for i, a in enumerate(accounts)}
    account = np.array([acc_index.get(t.account, -1) for t in tasks])
    remaining = np.array([view.remaining_usd.get(a, np.inf if policy.allow_unbudgeted_cloud else -1.0)
                          for a in accounts])
    task_remaining = np.where(account >= 0, remaining[account] if len(accounts) else 0.0,
                              np.inf if policy.allow_unbudgeted_cloud else -1.0)[:, None]

    # --- (model, quant) groups: per-target speeds stacked [G, J] ----------------------------
    keys: dict = {}
    group = np.array([keys.setdefault((t.model, t.quant) if t.kind is TaskKind.LLM else None, len(keys))
                      for t in tasks])
    g_n = len(keys)
    load = np.zeros((g_n, j_n))
    res_g = np.zeros((g_n, j_n), dtype=bool)
    weights_g = np.zeros(g_n)
    kvpt_g = np.zeros(g_n)
    known_g = np.ones(g_n, dtype=bool)
    tier_g = np.zeros(g_n, dtype=np.int64)  # the model's catalog tier (processor steps: local)
    context_g = np.full(g_n, np.inf)  # the model's context window (processor steps: none)
    chat_g = np.ones(g_n, dtype=bool)  # a chat API can serve it (LLM steps of non-embedding models)
    own_g = np.zeros((g_n, j_n), dtype=bool)  # APIs running an unknown name with their own model
    missing_g = np.zeros((g_n, j_n), dtype=bool)  # nodes whose servers lack the model (installed sets)
    arrays = [None] * g_n
    for key, g in keys.items():
        if key is None:
            continue
        ma = arrays[g] = fa.model(*key)
        known_g[g] = ma.known
        tier_g[g] = ma.tier_code
        context_g[g] = ma.context_tokens
        chat_g[g] = not ma.embedding
        if ma.own_model is not None:
            own_g[g] = ma.own_model
        if ma.missing is not None:
            missing_g[g] = ma.missing
        if ma.known:
            load[g] = ma.load_s
            weights_g[g], kvpt_g[g] = ma.weights_gb, ma.kv_gb_per_token
            res_g[g] = view.resident_mask(*key)
    # rates depend on the context length (the perf model's KV-cache reads): prefill at the
    # prompt, decode at the prompt plus half the output, like perf.llm_step
    prefill = np.ones((t_n, j_n))
    decode = np.ones((t_n, j_n))
    for i, t in enumerate(tasks):
        ma = arrays[group[i]]
        if ma is not None:
            prefill[i] = ma.rates(fa, t.prompt_tokens)[0]
            decode[i] = ma.rates(fa, t.prompt_tokens + t.output_tokens // 2)[1]
    resident = res_g[group]
    weights = weights_g[group]
    kv = np.where(llm, kvpt_g[group] * (prompt + output)[:, 0],
                  np.array([t.memory_gb for t in tasks], dtype=float))

    # --- service time, wait, finish --------------------------------------------------------
    llm_s = np.where(resident, 0.0, load[group]) + prompt / prefill + output / decode
    proc_s = cpu_s * fa.proc_s_per_cpu_s
    service = np.where(llm[:, None], llm_s, proc_s) / view.speed + fa.latency_s
    finish = now + view.wait_s + service
    lateness = time_usd(finish, now, deadline, wait_rate[:, None], prio_w[:, None],
                        policy.lateness_usd_per_s, policy.deadline_miss_usd)

    # --- money -------------------------------------------------------------------------------
    energy = service * fa.energy_usd_per_s
    energy[:, fa.n_nodes:] = 0.0
    long = prompt > fa.long_context_tokens  # API long-context prices, like models.cost.api_cost_usd
    price_in = np.where(long, fa.long_in_usd_per_token, fa.price_in_usd_per_token)
    price_out = np.where(long, fa.long_out_usd_per_token, fa.price_out_usd_per_token)
    cloud = np.where(fa.is_api, prompt * price_in + output * price_out,
                     (service + view.unpaid_startup_s) * fa.price_usd_per_s)
    cloud[:, :fa.n_nodes] = 0.0
    need = kv[:, None] + np.where(resident, 0.0, weights[:, None])
    evictable = _evictable(fa, view, keys)
    evicts = need > view.free_mem_gb
    eviction = evicts * policy.eviction_usd

    # --- hard constraints (first failing code wins: fill in reverse order; see reasons.py) -----
    is_cloud = ~fa.is_node
    owners = {}
    personal_rows = [owners.setdefault(t.owner, fa.personal_mask(t.owner)) if t.privacy is Privacy.PERSONAL
                     else fa.is_node for t in tasks]
    privacy_bad = ((priv == 1)[:, None] & is_cloud) | ((priv == 2)[:, None] & ~np.array(personal_rows))
    permanent_fails = [
        (Reason.DRAINING, np.broadcast_to(view.draining, (t_n, j_n))),
        (Reason.PRIVACY, privacy_bad),
        # an API serves exactly its tier; nodes and instances run open models: the model's tier >= T
        (Reason.TIER, (tier >= 0) & np.where(fa.is_api, fa.tier_code != tier, tier_g[group][:, None] < tier)),
        (Reason.KIND, ~(llm & chat_g[group])[:, None] & fa.is_api),
        # a task naming an API offer, or a tier and no model, is unknown to the machines; that
        # offer (any API of the tier) serves it, no other
        # ... and a node whose servers' known installed set lacks the model does not run it
        (Reason.MODEL, ((llm & ~known_g[group])[:, None] & ~(own_g[group] & names_work[:, None]))
         | (llm[:, None] & missing_g[group])),
        # a target runs a task only if it offers every feature the task needs (tool calls, ...)
        (Reason.FEATURE, np.stack([fa.lacking_mask(t.needs) for t in tasks]) if any(t.needs for t in tasks)
         else np.zeros((t_n, j_n), dtype=bool)),
        # the model's own context window binds where the model itself runs (an API serves its
        # tier with its own model)
        (Reason.CONTEXT, (prompt + output > context_g[group][:, None]) & ~fa.is_api),
        (Reason.MEMORY_INSTALLED, kv[:, None] + weights[:, None] > fa.installed_gb),
        (Reason.NO_BUDGET, is_cloud & (task_remaining < 0)),
    ]
    codes = np.zeros((t_n, j_n), dtype=np.int8)
    for reason, fail in reversed(permanent_fails):
        codes[fail] = reason
    # departure is transient but, like the permanent codes, keeps a node out of the local
    # outlook (burst rule, defer cost): only a node that is here now can finish anything
    codes[np.broadcast_to(view.departed, (t_n, j_n)) & (codes == 0)] = Reason.DEPARTED
    possible = codes == 0

    # --- burst rule: cloud only if local capacity cannot do it in time ------------------------
    local_possible = possible & fa.is_node
    node_finish = np.where(local_possible, now + view.wait_s + service, np.inf)[:, : fa.n_nodes]
    outlook = node_finish.min(axis=1) if fa.n_nodes else np.full(t_n, np.inf)
    min_wait = np.where(local_possible, view.wait_s, np.inf)[:, : fa.n_nodes]
    min_wait = min_wait.min(axis=1) if fa.n_nodes else np.full(t_n, np.inf)
    any_local = np.isfinite(outlook)
    eligible = (priv == 0) & (~any_local | (outlook > deadline[:, 0])
                              | (min_wait > policy.burst_backlog_threshold_s))

    heavy = (service > policy.battery_heavy_seconds) | (need > policy.battery_heavy_memory_gb)
    transient_fails = [
        (Reason.THERMAL, np.broadcast_to(view.hot, (t_n, j_n))),
        (Reason.BATTERY, view.battery & heavy),
        (Reason.SLOTS, np.broadcast_to(view.free_slots <= 0, (t_n, j_n))),
        (Reason.MEMORY_FREE, need > view.free_mem_gb + evictable),
        (Reason.BUDGET_LIMIT, is_cloud & (cloud > task_remaining)),
        (Reason.BURST_RULE, is_cloud & ~eligible[:, None]),
    ]
    for reason, fail in reversed(transient_fails):
        codes[fail & possible] = reason
    ok = codes == 0

    # --- deferring: wait for the best local node (or, cloud-only tasks, a high price) ----------
    defer = np.where(
        any_local,
        deferral_usd(np.where(any_local, outlook, now), now, deadline[:, 0], wait_rate, prio_w,
                     policy.defer_usd, policy.lateness_usd_per_s, policy.deadline_miss_usd),
        # no local node will ever run it: the cloud later finishes no sooner than the cloud now,
        # so waiting costs the stranded price on top of the lateness the task already has
        deferral_usd(now, now, deadline[:, 0], wait_rate, prio_w, policy.stranded_defer_usd,
                     policy.lateness_usd_per_s, policy.deadline_miss_usd),
    )
    zero = lambda a: np.where(ok, a, 0.0)  # ruled-out pairs may hold inf or nan
    base = np.where(ok, pair_micro(zero(cloud), zero(energy), zero(lateness), policy.cloud_weight,
                                   policy.energy_weight), INFEASIBLE)
    return Scored(
        tasks=tasks, codes=codes, ok=ok, base=base, total_usd=base / MICRO + eviction, cloud_usd=cloud, energy_usd=energy,
        lateness_usd=lateness, eviction_usd=eviction, service_s=service, wait_s=view.wait_s,
        kv_gb=kv, weights_gb=weights, resident=resident, group=group, n_groups=g_n,
        defer_usd=defer, eligible=eligible, permanent=(codes < FIRST_TRANSIENT).all(axis=1) & ~ok.any(axis=1),
        account=account, accounts=accounts, remaining_usd=remaining, outlook_finish_s=outlook,
        evictable_gb=evictable, view=view, fa=fa,
    )


def _evictable(fa: FleetArrays, view: StateView, keys: dict) -> np.ndarray:
    """[J] memory an eviction may free: resident weights of models this batch does not use."""
    evictable = view.evictable_gb
    if not evictable.any():
        return evictable
    evictable = evictable.copy()
    for i, res in enumerate(view.resident):
        if evictable[i] > 0:
            evictable[i] -= sum(fa.weights_gb(*key) for key in res if key in keys)
    return np.maximum(evictable, 0.0)
