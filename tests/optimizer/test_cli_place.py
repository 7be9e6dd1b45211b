"""`heddle place`: tables by default, a checkable JSON record, clear errors for bad files."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from heddle.cli.main import app

runner = CliRunner()


def test_place_explains_the_shipped_demo():
    result = runner.invoke(app, ["place"])
    assert result.exit_code == 0, result.output
    assert "contract-summary" in result.output and "privacy" in result.output


def test_json_record_lets_an_outsider_recompute_the_objective():
    result = runner.invoke(app, ["place", "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)  # warnings go to stderr
    assert record["status"] in ("OPTIMAL", "FEASIBLE")
    total = 0
    for task in record["tasks"]:
        decision = task["decision"]
        if decision["status"] == "placed":
            pair = next(p for p in task["pairs"] if p["target"] == decision["target"])
            assert pair["feasible"]
            total += pair["cost_micro_usd"]
        else:
            total += task["defer_cost_micro_usd"]
    total += len(record["evicting_nodes"]) * record["eviction_cost_micro_usd"]
    assert total / 1e6 == pytest.approx(record["objective_usd"], abs=1e-9)
    assert record["best_bound_usd"] <= record["objective_usd"] + 1e-9
    sensitive = [t for t in record["tasks"] if t["demands"]["privacy"] == "sensitive"]
    assert all(t["decision"]["target_kind"] != "cloud" for t in sensitive)


_TWO_TASKS = "- id: a\n  kind: llm\n  model: llama-3.1-8b\n  quant: q4_k_m\n  account: business\n" \
             "- id: b\n  kind: llm\n  model: llama-3.1-8b\n  quant: q4_k_m\n"


@pytest.mark.parametrize(("extra", "expected"), [
    ("  privacy: secret\n", ["tasks.yaml:10", "[1].privacy", "secret"]),
    # an account the fleet does not define: the task file, the field and the fleet file
    ("  account: marketing\n", ["tasks.yaml:10", "[1].account", "'marketing'", "business", "demo.yaml"]),
], ids=["bad value", "unknown budget account"])
def test_a_bad_task_file_names_the_line_index_and_field(tmp_path, extra, expected):
    bad = tmp_path / "tasks.yaml"
    bad.write_text(_TWO_TASKS + extra)
    result = runner.invoke(app, ["place", "--tasks", str(bad)])
    assert result.exit_code == 2
    assert all(part in result.output for part in expected), result.output


def test_an_unknown_model_is_named_with_suggestions(tmp_path):
    bad = tmp_path / "tasks.json"
    bad.write_text(json.dumps([{"id": "x", "kind": "llm", "model": "llama-3.1-8", "quant": "q4_k_m"}]))
    result = runner.invoke(app, ["place", "--tasks", str(bad)])
    assert result.exit_code == 2
    assert "[0].model" in result.output and "llama-3.1-8b" in result.output


def test_an_unknown_policy_lists_the_valid_ones():
    result = runner.invoke(app, ["place", "--policy", "random"])
    assert result.exit_code == 2
    assert "least-loaded" in result.output


def test_the_json_record_reports_the_placements_own_wall_time():
    record = json.loads(runner.invoke(app, ["place", "--json"]).stdout)  # preflight warnings: stderr
    assert record["wall_s"] > 0  # also when LP rounding or the fast path answers
    assert record["gap"] <= 0.01 + 1e-12


def test_a_task_needing_what_no_node_runs_is_rejected_saying_so(tmp_path):
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text("name: mixed\nnodes:\n"
                     "  - {id: mac, device: m4-pro-20, memory_gb: 24, owner: ann, features: [raw]}\n"
                     "  - {id: pc, device: m1-8, memory_gb: 16, owner: bob}\n")
    tasks = tmp_path / "tasks.yaml"
    tasks.write_text("- {id: call, model: llama-3.1-8b, prompt_tokens: 100, output_tokens: 20, needs: [tools]}\n"
                     "- {id: mine, model: llama-3.1-8b, prompt_tokens: 100, output_tokens: 20, needs: [tools],\n"
                     "   privacy: personal, owner: ann}\n")
    result = runner.invoke(app, ["place", "--fleet", str(fleet), "--tasks", str(tasks), "--json"])
    assert result.exit_code == 0, result.output
    decisions = {t["id"]: t["decision"] for t in json.loads(result.stdout)["tasks"]}
    assert decisions["call"]["target"] == "pc"  # the faster mac runs no tool calls
    assert decisions["mine"]["status"] == "rejected"
    assert "tools: mac does not run tool calls for llama-3.1-8b (1)" in decisions["mine"]["reason"]
