"""An independent checker of the hard constraints, recomputed from the raw inputs.

It does not use the optimizer's scoring code: memory comes from the catalog's ModelSpec,
service times from heddle.models.perf, prices from the offers, so a bug in the optimizer's
tables cannot hide itself here.
"""

from __future__ import annotations

from collections import defaultdict

from heddle.models import (
    FleetState,
    NodeStatus,
    OfferKind,
    PowerSource,
    Privacy,
    Task,
    TaskKind,
    ThermalState,
    Tier,
    catalog,
    cost,
    perf,
)
from heddle.optimizer import DecisionStatus, Placement, Policy, TargetKind

TOL = 1e-9


def node_service_s(node, ns, task: Task, resident: bool) -> float:
    if task.kind is TaskKind.PROCESSOR:
        return perf.processor_seconds(node.device, task.cpu_seconds) / ns.speed_factor
    spec = catalog.model(task.model)
    step = perf.llm_step(node.device, spec, task.quant, task.prompt_tokens, task.output_tokens, resident=resident)
    return step.seconds / ns.speed_factor


def cloud_cost_usd(state: FleetState, offer, task: Task) -> float:
    if offer.kind is OfferKind.API:
        return cost.api_cost_usd(offer, task.prompt_tokens, task.output_tokens)
    if task.kind is TaskKind.PROCESSOR:
        seconds = task.cpu_seconds
    else:
        spec = catalog.model(task.model)
        seconds = perf.llm_step(perf.offer_device(offer), spec, task.quant, task.prompt_tokens,
                                task.output_tokens).seconds
    seconds += offer.network_latency_s
    if offer.id not in state.instance_ready_at_s:
        seconds += offer.startup_s
    return offer.price_usd_per_hour * seconds / 3600


def modelless(task: Task) -> bool:
    """An LLM step naming a tier and no model, or a catalog API offer as its model: no
    machine can load it (nodes, instances); an API of its tier (the offer named) serves it
    with its own model."""
    return task.kind is TaskKind.LLM and (not task.model or task.model in catalog.offers())


TIER_ORDER = (Tier.LOCAL, Tier.STANDARD, Tier.FRONTIER)
"""The seed's tiers from lowest to highest."""


def tier_allowed(task: Task, offer=None) -> bool:
    """The tier rule, recomputed: an API serves exactly its own tier; a local node or an
    instance (open models) serves tier T iff the catalog tier of the task's model is >= T
    (processor steps count as local)."""
    if task.tier is None:
        return True
    if offer is not None and offer.kind is OfferKind.API:
        return offer.tier is task.tier
    if modelless(task):
        return False  # nothing for a node or an instance to run at any tier
    model_tier = catalog.model(task.model).tier if task.kind is TaskKind.LLM else Tier.LOCAL
    return TIER_ORDER.index(model_tier) >= TIER_ORDER.index(task.tier)


def fits_context(task: Task) -> bool:
    """Prompt + output within the model's context window (where the model itself runs: nodes
    and instances; processor steps have no context)."""
    if task.kind is not TaskKind.LLM or modelless(task):
        return True
    spec = catalog.model(task.model)  # an embedding model's window binds each input, not the sum
    return spec.kind == "embedding" or task.prompt_tokens + task.output_tokens <= spec.context_length


def api_can_serve(task: Task, offer) -> bool:
    """A chat API runs LLM steps of chat models: no processor steps, no embedding models; a
    step naming an API offer runs on that offer only."""
    if modelless(task):
        if task.model:
            return task.model == offer.id
        return task.tier is not None  # the tier names what to run; with neither, nothing does
    return task.kind is TaskKind.LLM and catalog.model(task.model).kind != "embedding"


def offers_needs(state: FleetState, task: Task, node=None, offer=None) -> bool:
    """The features rule, recomputed: the node's features (or the API offer's, from the fleet;
    an instance's: all) hold every feature the task needs; unstated means every feature."""
    if node is not None:
        offered = node.features
    else:
        offered = state.fleet.offer_features.get(offer.id) if offer.kind is OfferKind.API else None
    return offered is None or set(task.needs) <= set(offered)


def has_model(task: Task, node) -> bool:
    """The installed-models rule, recomputed: a node whose servers' installed set is known has
    an LLM step's model in its quant (any quant when the step names none)."""
    if task.kind is not TaskKind.LLM or node.installed is None:
        return True
    return any(m == task.model and task.quant in (None, q) for m, q in node.installed)


def burst_allowed(state: FleetState, task: Task, policy: Policy) -> bool:
    """The burst rule, recomputed: no node could ever run the task, or the best local finish
    (backlog + service, ignoring free slots) misses the deadline, or every local backlog is
    longer than the threshold."""
    best_finish, best_wait = float("inf"), float("inf")
    for node in state.fleet.nodes:
        ns = state.nodes[node.id]
        if ns.status is not NodeStatus.ACTIVE or modelless(task) or not tier_allowed(task) or not fits_context(task):
            continue
        if task.privacy is Privacy.PERSONAL and not node.may_hold_personal_of(task.owner):
            continue
        if not offers_needs(state, task, node) or not has_model(task, node):
            continue
        if task.kind is TaskKind.LLM:
            spec = catalog.model(task.model)
            if spec.memory_gb(task.quant, task.prompt_tokens + task.output_tokens) > node.memory_gb - node.reserved_memory_gb:
                continue
        elif task.memory_gb > node.memory_gb - node.reserved_memory_gb:
            continue
        resident = (task.model, task.quant) in ns.resident_models
        finish = state.time_s + ns.backlog_s + node_service_s(node, ns, task, resident)
        best_finish, best_wait = min(best_finish, finish), min(best_wait, ns.backlog_s)
    deadline = float("inf") if task.deadline_s is None else task.deadline_s
    return (best_finish == float("inf") or best_finish > deadline - 1e-6
            or best_wait > policy.burst_backlog_threshold_s)


def _need_gb(task: Task) -> float:
    if task.kind is TaskKind.PROCESSOR:
        return task.memory_gb
    if modelless(task):
        return 0.0  # only an API runs it: no memory of ours
    return catalog.model(task.model).memory_gb(task.quant, task.prompt_tokens + task.output_tokens)


def ever_runnable(state: FleetState, task: Task, policy: Policy, slack_gb: float = 1e-6) -> bool:
    """Some target passes every permanent constraint (not draining, privacy, tier, kind,
    installed memory, budget account), so rejecting the task ("no target can ever run it") is
    wrong. A departed node (or one missing from the state) counts: it may come back.
    `slack_gb` is a hair added to the task's memory so float noise at an exact fit never flags
    a real decision: positive when checking a rejection, negative when checking a deferral."""
    need = _need_gb(task) + slack_gb
    for node in state.fleet.nodes:
        ns = state.nodes.get(node.id)
        if (ns is not None and ns.status is NodeStatus.DRAINING) or modelless(task) or not tier_allowed(task) \
                or not fits_context(task):
            continue
        if task.privacy is Privacy.PERSONAL and not node.may_hold_personal_of(task.owner):
            continue
        if need <= node.memory_gb - node.reserved_memory_gb and offers_needs(state, task, node) \
                and has_model(task, node):
            return True
    if task.privacy is not Privacy.PUBLIC:
        return False
    has_account = policy.allow_unbudgeted_cloud or task.account in state.fleet.budgets
    for offer in state.fleet.cloud_offers:
        if not has_account or not tier_allowed(task, offer) or not offers_needs(state, task, offer=offer):
            continue
        if offer.kind is OfferKind.API and api_can_serve(task, offer):
            return True
        if offer.kind is OfferKind.INSTANCE and not modelless(task) and fits_context(task) \
                and need <= offer.gpu_count * offer.gpu_memory_gb:
            return True
    return False


def check_placement(state: FleetState, tasks: list[Task], placement: Placement, policy: Policy | None = None) -> None:
    """Assert every hard constraint; raise AssertionError naming the task and constraint."""
    policy = policy or Policy()
    fleet = state.fleet
    assert [d.task_id for d in placement.decisions] == [t.id for t in tasks], "one decision per task, in order"
    on_node: dict[str, list[Task]] = defaultdict(list)
    on_offer: dict[str, int] = defaultdict(int)
    spend: dict[str, float] = defaultdict(float)
    for task, d in zip(tasks, placement.decisions):
        if d.status is not DecisionStatus.PLACED:
            assert d.reason, f"{task.id}: unplaced without a reason"
            assert d.target is None
            if d.status is DecisionStatus.REJECTED:
                assert not ever_runnable(state, task, policy, 1e-6), \
                    f"{task.id}: rejected although a target could run it"
            else:  # and the converse: waiting for a target that can never run it is pointless
                assert ever_runnable(state, task, policy, -1e-6), \
                    f"{task.id}: deferred although no target can ever run it"
            continue
        if d.target_kind is TargetKind.NODE:
            node, ns = fleet.node(d.target), state.nodes[d.target]
            assert ns.status is NodeStatus.ACTIVE, f"{task.id}: placed on {ns.status.value} node"
            assert ns.thermal not in (ThermalState.SERIOUS, ThermalState.CRITICAL), f"{task.id}: hot node"
            if task.privacy is Privacy.PERSONAL:
                assert node.may_hold_personal_of(task.owner), f"{task.id}: personal data on a foreign node"
            assert not modelless(task), f"{task.id}: names no model, placed on node {node.id}"
            assert tier_allowed(task), f"{task.id}: tier {task.tier} on a local node with {task.model}"
            assert fits_context(task), f"{task.id}: beyond {task.model}'s context window on {node.id}"
            assert offers_needs(state, task, node), f"{task.id}: needs {sorted(task.needs)}, {node.id} lacks some"
            assert has_model(task, node), f"{task.id}: {task.model} {task.quant} is not on {node.id}'s servers"
            if ns.power_source is PowerSource.BATTERY:
                resident = (task.model, task.quant) in ns.resident_models
                assert node_service_s(node, ns, task, resident) <= policy.battery_heavy_seconds + TOL, \
                    f"{task.id}: heavy work on battery"
            on_node[node.id].append(task)
        else:
            offer = fleet.offer(d.target)
            assert task.privacy is Privacy.PUBLIC, f"{task.id}: {task.privacy.value} data sent to the cloud"
            assert tier_allowed(task, offer), f"{task.id}: tier {task.tier} on {offer.id} with {task.model}"
            assert offers_needs(state, task, offer=offer), f"{task.id}: needs {sorted(task.needs)}, {offer.id} lacks some"
            if offer.kind is OfferKind.API:
                assert api_can_serve(task, offer), f"{task.id}: a {task.kind.value} step sent to the chat API {offer.id}"
            else:
                assert not modelless(task), f"{task.id}: names no model, placed on instance {offer.id}"
                assert fits_context(task), f"{task.id}: beyond {task.model}'s context window on {offer.id}"
            assert policy.allow_unbudgeted_cloud or task.account in fleet.budgets, f"{task.id}: no budget"
            assert burst_allowed(state, task, policy), f"{task.id}: burst although local nodes can do it in time"
            on_offer[offer.id] += 1
            spend[task.account] += cloud_cost_usd(state, offer, task)
    for node_id, placed in on_node.items():
        node, ns = fleet.node(node_id), state.nodes[node_id]
        assert len(placed) <= ns.free_slots, f"{node_id}: {len(placed)} tasks for {ns.free_slots} free slots"
        need, loads = 0.0, set()
        for task in placed:
            if task.kind is TaskKind.PROCESSOR:
                need += task.memory_gb
                continue
            spec = catalog.model(task.model)
            need += spec.kv_bytes_per_token * (task.prompt_tokens + task.output_tokens) / 1e9
            key = (task.model, task.quant)
            if key not in ns.resident_models and key not in loads:
                loads.add(key)
                need += spec.weights_gb(task.quant)
        idle = ns.free_slots >= node.slots
        evictable = sum(catalog.model(m).weights_gb(q) for m, q in ns.resident_models) if idle else 0.0
        assert need <= ns.free_memory_gb + evictable + 1e-6, f"{node_id}: {need:.2f} GB > free memory"
    for account, usd in spend.items():
        if account in fleet.budgets:
            limit = fleet.budgets[account].limit_usd
            already = state.cloud_spend_usd.get(account, 0.0)
            assert already + usd <= limit + 1e-6, f"budget {account}: {already}+{usd} > {limit}"
    for offer_id, count in on_offer.items():
        offer = fleet.offer(offer_id)
        if offer.kind is OfferKind.API and offer.rate_limit_rpm > 0:
            assert count <= offer.rate_limit_rpm
        if offer.kind is OfferKind.INSTANCE:
            assert count <= max(offer.gpu_count, 1) * policy.instance_slots_per_gpu
