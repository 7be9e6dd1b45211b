"""Why work fails, in words; what work not done is worth; and the rules for replacing a machine."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from heddle.advisor import AdvisorSettings, advise, request_values
from heddle.advisor.candidates import owner_needs
from heddle.advisor.resale import resale_of, resale_table
from heddle.advisor.screen import screen
from heddle.advisor.slices import make_slices
from heddle.models import catalog
from heddle.models.fleet_types import Budget, Node
from tests.advisor.conftest import fleet_of, node, steady_trace

SMALL = {"model": "llama-3.1-8b", "quant": "q4_k_m", "prompt": 400, "output": 100, "deadline_s": 600}


def _api_price(offer: str, prompt: float, output: float) -> float:
    o = catalog.offer(offer)
    return (prompt * o.price_usd_per_m_input_tokens + output * o.price_usd_per_m_output_tokens) / 1e6


def test_work_not_done_is_worth_its_cloud_price_at_the_requested_tier_by_default():
    df = pd.DataFrame({"kind": ["llm", "llm", "llm", "processor"], "tier": ["", "standard", "frontier", ""],
                       "prompt_tokens": [1000, 1000, 1000, 0], "output_tokens": [200, 200, 200, 0],
                       "priority": [0, 0, 1, 0]})
    v = request_values(df, AdvisorSettings())
    cheapest = _api_price("claude-haiku-4.5", 1000, 200)  # the cheapest API of any tier
    assert v.tolist() == pytest.approx([cheapest, cheapest, _api_price("claude-opus-4.6", 1000, 200), 0.0])
    # an owner's own figures: flat, and per priority on top
    flat = request_values(df, AdvisorSettings(miss_value_usd=0.2, miss_value_usd_by_priority={1: 3.0}))
    assert flat.tolist() == [0.2, 0.2, 3.0, 0.2]


def test_requests_for_a_tier_no_local_model_has_are_explained_and_not_bought_for():
    trace = steady_trace([{**SMALL, "every_s": 900, "privacy": "sensitive", "owner": "alice"}], days=2)
    df = trace.df.assign(tier="frontier")
    fleet = fleet_of(node("mini", "m4-10", 16, "alice"))
    r = advise(df, fleet, AdvisorSettings(miss_value_usd=5.0, shortlist=2),
               devices={d: catalog.device(d) for d in ("m4-10", "dgx-spark")})
    (cause,) = r.causes
    assert cause.kind == "tier" and not cause.fixable_by_purchase
    assert cause.per_month == pytest.approx(r.current.misses_per_month, rel=0.01)
    assert "ask for the frontier tier" in cause.sentence and "no purchase serves them" in cause.fix
    # worth 5 USD each, yet no purchase is advised: no machine can serve them
    assert r.recommended is None
    assert r.sentence.startswith("Keep the current fleet") and "which no purchase changes" in r.sentence


def test_personal_work_that_only_an_untrusted_node_could_hold_names_the_free_fix_and_a_trusted_buy():
    big = {"model": "qwen2.5-32b", "quant": "q4_k_m", "prompt": 400, "output": 100, "deadline_s": 3600}
    trace = steady_trace([{**big, "every_s": 600, "privacy": "personal", "owner": "carol"},
                          {**SMALL, "every_s": 600, "privacy": "public", "owner": "alice"}], days=2)
    fleet = fleet_of(node("studio", "m2-ultra-76", 192, "alice"),
                     node("studio2", "m2-ultra-76", 192, "alice"),
                     node("carol-nano", "jetson-orin-nano-super", 8, "carol"))
    r = advise(trace, fleet, AdvisorSettings(miss_value_usd=1.0, shortlist=3),
               devices={d: catalog.device(d) for d in ("m4-10", "m4-pro-20", "jetson-orin-nano-super")})
    (cause,) = r.causes
    assert cause.kind == "trust" and cause.owner == "carol"
    assert "no node carol trusts can hold qwen2.5-32b q4_k_m" in cause.sentence
    assert cause.fix.startswith("adding carol to studio's trusted_owners (free)")
    # the purchase aimed at it is carol's own machine (she trusts only her own), and it is advised
    best = r.recommended
    assert best is not None and [p.owner for p in best.candidate.purchases] == ["carol"]
    assert best.fixes[cause.key] == pytest.approx(cause.per_month, rel=0.01)
    assert "carol's own" in r.sentence and "that fail today done in time" in r.sentence
    # the free fix is replayed too, and reported, but left to the owners: never the recommendation
    (change,) = r.changes
    assert change.candidate.kind == "change" and change.fixes[cause.key] == pytest.approx(cause.per_month, rel=0.01)
    assert "Without buying anything, adding carol to studio's trusted_owners" in r.sentence


def test_public_work_refused_the_cloud_for_budget_says_by_how_much_to_raise_it():
    big = {"model": "llama-3.1-70b", "quant": "q4_k_m", "prompt": 2000, "output": 500, "deadline_s": 600}
    trace = steady_trace([{**big, "every_s": 300, "privacy": "public", "owner": "alice", "account": "home"}],
                         days=2)
    fleet = replace(fleet_of(node("mini", "m4-10", 16, "alice")), budgets={"home": Budget("home", 1.0, "day")})
    r = advise(trace, fleet, AdvisorSettings(shortlist=2),
               devices={d: catalog.device(d) for d in ("m4-10", "m4-pro-20")})
    # every request not done in time today is in exactly one cause
    rows = np.concatenate([c.rows for c in r.causes])
    assert len(set(rows.tolist())) == rows.size
    assert sorted(rows.tolist()) == sorted(r.baseline.replay.failures["row"].tolist())
    # the requests still waiting when the budget period rolls run in the cloud, late: their
    # cause is the memory no node has (a late task only the cloud can run is never left waiting)
    assert {c.kind for c in r.causes} == {"budget", "memory"}
    (budget,) = [c for c in r.causes if c.kind == "budget"]
    assert budget.account == "home" and "its 1.00 USD daily cloud budget runs out" in budget.sentence
    # the amount is those requests' price on the fleet's only API (Haiku: 1 / 5 USD per M tokens)
    assert budget.value_usd_per_month == pytest.approx(budget.per_month * _api_price("claude-haiku-4.5", 2000, 500))
    # the raise is replayed: the twin says what it gets done and what it costs in the cloud
    (change,) = r.changes
    per_day = budget.value_usd_per_month / (365.25 / 12)
    assert change.candidate.name == f"raising the home budget by {per_day:,.2f} USD a day"
    assert change.fixes[budget.key] == pytest.approx(budget.per_month, rel=0.05)
    assert f"Raising the home budget by {per_day:,.2f} USD a day would get" in r.sentence


def _replacements(fleet, trace, devices=("jetson-orin-nano-super", "m4-10", "m4-pro-20"), **kw):
    settings = AdvisorSettings(electricity_usd_per_kwh=0.5, **kw)
    values = request_values(trace.df, settings)
    scr = screen(fleet, make_slices(trace.df, 1.0, values), {d: catalog.device(d) for d in devices},
                 settings, [], owner_needs(trace.df))
    return [e.candidate for e in scr.estimates if e.candidate.kind == "replace"]


def _rig(replaceable: bool) -> Node:
    return Node("carol-rig", catalog.device("rtx-4090"), 24, "carol", labels={"form_factor": "desktop"},
                replaceable=replaceable)


def test_a_persons_desktop_is_replaced_only_when_the_fleet_marks_it_replaceable():
    trace = steady_trace([{**SMALL, "every_s": 900, "privacy": "personal", "owner": "carol"}], days=1)
    assert _replacements(fleet_of(_rig(False)), trace) == []
    offered = _replacements(fleet_of(_rig(True)), trace)
    assert offered and {c.removed for c in offered} == {("carol-rig",)}


def test_a_replacement_must_hold_what_the_nodes_owner_runs_today():
    # carol runs gpt-oss-20b (~12 GB): an 8 GB Jetson can never take her desktop's place
    gpt = {"model": "gpt-oss-20b", "quant": "mxfp4", "prompt": 400, "output": 100, "deadline_s": 3600}
    trace = steady_trace([{**gpt, "every_s": 900, "privacy": "personal", "owner": "carol"}], days=1)
    offered = _replacements(fleet_of(_rig(True)), trace)
    assert offered and all(p.device_id != "jetson-orin-nano-super" for c in offered for p in c.purchases)


def test_a_replaced_machine_counts_its_resale_value_with_a_source():
    trace = steady_trace([{**SMALL, "every_s": 900, "privacy": "personal", "owner": "carol"}], days=1)
    (c, *_) = _replacements(fleet_of(_rig(True)), trace)
    entry = resale_table()["rtx-4090"]
    assert c.resale_usd == entry.used_usd and c.net_usd == c.purchase_usd - entry.used_usd
    assert "as of" in c.resale_source and entry.source in c.resale_source
    (mine, *_) = _replacements(fleet_of(_rig(True)), trace, resale_usd={"carol-rig": 1500.0})
    assert mine.resale_usd == 1500.0 and "your figure" in mine.resale_source
    assert resale_of(node("x", "m4-10", 32, "a"), {}).usd > resale_table()["m4-10"].used_usd  # more memory


def test_every_resale_figure_has_a_source_and_a_date():
    for device, e in resale_table().items():
        assert device in catalog.devices()
        assert e.used_usd < catalog.device(device).price_usd * 4 and len(e.as_of) >= 4 and e.source


def test_adding_is_preferred_to_replacing_at_nearly_the_same_payback(trusted_report):
    r = trusted_report
    replace = [e for e in r.evaluations if e.candidate.kind == "replace" and e.eligible]
    assert replace, "replacing mini by the DGX Spark should have been replayed"
    assert r.recommended.candidate.kind != "replace"
    assert replace[0].payback_months < r.recommended.payback_months  # replacing is a bit quicker
    assert "adding keeps mini in service" in r.sentence


def test_counts_in_words_are_grammatical():
    from heddle.advisor.causes import plural

    assert [plural(x, "request") for x in (0.2, 1.0, 1.4, 2.0, 945.4)] == [
        "fewer than one request", "1 request", "1 request", "2 requests", "945 requests"]


def test_a_replacement_that_serves_its_owner_worse_than_today_is_not_eligible():
    from types import SimpleNamespace

    from heddle.advisor.advise import _judge_replay

    fleet = fleet_of(_rig(True), node("studio", "m2-ultra-76", 192, "alice"))
    replay_df = pd.DataFrame({"owner": ["carol", "carol", "alice", "carol"]})
    weights = np.full(4, 10.0)  # each replayed row stands for 10 requests a month

    def fails(rows):
        return SimpleNamespace(failures=pd.DataFrame({"row": rows}))

    baseline = SimpleNamespace(candidate=SimpleNamespace(fleet=fleet), replay=fails([2]))
    worse = SimpleNamespace(candidate=SimpleNamespace(kind="replace", removed=("carol-rig",)),
                            replay=fails([0, 2]), fixes={}, owner_misses_per_month={},
                            eligible=True, why_not="")
    _judge_replay(worse, baseline, [], replay_df, weights)
    assert not worse.eligible and "serves carol's own work worse (10 more requests a month" in worse.why_not
    same = SimpleNamespace(**{**vars(worse), "replay": fails([2]), "eligible": True, "why_not": ""})
    _judge_replay(same, baseline, [], replay_df, weights)
    assert same.eligible and same.owner_misses_per_month == {"carol": 0.0}


def test_the_fleet_file_marks_a_machine_replaceable_and_names_a_bad_value():
    from heddle.models.errors import FleetError
    from heddle.models.fleet import parse_fleet

    text = ("name: home\nnodes:\n  - id: rig\n    device: rtx-4090\n    memory_gb: 24\n    owner: carol\n"
            "    labels: {form_factor: desktop}\n    replaceable: {value}\n")
    (rig,) = parse_fleet(text.replace("{value}", "true"), "home.yaml").nodes
    assert rig.replaceable
    (kept,) = parse_fleet(text.replace("    replaceable: {value}\n", ""), "home.yaml").nodes
    assert not kept.replaceable  # a person's computer stays theirs unless the file says otherwise
    with pytest.raises(FleetError, match=r"home\.yaml:8.*replaceable"):
        parse_fleet(text.replace("{value}", "perhaps"), "home.yaml")
