"""Workload files: tasks, pipelines and councils become Tasks; bad input names line and field."""

from pathlib import Path

import pytest

from heddle.models.errors import CycleError, WorkloadError
from heddle.models.ids import Privacy, TaskKind
from heddle.models.workload import load_workload, parse_workload

EXAMPLE = """\
tasks:
  - id: summarize-mail
    model: llama-3.1-8b
    prompt_tokens: 3000
    output_tokens: 300
    privacy: personal
    owner: alice
    arrival_s: 4
    deadline_s: 60
  - id: resize-photos
    kind: processor
    cpu_seconds: 120
    memory_gb: 2
pipelines:
  - id: rag-ingest
    arrival_s: 10
    privacy: sensitive
    deadline_s: 900
    account: business
    stages:
      - {name: ingest, worker_type: reader, kind: processor, cpu_seconds: 5, input_mapping: {path: goal.context.folder}}
      - {name: chunk, worker_type: chunker, model: qwen2.5-7b, prompt_tokens: 4000, output_tokens: 800, input_mapping: {text: ingest.output.text}}
      - {name: embed, worker_type: embedder, model: nomic-embed-text-v1.5, prompt_tokens: 4000, input_mapping: {chunks: chunk.output.chunks}}
      - {name: store, worker_type: writer, kind: processor, cpu_seconds: 1, input_mapping: {vectors: embed.output.vectors}}
councils:
  - id: strategy
    arrival_s: 20
    rounds: 2
    participants:
      - {name: local, model: gpt-oss-20b}
      - {name: opus, tier: frontier}
"""


def line_of(text, needle):
    return text[: text.index(needle)].count("\n") + 1


def test_example_builds_tasks_with_absolute_deadlines(tmp_path: Path):
    path = tmp_path / "w.yaml"
    path.write_text(EXAMPLE)
    w = load_workload(path)
    by_id = {t.id: t for t in w.tasks}
    mail = by_id["summarize-mail"]
    assert mail.deadline_s == 64 and mail.quant == "q4_k_m" and mail.privacy == Privacy.PERSONAL
    assert by_id["resize-photos"].kind == TaskKind.PROCESSOR
    store = by_id["rag-ingest/store"]
    assert store.depends_on == ("embed",) and store.deadline_s == 910 and store.account == "business"
    assert store.privacy == Privacy.SENSITIVE and store.arrival_s == 10
    assert by_id["rag-ingest/embed"].quant == "q8_0"  # the embedding model ships f16/q8_0 only
    assert by_id["strategy/r2_opus"].depends_on == ("r1_local", "r1_opus")
    assert by_id["strategy/r1_local"].quant == "mxfp4"
    assert [t.arrival_s for t in w.tasks] == sorted(t.arrival_s for t in w.tasks)
    assert w.pipelines["rag-ingest"].levels[0] == ("ingest",)


@pytest.mark.parametrize(
    "old,new,needle,expect",
    [
        ("model: llama-3.1-8b", "model: llama-3.1-9b", "llama-3.1-9b", r"tasks\[0\]\.model: unknown model id"),
        ("    owner: alice\n", "", "- id: summarize-mail", r"tasks\[0\]: .*personal work needs an owner"),
        ("cpu_seconds: 120", "cpu_seconds: 0", "- id: resize-photos", r"tasks\[1\]: .*cpu_seconds > 0"),
        ("model: gpt-oss-20b}", "model: gpt-oss-20b, quant: q4_0}", "quant: q4_0", r"councils\[0\]\.participants\[0\]\.quant: gpt-oss-20b has no quantization 'q4_0'"),
        ("{text: ingest.output.text}", "{text: ingset.output.text}", "- id: rag-ingest", r"pipelines\[0\]: stage 'chunk': input_mapping\.text = 'ingset\.output\.text'"),
        ("{path: goal.context.folder}", "{path: goal.context.folder, v: store.output.ok}", "- id: rag-ingest", r"pipelines\[0\]: pipeline 'rag-ingest': .*cycle: chunk -> ingest -> store -> embed -> chunk"),
        ("rounds: 2", "rounds: 0", "rounds: 0", r"councils\[0\]\.rounds: Input should be greater than or equal to 1"),
        ("worker_type: writer,", "worker_typ: writer,", "worker_typ:", r"pipelines\[0\]\.stages\[3\]\.worker_typ: unknown field"),
    ],
)
def test_bad_workload_names_line_and_field(old, new, needle, expect):
    text = EXAMPLE.replace(old, new, 1)
    assert text != EXAMPLE
    with pytest.raises(WorkloadError, match=rf"(?m)^w\.yaml:{line_of(text, needle)}: {expect}"):
        parse_workload(text, "w.yaml")


def test_cycle_error_carries_the_stage_names():
    text = EXAMPLE.replace("{path: goal.context.folder}", "{path: chunk.output.x}", 1)
    with pytest.raises(CycleError) as info:
        parse_workload(text, "w.yaml")
    assert info.value.cycle == ["chunk", "ingest", "chunk"]


def test_duplicate_ids_rejected():
    text = EXAMPLE.replace("id: strategy", "id: rag-ingest", 1)
    with pytest.raises(WorkloadError, match="duplicate id 'rag-ingest'"):
        parse_workload(text, "w.yaml")


def test_empty_file_is_an_empty_workload_and_junk_is_an_error(tmp_path):
    assert parse_workload("", "e.yaml").tasks == ()
    with pytest.raises(WorkloadError, match="expected a mapping"):
        parse_workload("- 1\n", "e.yaml")
    with pytest.raises(WorkloadError, match="cannot read"):
        load_workload(tmp_path / "missing.yaml")


def test_a_budget_account_the_fleet_does_not_define_is_an_error_naming_file_and_field(tmp_path: Path):
    from heddle.models.fleet import load_fleet, shipped_fleet_path

    fleet_path = shipped_fleet_path()
    fleet = load_fleet(fleet_path)
    text = ("tasks:\n  - {id: a, model: llama-3.1-8b, prompt_tokens: 10, account: business}\n"
            "pipelines:\n  - id: p\n    account: marketing\n    stages:\n"
            "      - {name: s, worker_type: w, model: llama-3.1-8b, prompt_tokens: 10}\n")
    path = tmp_path / "work.yaml"
    path.write_text(text)
    assert len(load_workload(path).tasks) == 2  # without a fleet the account is not checked
    with pytest.raises(WorkloadError) as err:
        load_workload(path, fleet, str(fleet_path))
    message = str(err.value)
    assert "work.yaml:5" in message and "pipelines[0].account" in message
    assert "'marketing'" in message and "business, household" in message and str(fleet_path) in message
    good = text.replace("marketing", "household")
    assert len(parse_workload(good, "good.yaml", fleet).tasks) == 2
