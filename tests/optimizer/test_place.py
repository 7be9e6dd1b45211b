"""Behaviour of place() on a small hand-built household fleet: privacy, the burst rule,
budgets, tiers, drain/courtesy, evictions, explanations and errors."""

from __future__ import annotations

import pytest

from heddle.models import (
    AccountId,
    Budget,
    Fleet,
    FleetState,
    ModelId,
    Node,
    NodeId,
    NodeStatus,
    OwnerId,
    PowerSource,
    Privacy,
    Task,
    TaskId,
    TaskKind,
    ThermalState,
    Tier,
    catalog,
    cost,
)
from heddle.optimizer import DecisionStatus, Policy, TargetKind, UnknownPolicyError, place
from heddle.optimizer.engine import place_table

BIZ = AccountId("business")


def _fleet(budget_usd: float = 10.0) -> Fleet:
    nodes = (
        Node(NodeId("studio"), catalog.device("m2-ultra-76"), 192, OwnerId("alice"), slots=2),
        Node(NodeId("mini"), catalog.device("m4-pro-20"), 64, OwnerId("bob"),
             trusted_owners=frozenset({OwnerId("carol")}), slots=1),
        Node(NodeId("air"), catalog.device("m1-8"), 16, OwnerId("alice"), slots=1),
    )
    offers = tuple(catalog.offer(o) for o in ("claude-haiku-4.5", "claude-opus-4.6", "aws-g5.xlarge"))
    return Fleet("household", nodes, offers, {BIZ: Budget(BIZ, budget_usd)})


def _llm(i: int = 0, **kw) -> Task:
    base = {"id": TaskId(f"t{i}"), "kind": TaskKind.LLM, "arrival_s": 100.0, "model": ModelId("llama-3.1-8b"),
            "quant": "q4_k_m", "prompt_tokens": 500, "output_tokens": 200, "account": BIZ,
            "owner": OwnerId("alice")}
    return Task(**{**base, **kw})


@pytest.fixture
def state() -> FleetState:
    return FleetState.idle(_fleet(), time_s=100.0)


def _busy(state: FleetState, backlog_s: float = 5000.0) -> FleetState:
    for ns in state.nodes.values():
        ns.backlog_s = backlog_s
    return state


def test_an_idle_fleet_runs_a_small_public_task_locally(state):
    d = place(state, [_llm(deadline_s=400.0)]).decisions[0]
    assert d.status is DecisionStatus.PLACED and d.target_kind is TargetKind.NODE
    assert d.cost_usd["cloud"] == 0.0 and d.cost_usd["energy"] > 0
    assert "burst rule" in d.rejected_alternatives["claude-haiku-4.5"]


def test_public_work_bursts_when_the_local_backlog_misses_the_deadline(state):
    d = place(_busy(state), [_llm(deadline_s=160.0)]).decisions[0]
    assert d.status is DecisionStatus.PLACED and d.target_kind is TargetKind.CLOUD
    assert d.cost_usd["cloud"] > 0


def test_sensitive_work_waits_rather_than_leave_the_fleet(state):
    d = place(_busy(state), [_llm(deadline_s=160.0, privacy=Privacy.SENSITIVE)]).decisions[0]
    assert d.target_kind is TargetKind.NODE  # late locally beats any cloud
    assert all("privacy" in d.rejected_alternatives[o] for o in ("claude-haiku-4.5", "aws-g5.xlarge"))


def test_personal_work_stays_on_the_owners_and_trusting_nodes(state):
    carol = [_llm(i, privacy=Privacy.PERSONAL, owner=OwnerId("carol")) for i in range(3)]
    placement = place(state, carol)
    targets = {d.target for d in placement.decisions if d.status is DecisionStatus.PLACED}
    assert targets == {"mini"}  # bob's mini trusts carol; alice's nodes do not; mini has one slot
    waiting = [d for d in placement.decisions if d.status is DecisionStatus.DEFERRED]
    assert len(waiting) == 2
    assert "privacy" in waiting[0].rejected_alternatives["studio"]


def test_a_budget_that_is_spent_defers_the_burst_with_a_budget_reason(state):
    state.cloud_spend_usd[BIZ] = 10.0
    d = place(_busy(state), [_llm(deadline_s=160.0)]).decisions[0]
    assert d.target_kind is TargetKind.NODE or d.status is DecisionStatus.DEFERRED
    assert "budget" in d.rejected_alternatives["claude-haiku-4.5"]


def test_a_batch_never_spends_more_than_the_budget_left(state):
    state.cloud_spend_usd[BIZ] = 9.99
    tasks = [_llm(i, prompt_tokens=4000, output_tokens=800, deadline_s=101.0) for i in range(40)]
    placement = place(_busy(state), tasks)
    spent = sum(d.cost_usd.get("cloud", 0.0) for d in placement.decisions)
    assert 0 < spent <= 0.01 + 1e-9


def test_a_model_no_node_can_hold_goes_to_the_cloud_without_a_deadline(state):
    huge = _llm(model=ModelId("gpt-oss-120b"), quant="f16")
    d = place(state, [huge]).decisions[0]
    assert d.status is DecisionStatus.PLACED and d.target == "claude-haiku-4.5"
    assert d.rejected_alternatives["studio"].startswith("memory")


def test_a_model_no_node_can_hold_is_rejected_when_it_is_sensitive(state):
    huge = _llm(model=ModelId("gpt-oss-120b"), quant="f16", privacy=Privacy.SENSITIVE)
    d = place(state, [huge]).decisions[0]
    assert d.status is DecisionStatus.REJECTED
    assert "memory" in d.reason and "privacy" in d.reason


def test_a_frontier_task_goes_to_the_frontier_tier(state):
    d = place(state, [_llm(tier=Tier.FRONTIER)]).decisions[0]
    assert d.target == "claude-opus-4.6"


def test_a_task_naming_a_tier_and_no_model_goes_to_that_tiers_api(state):
    # the documented council participant `{name: opus, tier: frontier}`: the API of the tier
    # serves it with its own model; no machine can (it names nothing to load)
    for policy in ("optimal", "fast", "cheapest", "round-robin", "least-loaded", "ray-hybrid"):
        d = place(state, [_llm(tier=Tier.FRONTIER, model=None, quant=None)], policy).decisions[0]
        assert d.status is DecisionStatus.PLACED and d.target == "claude-opus-4.6", (policy, d.reason)
        assert d.rejected_alternatives["studio"].startswith("tier")
        assert d.rejected_alternatives["claude-haiku-4.5"].startswith("tier")
    local = place(state, [_llm(tier=Tier.LOCAL, model=None, quant=None)]).decisions[0]
    assert local.status is DecisionStatus.REJECTED  # no API serves the local tier, no node a nameless model
    assert local.rejected_alternatives["studio"].startswith("model")
    private = place(state, [_llm(tier=Tier.FRONTIER, model=None, quant=None,
                                 privacy=Privacy.SENSITIVE)]).decisions[0]
    assert private.status is DecisionStatus.REJECTED
    assert private.rejected_alternatives["claude-opus-4.6"].startswith("privacy")
    unbilled = place(state, [_llm(tier=Tier.FRONTIER, model=None, quant=None, account=None)]).decisions[0]
    assert unbilled.status is DecisionStatus.REJECTED and "budget" in unbilled.reason
    nothing = place(state, [_llm(model=None, quant=None)]).decisions[0]  # no model, no tier: nothing to run
    assert nothing.status is DecisionStatus.REJECTED
    assert nothing.rejected_alternatives["claude-haiku-4.5"].startswith("model")


def _offers_fleet() -> Fleet:
    """The household's nodes with two API offers of the standard tier (haiku the cheaper)."""
    offers = tuple(catalog.offer(o) for o in ("claude-haiku-4.5", "claude-sonnet-4.6", "claude-opus-4.6",
                                               "aws-g5.xlarge"))
    return Fleet("household", _fleet().nodes, offers, {BIZ: Budget(BIZ, 10.0)})


@pytest.mark.parametrize("path", [place, place_table])
def test_a_task_naming_an_api_offer_runs_on_that_offer_and_no_other(path):
    # what the gateway submits for `claude-sonnet-4.6`: the offer id as the model, no quant
    state = FleetState.idle(_offers_fleet(), time_s=100.0)
    sonnet = {"model": ModelId("claude-sonnet-4.6"), "quant": None}
    for policy in ("optimal", "fast", "cheapest", "round-robin", "least-loaded", "ray-hybrid"):
        d = path(state, [_llm(**sonnet)], policy).decisions[0]
        assert d.status is DecisionStatus.PLACED and d.target == "claude-sonnet-4.6", (policy, d.reason)
        assert d.target_kind is TargetKind.CLOUD
        for other in ("claude-haiku-4.5", "claude-opus-4.6", "aws-g5.xlarge", "studio"):  # haiku: same tier, cheaper
            assert d.rejected_alternatives[other] == "model: only the API offer claude-sonnet-4.6 runs it", (policy, other)
    assert path(state, [_llm(tier=Tier.STANDARD, **sonnet)]).decisions[0].target == "claude-sonnet-4.6"
    frontier = path(state, [_llm(tier=Tier.FRONTIER, **sonnet)]).decisions[0]  # the offer's tier is standard
    assert frontier.status is DecisionStatus.REJECTED
    assert frontier.rejected_alternatives["claude-sonnet-4.6"].startswith("tier")
    unbilled = path(state, [_llm(account=None, **sonnet)]).decisions[0]
    assert unbilled.status is DecisionStatus.REJECTED and "budget" in unbilled.reason
    absent = path(FleetState.idle(_fleet(), time_s=100.0), [_llm(**sonnet)]).decisions[0]  # not in this fleet
    assert absent.status is DecisionStatus.REJECTED
    # the user reads which offer the fleet lacks, not 'unknown model' (the offer is real)
    assert absent.rejected_alternatives["claude-haiku-4.5"] == "model: the API offer claude-sonnet-4.6 is not in this fleet"
    assert "the API offer claude-sonnet-4.6 is not in this fleet" in absent.reason, absent.reason


@pytest.mark.parametrize("path", [place, place_table])
@pytest.mark.parametrize("privacy", [Privacy.SENSITIVE, Privacy.PERSONAL])
def test_private_work_naming_an_api_offer_is_rejected_for_privacy(path, privacy):
    state = FleetState.idle(_offers_fleet(), time_s=100.0)
    d = path(state, [_llm(model=ModelId("claude-sonnet-4.6"), quant=None, privacy=privacy)]).decisions[0]
    assert d.status is DecisionStatus.REJECTED and d.target is None
    assert d.rejected_alternatives["claude-sonnet-4.6"].startswith("privacy")
    assert "privacy" in d.reason, d.reason


def test_a_node_serves_a_tier_up_to_its_models_catalog_tier(state):
    # qwen2.5-32b is a standard-tier open model (catalog); bob's 64 GB mini can hold it
    assert catalog.model("qwen2.5-32b").tier is Tier.STANDARD
    mine = {"model": ModelId("qwen2.5-32b"), "privacy": Privacy.PERSONAL, "owner": OwnerId("bob")}
    for policy in ("optimal", "fast", "cheapest", "round-robin", "least-loaded", "ray-hybrid"):
        d = place(state, [_llm(tier=Tier.STANDARD, **mine)], policy).decisions[0]
        assert d.status is DecisionStatus.PLACED and d.target == "mini", policy
    batch = place(state, [_llm(0, tier=Tier.STANDARD, **mine), _llm(1, **mine)]).decisions
    assert [d.target for d in batch].count("mini") == 1  # one slot: the batch path applies the rule too
    assert "tier" not in batch[0].reason + batch[1].reason

    too_high = place(state, [_llm(tier=Tier.FRONTIER, **mine)]).decisions[0]
    assert too_high.status is DecisionStatus.REJECTED
    assert "tier" in too_high.reason and too_high.rejected_alternatives["mini"].startswith("tier")

    public = place(state, [_llm(tier=Tier.FRONTIER, model=ModelId("qwen2.5-32b"))]).decisions[0]
    assert public.target == "claude-opus-4.6"  # no node serves frontier with this model: a burst
    assert public.rejected_alternatives["mini"].startswith("tier")
    assert public.rejected_alternatives["claude-haiku-4.5"].startswith("tier")  # APIs: exact tier


def test_a_small_models_task_preferring_standard_still_skips_the_nodes(state):
    small = _llm(tier=Tier.STANDARD, privacy=Privacy.SENSITIVE)  # llama-3.1-8b is a local-tier model
    d = place(state, [small]).decisions[0]
    assert d.status is DecisionStatus.REJECTED and "tier" in d.reason
    assert place(state, [_llm(tier=Tier.STANDARD)]).decisions[0].target == "claude-haiku-4.5"


def test_draining_departed_hot_and_battery_nodes_get_nothing_heavy(state):
    state.nodes["studio"].status = NodeStatus.DRAINING
    state.nodes["mini"].thermal = ThermalState.CRITICAL
    state.nodes["air"].power_source = PowerSource.BATTERY
    d = place(state, [_llm(privacy=Privacy.SENSITIVE, output_tokens=2000)]).decisions[0]
    assert d.status is DecisionStatus.DEFERRED
    assert d.rejected_alternatives["studio"].startswith("drain")
    assert d.rejected_alternatives["mini"].startswith("courtesy: thermal")
    assert d.rejected_alternatives["air"].startswith("courtesy: heavy work on battery")
    state.nodes["studio"].status = NodeStatus.DEPARTED
    state.nodes["mini"].status = NodeStatus.DEPARTED
    state.nodes["air"].status = NodeStatus.DEPARTED
    gone = place(state, [_llm(privacy=Privacy.SENSITIVE)]).decisions[0]
    assert gone.status is DecisionStatus.DEFERRED  # departed nodes may come back: wait for them
    assert "departed" in gone.reason and "privacy" in gone.reason  # the offers stay ruled out


@pytest.mark.parametrize("path", [place, place_table], ids=["one-task path", "table path"])
def test_personal_work_waits_for_its_owners_departed_node_but_never_for_a_foreign_one(state, path):
    # bob's only node is the mini; carol is trusted there; alice and dave may not use it
    bobs = _llm(privacy=Privacy.PERSONAL, owner=OwnerId("bob"))
    for nid in ("studio", "air"):
        state.nodes[nid].status = NodeStatus.DRAINING  # only the mini is left to decide on
    state.nodes["mini"].status = NodeStatus.DEPARTED
    waiting = path(state, [bobs]).decisions[0]
    assert waiting.status is DecisionStatus.DEFERRED
    assert "departed" in waiting.reason and waiting.rejected_alternatives["mini"].startswith("departed")

    daves = _llm(privacy=Privacy.PERSONAL, owner=OwnerId("dave"))  # same task, not the owner's node
    foreign = path(state, [daves]).decisions[0]
    assert foreign.status is DecisionStatus.REJECTED  # privacy never clears: checked before departure
    assert foreign.rejected_alternatives["mini"].startswith("privacy") and "departed" not in foreign.reason

    back = FleetState.idle(state.fleet, time_s=200.0)  # the mini has rejoined
    for nid in ("studio", "air"):
        back.nodes[nid].status = NodeStatus.DRAINING
    placed = path(back, [bobs]).decisions[0]
    assert placed.status is DecisionStatus.PLACED and placed.target == "mini"


def test_loading_a_model_may_evict_idle_residents_at_a_price(state):
    for nid in ("studio", "mini"):
        state.nodes[nid].status = NodeStatus.DRAINING
    air = state.nodes["air"]
    air.resident_models = frozenset({(ModelId("qwen2.5-7b"), "q8_0")})
    air.free_memory_gb = 16.0 - 8.1  # the resident model's weights take the rest
    d = place(state, [_llm(model=ModelId("llama-3.1-8b"), quant="q8_0", privacy=Privacy.SENSITIVE)]).decisions[0]
    assert d.target == "air"
    assert d.cost_usd["eviction"] == Policy().eviction_usd


def test_unknown_policy_names_the_valid_ones(state):
    with pytest.raises(UnknownPolicyError, match="round-robin"):
        place(state, [_llm()], "fastest")


def test_an_empty_batch_is_an_empty_placement(state):
    assert place(state, []).decisions == []


def test_long_prompts_are_priced_at_the_long_context_rate():
    sonnet = catalog.offer("claude-sonnet-4.6")
    fleet = Fleet("api-only", (), (sonnet,), {BIZ: Budget(BIZ, 100.0)})
    state = FleetState.idle(fleet, time_s=100.0)
    long_prompt = _llm(prompt_tokens=250_000, output_tokens=1000)
    d = place(state, [long_prompt], Policy(stranded_defer_usd=5.0)).decisions[0]  # worth $5 to us
    assert d.target == "claude-sonnet-4.6"
    assert d.cost_usd["cloud"] == pytest.approx(cost.api_cost_usd(sonnet, 250_000, 1000))
    assert d.cost_usd["cloud"] > (250_000 * 3.0 + 1000 * 15.0) / 1e6  # dearer than the short rate


@pytest.mark.parametrize(("path", "policy"), [(place, "optimal"), (place, "fast"), (place_table, "optimal"),
                                                 (place_table, "fast")])
@pytest.mark.parametrize("late_s", [0.0, 50.0, 3000.0])
def test_a_task_only_the_cloud_can_run_goes_there_however_late_it_already_is(path, policy, late_s):
    # waiting cannot make a late task less late: a 70B model no local node can hold, past its
    # deadline by up to 50 minutes, still runs on the cloud instead of waiting to be rejected
    # (it was deferred once its lateness outpriced the stranded-deferral price)
    fleet = Fleet("mini", (Node(NodeId("mini"), catalog.device("m4-10"), 16, OwnerId("alice")),),
                  (catalog.offer("claude-haiku-4.5"),), {BIZ: Budget(BIZ, 100.0)})
    state = FleetState.idle(fleet, time_s=5000.0)
    tasks = [Task(TaskId(f"late{i}"), TaskKind.LLM, arrival_s=4000.0 - late_s, model=ModelId("llama-3.1-70b"),
                  quant="q4_k_m", prompt_tokens=2000, output_tokens=500, owner=OwnerId("alice"),
                  deadline_s=5000.0 - late_s, account=BIZ) for i in range(3)]
    for d in path(state, tasks, policy).decisions:
        assert d.status is DecisionStatus.PLACED and d.target == "claude-haiku-4.5", (late_s, d.reason)


ALL_PATHS = [(place, name) for name in ("optimal", "fast", "round-robin", "least-loaded", "ray-hybrid", "cheapest")]
ALL_PATHS += [(place_table, "optimal"), (place_table, "fast")]


@pytest.mark.parametrize(("path", "policy"), ALL_PATHS)
def test_a_prompt_beyond_the_models_context_window_is_rejected_naming_the_context(state, path, policy):
    # llama-2-7b has a 4,096-token context; the studio could hold weights and KV many times over
    too_long = _llm(model=ModelId("llama-2-7b"), quant="q4_0", prompt_tokens=6000, output_tokens=500,
                    privacy=Privacy.SENSITIVE)
    fits = _llm(1, model=ModelId("llama-2-7b"), quant="q4_0", prompt_tokens=3000, output_tokens=500,
                privacy=Privacy.SENSITIVE)
    decisions = path(state, [too_long], policy).decisions + path(state, [fits], policy).decisions
    assert decisions[0].status is DecisionStatus.REJECTED
    assert "context" in decisions[0].reason
    assert decisions[1].status is DecisionStatus.PLACED


def test_the_context_window_also_binds_a_rented_instance_but_not_a_chat_api(state):
    long = _llm(model=ModelId("llama-2-7b"), quant="q4_0", prompt_tokens=6000, output_tokens=500)
    d = place(state, [long]).decisions[0]
    assert d.target == "claude-haiku-4.5"  # the API answers with its own model and window
    assert d.rejected_alternatives["aws-g5.xlarge"].startswith("context")
    assert d.rejected_alternatives["studio"].startswith("context")


@pytest.mark.parametrize(("path", "policy"), ALL_PATHS)
def test_embedding_steps_never_go_to_a_chat_api(state, path, policy):
    embed = [_llm(i, model=ModelId("nomic-embed-text-v1.5"), quant="f16", prompt_tokens=2000, output_tokens=0,
                  deadline_s=100.5) for i in range(3)]  # no node can meet the deadline: a burst is allowed
    for d in path(_busy(state), embed, policy).decisions:
        assert d.target not in ("claude-haiku-4.5", "claude-opus-4.6"), (policy, d)
        assert d.rejected_alternatives["claude-haiku-4.5"].startswith("kind")


def test_an_embedding_step_with_only_chat_apis_is_rejected_for_its_kind():
    fleet = Fleet("api-only", (), (catalog.offer("claude-haiku-4.5"),), {BIZ: Budget(BIZ, 100.0)})
    embed = _llm(model=ModelId("nomic-embed-text-v1.5"), quant="f16", prompt_tokens=500, output_tokens=0)
    for path in (place, place_table):
        d = path(FleetState.idle(fleet, time_s=100.0), [embed]).decisions[0]
        assert d.status is DecisionStatus.REJECTED and "kind" in d.reason
