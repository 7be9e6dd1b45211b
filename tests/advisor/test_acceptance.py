"""Acceptance: advice on workloads whose best purchase is known by hand, replayed in the twin.

The hand-built case: a steady personal Llama-3.1-70B (Q8_0, ~75 GB) load of two owners that
no current node can hold, so today every request is rejected (personal work may not go to the
cloud). Among the purchasable devices only the DGX Spark (128 GB) holds it. Electricity is
free, so the only saving is the value of the misses avoided, and the payback is, from first
principles: price / (requests per month x value per miss).
"""

from __future__ import annotations

import base64
from html.parser import HTMLParser

import pytest

from heddle.advisor import serves_personal_locally
from heddle.advisor.report import write_report
from heddle.advisor.slices import make_slices
from heddle.models import catalog
from tests.advisor.conftest import (
    EVERY_S,
    MISS_USD,
    advise_two_owners,
    fleet_of,
    node,
    two_owner_trace,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_recommends_the_large_memory_node_with_the_hand_computed_payback(trusted_report):
    r = trusted_report
    assert r.recommended is not None
    (p,) = r.recommended.candidate.purchases
    assert (p.device_id, p.units) == ("dgx-spark", 1)
    requests_per_month = 2 * (86_400 / EVERY_S) * 365.25 / 12
    hand_payback = catalog.device("dgx-spark").price_usd / (requests_per_month * MISS_USD)
    assert r.recommended.payback_months == pytest.approx(hand_payback, rel=0.05)
    assert "dgx-spark" in r.sentence and f"{hand_payback:.1f}" in r.sentence
    # today: nothing is served; after: both owners' work runs locally, nothing is missed
    assert r.current.rejected_per_month == pytest.approx(requests_per_month, rel=0.05)
    assert r.recommended.replay.misses.sum() == 0


def test_privacy_holds_in_every_candidate_replay(trusted_report, distrusted_report):
    for r in (trusted_report, distrusted_report):
        assert r.privacy_violations == 0
        for e in [r.baseline, *r.evaluations]:
            assert e.replay.privacy_violations == 0
            assert e.replay.cloud.sum() == 0  # personal work never went to the cloud


def test_a_purchase_the_owner_does_not_trust_is_never_recommended(distrusted_report):
    r = distrusted_report
    slices = make_slices(two_owner_trace().df, 1.0)
    spark = [e for e in r.evaluations if e.candidate.kind in ("add", "mix")
             and [(p.device_id, p.units, p.owner) for p in e.candidate.purchases] == [("dgx-spark", 1, "")]]
    assert spark, "the DGX Spark purchase (alice's) should have been replayed"
    # it does save money (alice's half of the load) but cannot hold bob's personal work
    assert spark[0].savings_usd_per_month["total"] > 0 and not spark[0].eligible
    assert "bob's personal work" in spark[0].why_not
    # the advice aimed at the cause: a machine for each owner, bob's his own
    best = r.recommended
    assert best is not None and serves_personal_locally(best.candidate.fleet, slices) == []
    assert sorted(p.owner for p in best.candidate.purchases) == ["", "bob"]
    assert "bob's own" in r.sentence and best.replay.misses.sum() == 0


def test_without_budget_for_both_machines_the_advice_is_to_keep_and_says_why():
    r = advise_two_owners(fleet_of(node("mini", "m4-10", 16, "alice"),
                         node("bob-nano", "jetson-orin-nano-super", 8, "bob")), budget_usd=6_000)
    assert r.recommended is None
    assert r.sentence.startswith("Keep the current fleet: no purchase within the 6,000 USD budget")
    assert "without breaking a rule" in r.sentence and "personal work without a machine" in r.sentence
    kinds = {(c.kind, c.owner) for c in r.causes}
    assert kinds == {("memory", "alice"), ("memory", "bob")}


def test_html_report_embeds_every_chart_as_a_png(trusted_report, tmp_path):
    paths = write_report(trusted_report, tmp_path)

    class Images(HTMLParser):
        def __init__(self):
            super().__init__()
            self.srcs: list[str] = []

        def handle_starttag(self, tag, attrs):
            if tag == "img":
                self.srcs.append(dict(attrs).get("src", ""))

    parser = Images()
    parser.feed(paths["html"].read_text(encoding="utf-8"))
    assert len(parser.srcs) >= 4
    for src in parser.srcs:
        head, _, data = src.partition(",")
        assert head == "data:image/png;base64"
        assert base64.b64decode(data, validate=True).startswith(PNG_SIGNATURE)
    md = paths["markdown"].read_text(encoding="utf-8")
    assert trusted_report.sentence in md
    # every table has a header a reader can read: no empty header cells
    assert "<th></th>" not in paths["html"].read_text(encoding="utf-8")
    headers = [line for k, line in enumerate(md.splitlines()[1:], 1)
               if line.startswith("|---") and md.splitlines()[k - 1].startswith("|")]
    assert headers and all("|  |" not in md.splitlines()[md.splitlines().index(h) - 1] for h in headers)
    assert '"recommended": "' in paths["json"].read_text(encoding="utf-8")


def test_html_has_no_external_references(trusted_report, tmp_path):
    html = write_report(trusted_report, tmp_path)["html"].read_text(encoding="utf-8")
    assert "http://" not in html and "https://" not in html and "<link" not in html


def test_same_inputs_give_the_same_advice(trusted_report):
    again = advise_two_owners(fleet_of(node("mini", "m4-10", 16, "alice", ["bob"])))
    first, second = trusted_report.as_dict(), again.as_dict()
    for d in (first, second):  # wall-clock times are the only thing allowed to differ
        d.pop("timings_s")
        d["sizing"].pop("wall_s")
    for c in first["candidates"] + second["candidates"] + [first["baseline"], second["baseline"]]:
        c.pop("twin_wall_s")
    assert first == second
