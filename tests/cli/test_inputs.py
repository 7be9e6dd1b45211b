"""One input format people can write by hand, and shipped names wherever a fleet is taken."""

from __future__ import annotations

import json

from conftest import WORKLOAD, assert_rejected, heddle


def test_sim_replays_the_documented_workload_yaml(tmp_path):
    path = tmp_path / "my-workload.yaml"
    path.write_text(WORKLOAD)
    result = heddle("sim", "--trace", str(path), "--json")
    assert result.exit_code == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert metrics["arrived"] == 12  # 2 tasks, a 5-stage pipeline, a 2x2 council + synthesizer
    # the tier-only stages cannot be billed (no account): the preflight said so, with the count
    # and the stages that depend on them are rejected with them (their inputs never came)
    assert metrics["completed"] == 6 and metrics["rejected"] == 6
    assert "4 tasks prefer a tier that nothing in the fleet serves" in result.stderr


def test_place_takes_the_workload_yaml_and_a_shipped_fleet_name(tmp_path):
    path = tmp_path / "my-workload.yaml"
    path.write_text(WORKLOAD)
    result = heddle("place", "--fleet", "demo", "--tasks", str(path), "--json")
    assert result.exit_code == 0, result.stderr
    decisions = {t["id"]: t["decision"] for t in json.loads(result.stdout)["tasks"]}
    assert set(decisions) >= {"summarize-mail", "resize-photos"}
    assert decisions["summarize-mail"]["status"] == "placed"
    assert decisions["resize-photos"]["status"] == "placed"


def test_place_list_form_defaults_the_quant(tmp_path):
    path = tmp_path / "tasks.yaml"
    path.write_text("- {id: a, model: llama-3.1-8b, prompt_tokens: 100, output_tokens: 10}\n")
    result = heddle("place", "--fleet", "office", "--tasks", str(path), "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["tasks"][0]["decision"]["status"] == "placed"


def test_trace_stats_and_check_read_the_workload_yaml(tmp_path):
    path = tmp_path / "w.yaml"
    path.write_text(WORKLOAD)
    assert heddle("check", "--trace", str(path)).exit_code == 0
    # a trace row needs a model: the tier-only stages are named, and where the file does work
    line = assert_rejected(heddle("trace", "stats", str(path)), "rag-ingest/tag", "heddle sim")
    assert "no model" in line
    with_models = tmp_path / "models.yaml"
    with_models.write_text(WORKLOAD.split("      - {name: tag")[0])  # the tasks, the first 3 stages
    stats = heddle("trace", "stats", str(with_models))
    assert stats.exit_code == 0, stats.stderr
    assert "5 / 3" in stats.stdout  # 5 rows, 3 workflows (two tasks and one pipeline)


def test_every_fleet_option_takes_shipped_names():
    for args in (["models", "fleet", "office"], ["check", "--fleet", "small"],
                 ["place", "--fleet", "demo", "--policy", "fast"]):
        result = heddle(*args)
        assert result.exit_code == 0, (args, result.stderr)
