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
    # every task runs on the demo fleet, as docs/models.md says: the tier-only council members
    # go to the frontier API, billed to the council's account; the sensitive standard-tier
    # stage to a standard-tier open model at home
    assert metrics["completed"] == 12 and metrics["rejected"] == 0, metrics["rejected_reasons"]
    assert metrics["cloud_spend_by_account"].keys() == {"household"}
    assert metrics["privacy_violations"] == 0
    assert "warning" not in result.stderr


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


def test_trace_stats_head_check_and_advise_read_the_whole_documented_workload(tmp_path):
    # the tier-only stages (a tier, no model) included: a trace row holds them too
    path = tmp_path / "w.yaml"
    path.write_text(WORKLOAD)
    assert heddle("check", "--trace", str(path)).exit_code == 0
    stats = heddle("trace", "stats", str(path))
    assert stats.exit_code == 0, stats.stderr
    assert "12 / 4" in stats.stdout  # 12 rows, 4 workflows (two tasks, a pipeline, a council)
    assert "n/a (the rows span 30 s)" in stats.stdout  # all but one arrive at once: no rate per hour
    assert "(none) 11, alice 1" in stats.stdout  # tasks with no owner are counted, and say so
    head = heddle("trace", "head", str(path))
    assert head.exit_code == 0, head.stderr
    assert "rag-ingest/tag" in head.stdout and "strategy/r1_opus" in head.stdout
    # 30 s of arrivals is no rate to scale to a month: refused in one line naming the file
    refused = heddle("advise", "--trace", str(path), "--out", str(tmp_path / "advice"))
    assert_rejected(refused, str(path), "arrival_s", "last arrival is at 30 s", "at least 3600 s")
    assert not (tmp_path / "advice").exists()


def test_advise_reads_a_workload_yaml_whose_arrivals_span_hours(tmp_path):
    import yaml

    work = yaml.safe_load(WORKLOAD)
    items = [item for section in ("tasks", "pipelines", "councils") for item in work[section]]
    for k, item in enumerate(items):
        item["arrival_s"] = 1800.0 * k  # over 1.5 hours
    stage = next(s for s in work["pipelines"][0]["stages"] if s["name"] == "tag")
    stage.pop("model", None)  # a sensitive stage asking for the standard tier and naming no model
    path = tmp_path / "w.yaml"
    path.write_text(yaml.safe_dump(work))
    advice = heddle("advise", "--trace", str(path), "--out", str(tmp_path / "advice"), "--shortlist", "1",
                    "--workers", "1", "--json")
    assert advice.exit_code == 0, advice.stderr
    report = json.loads(advice.stdout)
    assert report["privacy_violations"] == 0
    # that stage: named as a cause, not a crash
    assert any("names no model" in c["sentence"] for c in report["causes"]), report["causes"]


def test_every_fleet_option_takes_shipped_names():
    for args in (["models", "fleet", "office"], ["check", "--fleet", "small"],
                 ["place", "--fleet", "demo", "--policy", "fast"]):
        result = heddle(*args)
        assert result.exit_code == 0, (args, result.stderr)


def test_the_live_commands_take_shipped_fleet_names_too(tmp_path):
    from heddle.cli.live import _load_terms

    fleet, path = _load_terms("office")  # what `heddle scheduler --fleet office` and `up --fleet office` apply
    assert fleet.name == "office" and path.is_file()
    # twin check gets past the fleet to the recording (an empty one: nothing to compare yet)
    result = heddle("twin", "check", "--fleet", "demo", "--recording", str(tmp_path))
    assert result.exit_code == 2 and "holds no tasks" in result.stderr and "fleet" not in result.stderr
    line = assert_rejected(heddle("scheduler", "--fleet", "demoo", "--nats", "nats://127.0.0.1:1"), "demoo")
    assert "shipped: demo, office, small" in line


def test_models_predict_defaults_the_quant_as_a_task_does():
    # a task naming no quantization gets q4_k_m (docs/models.md); a prediction is for the same
    result = heddle("models", "predict", "--device", "m4-max-40", "--model", "llama-3.1-8b", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["quant"] == "q4_k_m"
