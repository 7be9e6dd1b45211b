"""The CP-SAT sizing model, the LP pre-screen, and the ownership/trust rule of purchases."""

import numpy as np
import pytest

from heddle.advisor.candidates import (
    add_candidate,
    primary_owner,
    purchase_trust,
    purchase_unit,
    purchased_node,
    replace_candidate,
    serves_personal_locally,
)
from heddle.advisor.sizing import fixed_fleet_cost, solve_mix
from heddle.advisor.slices import make_slices, pair_table, unit_types_of
from heddle.models import catalog
from tests.advisor.conftest import fleet_of, node, steady_trace

BIG_70B = {"every_s": 900, "model": "llama-3.1-70b", "quant": "q8_0", "prompt": 500, "output": 200,
               "privacy": "personal", "owner": "alice", "deadline_s": 3600}
SMALL_8B = {"every_s": 120, "model": "llama-3.1-8b", "quant": "q4_k_m", "prompt": 400, "output": 100,
                "privacy": "public", "owner": "alice", "deadline_s": 60}


MISS_USD = 0.5


def _slices(trace):
    """Slices whose every request is worth MISS_USD when not done in time."""
    return make_slices(trace.df, 1.0, np.full(len(trace.df), MISS_USD))


def _sizing(fleet, trace, devices, budget):
    slices = _slices(trace)
    have = unit_types_of(fleet)
    buy = [purchase_unit(fleet, catalog.device(d), m, 2, 0.0) for d, m in devices]
    units = have + buy
    table = pair_table(slices, units, fleet.cloud_offers)
    return solve_mix(slices, units, table, buyable=[False] * len(have) + [True] * len(buy),
                     budget_usd=budget, horizon_months=36,
                     target_utilization=0.7, time_limit_s=10, seed=0)


def test_sizing_buys_the_only_device_that_holds_the_private_load():
    fleet = fleet_of(node("mini", "m4-10", 16, "alice"))
    trace = steady_trace([BIG_70B], days=2)
    mix = _sizing(fleet, trace, [("m4-pro-20", 64), ("dgx-spark", 128)], budget=10_000)
    assert mix.bought == {"buy:dgx-spark:128": 1}
    assert mix.miss_share == pytest.approx(0.0)


def test_sizing_respects_the_budget():
    fleet = fleet_of(node("mini", "m4-10", 16, "alice"))
    trace = steady_trace([BIG_70B], days=2)
    mix = _sizing(fleet, trace, [("dgx-spark", 128)], budget=catalog.device("dgx-spark").price_usd - 1)
    assert mix.bought == {} and mix.purchase_usd == 0.0
    assert mix.miss_share == pytest.approx(1.0)


def test_lp_prescreen_matches_cp_sat_on_a_fixed_fleet():
    fleet = fleet_of(node("mini", "m4-10", 16, "alice"), node("studio", "m2-ultra-76", 192, "alice"),
                     electricity=0.2)
    trace = steady_trace([BIG_70B, SMALL_8B], days=2)
    slices = _slices(trace)
    units = unit_types_of(fleet)
    table = pair_table(slices, units, fleet.cloud_offers)
    lp = fixed_fleet_cost(slices, units, table, target_utilization=0.7)
    cp = solve_mix(slices, units, table, buyable=[False] * len(units), budget_usd=0,
                   horizon_months=36, target_utilization=0.7)
    assert lp.operating_usd_per_month == pytest.approx(cp.operating_usd_per_month, rel=0.01, abs=0.01)
    assert lp.local_share == pytest.approx(1.0)


def test_purchases_belong_to_the_primary_owner_and_inherit_only_existing_trust():
    fleet = fleet_of(node("a1", "m4-10", 16, "alice", ["bob"]), node("a2", "m4-10", 16, "alice"),
                     node("c1", "m4-pro-20", 64, "carol", ["dave"]))
    assert primary_owner(fleet) == "alice"  # two nodes beat one larger one
    assert purchase_trust(fleet) == {"bob"}  # dave trusts carol's machine, not alice's
    new = purchased_node(fleet, catalog.device("dgx-spark"), 128, 1)
    assert new.owner == "alice" and new.may_hold_personal_of("bob")
    assert not new.may_hold_personal_of("dave") and not new.may_hold_personal_of("carol")


def test_replacement_keeps_the_replaced_nodes_owner_and_trust():
    old = node("c1", "m4-pro-20", 64, "carol", ["dave"])
    fleet = fleet_of(node("a1", "m4-10", 16, "alice"), old)
    c = replace_candidate(fleet, old, catalog.device("dgx-spark"), 128)
    new = next(n for n in c.fleet.nodes if n.id.startswith("buy-"))
    assert new.owner == "carol" and new.trusted_owners == {"dave"}
    assert "c1" not in {n.id for n in c.fleet.nodes} and c.removed == ("c1",)


def test_a_candidate_is_checked_for_every_owners_personal_work():
    trace = steady_trace([BIG_70B, {**BIG_70B, "owner": "bob", "offset_s": 7}], days=1)
    slices = make_slices(trace.df, 1.0)
    trusting = fleet_of(node("mini", "m4-10", 16, "alice", ["bob"]))
    distrusting = fleet_of(node("mini", "m4-10", 16, "alice"))
    spark = catalog.device("dgx-spark")
    assert len(serves_personal_locally(trusting, slices)) == 2  # nothing holds a 70B today
    assert serves_personal_locally(add_candidate(trusting, spark, 128, 1).fleet, slices) == []
    gaps = serves_personal_locally(add_candidate(distrusting, spark, 128, 1).fleet, slices)
    assert len(gaps) == 1 and gaps[0].endswith("|personal|bob")


def test_work_naming_an_api_offer_is_priced_at_that_offer_not_the_cheapest():
    """A trace row naming claude-sonnet-4.6 (as the gateway records it) costs sonnet's price in
    the sizing model and as the value of work not done; haiku (the same tier) is cheaper."""
    from heddle.advisor import AdvisorSettings, request_values
    from heddle.models.cost import api_cost_usd

    sonnet = catalog.offer("claude-sonnet-4.6")
    short = {"every_s": 600, "model": "claude-sonnet-4.6", "quant": "", "prompt": 400, "output": 100,
             "privacy": "public", "owner": "alice", "deadline_s": 600}
    long = {**short, "prompt": 250_000, "output": 1_000, "offset_s": 300}  # sonnet's long-context prices
    trace = steady_trace([short, long], days=1)
    slices = make_slices(trace.df, 1.0)
    home = [node("mini", "m4-pro-20", 64, "alice")]
    fleet = fleet_of(*home, offers=("claude-haiku-4.5", "claude-sonnet-4.6"))
    table = pair_table(slices, unit_types_of(fleet), fleet.cloud_offers)
    by_prompt = {s.prompt_tokens: table.cloud_usd[i] for i, s in enumerate(slices)}
    assert by_prompt == {400: pytest.approx(api_cost_usd(sonnet, 400, 100)),
                         250_000: pytest.approx(api_cost_usd(sonnet, 250_000, 1_000))}
    assert api_cost_usd(sonnet, 250_000, 1_000) > 250_000 * 3.0 / 1e6  # the long prices applied
    assert not table.feasible.any()  # no node runs an API offer's model
    # a fleet that does not list the offer cannot send the work there (the core rejects it)
    without = fleet_of(*home, offers=("claude-haiku-4.5",))
    assert np.isinf(pair_table(slices, unit_types_of(without), without.cloud_offers).cloud_usd).all()
    values = request_values(trace.df, AdvisorSettings())
    prompts = trace.df["prompt_tokens"].to_numpy()
    assert values[prompts == 400] == pytest.approx(api_cost_usd(sonnet, 400, 100))
    assert values[prompts == 250_000] == pytest.approx(api_cost_usd(sonnet, 250_000, 1_000))
