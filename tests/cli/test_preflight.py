"""Silent pitfalls become warnings (with a count and the fix) or errors, before anything runs."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import heddle

from heddle.models import Task, TaskId, TaskKind
from heddle.models.fleet import parse_fleet
from heddle.models.preflight import WORK_COLUMNS, preflight, work_frame

FLEET = """\
name: home
cloud_offers: [claude-haiku-4.5, claude-opus-4.6]
budgets:
  family: {limit_usd: 20}
nodes:
  - {id: mini, device: m4-10, memory_gb: 24, owner: dana, reserved_memory_gb: 6}
  - {id: studio, device: m2-ultra-76, memory_gb: 192, owner: erin, trusted_owners: [dana]}
"""


def _work(*rows: dict) -> pd.DataFrame:
    base = {"kind": "llm", "model": "llama-3.1-8b", "quant": "", "prompt_tokens": 500, "output_tokens": 100,
            "memory_gb": 0.0, "privacy": "public", "owner": "dana", "tier": "", "account": "family"}
    return pd.DataFrame([{**base, **r} for r in rows], columns=list(WORK_COLUMNS))


def _codes(findings) -> dict[str, int]:
    return {f.code: f.count for f in findings}


@pytest.fixture
def fleet():
    return parse_fleet(FLEET, "home.yaml")


def test_clean_work_has_no_findings(fleet):
    assert preflight(fleet, _work({}, {"privacy": "personal"}, {"tier": "frontier"})) == []


def test_each_pitfall_is_counted_once_with_a_fix(fleet):
    work = _work(
        {"model": "gpt-5"}, {"model": "gpt-5"},                      # unknown model: error
        {"quant": "q2_k"},                                           # a quant the model lacks
        {"prompt_tokens": 200_000},                                  # beyond the 131k context
        {"privacy": "personal", "owner": "frank"},                   # no node frank may use
        {"account": "office"}, {"account": ""},                      # no budget for these accounts
        {"tier": "standard", "privacy": "sensitive"},                # nothing serves standard locally
        {"model": "llama-3.1-70b", "quant": "f16", "privacy": "sensitive"},  # 141 GB > nothing? fits 192
        {"model": "gpt-oss-120b", "quant": "f16", "privacy": "sensitive"},   # 234 GB: fits nowhere
    )
    findings = preflight(fleet, work)
    codes = _codes(findings)
    assert codes == {"unknown-model": 2, "unknown-quant": 1, "over-context": 1, "owner-without-node": 1,
                     "no-budget": 2, "tier-unserved": 1, "fits-nowhere": 1}
    assert [f.level for f in findings if f.code.startswith("unknown")] == ["error", "error"]
    unknown = next(f for f in findings if f.code == "unknown-model")
    assert "did you mean" in unknown.fix
    assert all(f.fix for f in findings)
    budget = next(f for f in findings if f.code == "no-budget")
    assert "office" in budget.message and "family" in budget.message


def test_one_task_reads_in_the_singular_and_two_in_the_plural(fleet):
    one = preflight(fleet, _work({"prompt_tokens": 200_000}, {"quant": "q2_k"}))
    assert [f.message.split(":")[0] for f in one] == [
        "1 task names a quantization their model lacks",
        "1 task has prompt + output tokens beyond their model's context window"]
    two = preflight(fleet, _work({"prompt_tokens": 200_000}, {"prompt_tokens": 300_000}))
    assert two[0].message.startswith("2 tasks have prompt + output tokens")
    # the findings written outside that helper too (docs/models.md's example had "1 public tasks are")
    single = preflight(fleet, _work({"model": "gpt-5"}, {"account": "office"}))
    assert single[0].message.startswith(
        "1 task names model 'gpt-5', which the catalog does not know: it would be rejected.")
    assert single[1].message.startswith("1 public task is charged to accounts the fleet has no budget")
    assert single[1].message.endswith(", so it can never burst: it waits for local nodes, and is rejected "
                                      "if no node can run it.")
    bare = parse_fleet(FLEET.replace("budgets:\n  family: {limit_usd: 20}\n", ""), "nobudget.yaml")
    (unbilled,) = preflight(bare, _work({}))
    assert "so 1 public task can never be billed to the cloud: it waits" in unbilled.message


def test_a_fleet_with_offers_and_no_budgets_says_so():
    fleet = parse_fleet(FLEET.replace("budgets:\n  family: {limit_usd: 20}\n", ""), "nobudget.yaml")
    finding = next(f for f in preflight(fleet, _work({}, {}, {"privacy": "sensitive"})) if f.code == "no-budget")
    assert finding.count == 2 and "no budgets" in finding.message


def test_work_frame_reads_tasks_like_a_trace(fleet):
    tasks = [Task(id=TaskId("a"), kind=TaskKind.LLM, model="gpt-5", quant="q4_k_m", prompt_tokens=1, output_tokens=1, account="family")]
    assert _codes(preflight(fleet, work_frame(tasks))) == {"unknown-model": 1}


def test_heddle_check_prints_the_report_and_exits_by_level(tmp_path):
    fleet = tmp_path / "home.yaml"
    fleet.write_text(FLEET)
    clean = heddle("check", "--fleet", str(fleet), "--trace", "demo")
    assert clean.exit_code == 0  # warnings only
    assert "owner-without-node" not in clean.stderr and "personal tasks belong to owners" in clean.stderr
    assert "warning(s)" in clean.stdout
    assert heddle("check", "--fleet", str(fleet), "--trace", "demo", "--strict").exit_code == 1
    work = tmp_path / "w.yaml"
    work.write_text("tasks:\n  - {id: a, model: llama-3.1-8b, prompt_tokens: 10, account: family}\n")
    ok = heddle("check", "--fleet", str(fleet), "--trace", str(work))
    assert ok.exit_code == 0 and "no problems found" in ok.stdout


def test_sim_stops_on_an_unknown_model_and_warns_on_mass_rejection(tmp_path):
    work = tmp_path / "w.yaml"
    work.write_text("tasks:\n  - {id: a, model: llama-3.1-8b, prompt_tokens: 10}\n")
    trace = tmp_path / "t.htr"
    from heddle.traces import from_tasks, write_trace

    write_trace(from_tasks([Task(id=TaskId("a"), kind=TaskKind.LLM, model="gpt-5", quant="q4_k_m", prompt_tokens=9)]), trace)
    result = heddle("sim", "--trace", str(trace))
    assert result.exit_code == 2 and "gpt-5" in result.stderr and "simulated in" not in result.stdout
    fleet = tmp_path / "home.yaml"
    fleet.write_text(FLEET)
    mass = heddle("sim", "--fleet", str(fleet), "--policy", "fast")  # the demo's owners have no node here
    assert mass.exit_code == 0
    assert "were rejected" in mass.stderr and "cover only the rest" in mass.stderr


SONNET_FLEET = FLEET.replace("[claude-haiku-4.5, claude-opus-4.6]", "[claude-haiku-4.5, claude-sonnet-4.6]")


def _sonnet_trace(path, privacy: str = "public") -> None:
    """One recorded gateway request that named the API offer claude-sonnet-4.6 (no quant)."""
    from heddle.traces import from_tasks, write_trace

    write_trace(from_tasks([Task(id=TaskId("gw-1"), kind=TaskKind.LLM, model="claude-sonnet-4.6", quant=None,
                                 prompt_tokens=200, output_tokens=50, privacy=privacy, account="family")]), path)


def test_a_trace_row_naming_an_api_offer_replays_on_that_offer(tmp_path):
    import csv

    trace = tmp_path / "gw.htr"
    _sonnet_trace(trace)
    with_offer, without = tmp_path / "sonnet.yaml", tmp_path / "home.yaml"
    with_offer.write_text(SONNET_FLEET)
    without.write_text(FLEET)
    for policy in ("optimal", "fast"):
        ran = heddle("sim", "--fleet", str(with_offer), "--trace", str(trace), "--policy", policy,
                     "--out", str(tmp_path / policy))
        assert ran.exit_code == 0, ran.stderr
        assert "catalog does not know" not in ran.stderr
        (row,) = csv.DictReader((tmp_path / policy / "records.csv").open())
        assert (row["status"], row["target"]) == ("completed", "claude-sonnet-4.6"), row
        assert float(row["cost_usd"]) > 0
    gone = heddle("sim", "--fleet", str(without), "--trace", str(trace), "--out", str(tmp_path / "gone"))
    assert gone.exit_code == 0, gone.stderr
    assert "claude-sonnet-4.6" in gone.stderr and "does not list" in gone.stderr  # the preflight's warning
    (row,) = csv.DictReader((tmp_path / "gone" / "records.csv").open())
    assert row["status"] == "rejected", row  # the core's MODEL reason, naming the offer the fleet lacks
    assert "model: the API offer claude-sonnet-4.6 is not in this fleet" in row["reason"], row


def test_preflight_treats_a_task_naming_an_api_offer_as_cloud_work(fleet):
    sonnet = parse_fleet(SONNET_FLEET, "sonnet.yaml")
    offer = {"model": "claude-sonnet-4.6", "quant": ""}
    assert preflight(sonnet, _work(offer, {**offer, "tier": "standard"})) == []
    assert _codes(preflight(fleet, _work(offer))) == {"offer-not-in-fleet": 1}  # not unknown-model
    private = preflight(sonnet, _work({**offer, "privacy": "sensitive"}, {**offer, "privacy": "personal"}))
    assert _codes(private) == {"offer-not-public": 2}
    assert "privacy" in private[0].message
    assert _codes(preflight(sonnet, _work({**offer, "account": "office"}))) == {"no-budget": 1}
    assert _codes(preflight(sonnet, _work({**offer, "tier": "frontier"}))) == {"tier-unserved": 1}
    # an instance offer is no model name
    assert _codes(preflight(sonnet, _work({"model": "aws-g5.xlarge"}))) == {"unknown-model": 1}


def test_a_workload_or_task_file_naming_an_api_offer_loads_with_no_quant(tmp_path):
    from heddle.models.errors import WorkloadError
    from heddle.models.workload import parse_workload
    from heddle.optimizer.errors import TaskFileError
    from heddle.optimizer.taskfile import parse_tasks

    (task,) = parse_workload("tasks:\n  - {id: a, model: claude-sonnet-4.6, prompt_tokens: 10}\n").tasks
    assert (task.model, task.quant) == ("claude-sonnet-4.6", None)
    (task,) = parse_tasks("- {id: a, model: claude-sonnet-4.6, prompt_tokens: 10}\n")
    assert (task.model, task.quant) == ("claude-sonnet-4.6", None)
    with pytest.raises(WorkloadError, match=r"<workload>:2.*tasks\[0\]\.quant.*claude-sonnet-4.6"):
        parse_workload("tasks:\n  - {id: a, model: claude-sonnet-4.6, quant: q4_k_m}\n")
    with pytest.raises(TaskFileError, match=r"\[0\]\.quant.*claude-sonnet-4.6"):
        parse_tasks("- {id: a, model: claude-sonnet-4.6, quant: q4_k_m}\n")
    tasks = tmp_path / "tasks.yaml"
    tasks.write_text("- {id: a, model: claude-sonnet-4.6, prompt_tokens: 10, account: business}\n")
    placed = heddle("place", "--tasks", str(tasks))
    assert placed.exit_code == 0, placed.stderr
    assert "claude-sonnet-4.6" in placed.stdout
