"""The headline can be checked by hand from the report's own tables: the recommended row's
savings are the sum of its parts, its payback is net price / savings, and the sentence quotes
those numbers (a reader with the Markdown report and a calculator gets the same answer)."""

from __future__ import annotations

import re

import pytest

from heddle.advisor.report import write_report
from tests.advisor.conftest import md_tables, usd


def _check_recommended_row(markdown: str, sentence: str) -> dict[str, str]:
    rows = md_tables(markdown)["Candidates (replayed in the twin)"]
    (rec,) = [r for r in rows if r["status"] == "RECOMMENDED"]
    parts = sum(usd(rec[k]) for k in ("cloud saved USD/mo", "energy saved USD/mo", "work done saved USD/mo"))
    saves = usd(rec["saves USD/mo"])
    assert saves == pytest.approx(parts, abs=0.015)
    assert usd(rec["net USD"]) == pytest.approx(usd(rec["price USD"]) - usd(rec["resale USD"]), abs=1)
    payback = usd(rec["net USD"]) / saves
    assert f"{payback:.1f}" == rec["payback mo"] or abs(payback - usd(rec["payback mo"])) <= 0.05
    m = re.search(r"saves ([\d,]+) USD a month .*? pays back in ([\d.]+) months", sentence)
    assert m, sentence
    assert usd(m.group(1)) == pytest.approx(saves, abs=0.5)
    assert usd(m.group(2)) == pytest.approx(payback, abs=0.05)
    return rec


def test_the_recommended_purchase_recomputes_from_the_ranked_table(trusted_report, tmp_path):
    md = write_report(trusted_report, tmp_path)["markdown"].read_text(encoding="utf-8")
    rec = _check_recommended_row(md, trusted_report.sentence)
    assert "1 x dgx-spark (128 GB)" in rec["candidate"]
    # the report spells the arithmetic out with the row's own figures
    check = next(line for line in md.splitlines() if line.startswith("How to check it"))
    assert f"= {rec['saves USD/mo']} USD a month" in check
    assert f"payback = {rec['net USD']} / {rec['saves USD/mo']} = {rec['payback mo']} months" in check


def test_the_causes_add_up_to_the_work_not_done_in_time(trusted_report, tmp_path):
    md = write_report(trusted_report, tmp_path)["markdown"].read_text(encoding="utf-8")
    tables = md_tables(md)
    causes = tables["Why work fails today"]
    facts = {r["fact"]: r["value"] for r in tables["Workload and current fleet"]}
    total = usd(facts["not done in time now"].split()[0])
    assert sum(usd(c["requests/mo"]) for c in causes) == pytest.approx(total, abs=len(causes) / 2)
    assert {c["cause"] for c in causes} == {"memory"}
    assert all("llama-3.1-70b q8_0" in c["why, in words"] for c in causes)


def test_a_replacements_resale_figure_is_shown_with_its_source(trusted_report, tmp_path):
    md = write_report(trusted_report, tmp_path)["markdown"].read_text(encoding="utf-8")
    tables = md_tables(md)
    (mini,) = tables["Resale figures"]
    assert mini["replaced node"] == "mini" and usd(mini["resale USD"]) == 450
    assert "Mac mini M4 16 GB" in mini["source"] and "as of 2025" in mini["source"]
    (row,) = [r for r in tables["Candidates (replayed in the twin)"] if r["candidate"].startswith("replace mini")]
    assert usd(row["net USD"]) == usd(row["price USD"]) - 450
