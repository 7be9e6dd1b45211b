"""heddle's worker YAML: loading (errors name file, line and field), the schema subset, and a
worker's step run on each backend against stand-in servers (prompt, caps, output_schema)."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from heddle.live import protocol as p
from heddle.live.agent.executors import ExecutionError, Progress, default_registry
from heddle.live.backends import ClaudeExecutor, OllamaExecutor, OpenAIExecutor
from heddle.live.backends.jsonschema_lite import schema_problems, violations
from heddle.live.backends.worker import WorkerError, load_worker, parse_worker
from heddle.live.control.submission import SubmissionError, load_submission
from heddle.models import catalog
from heddle.models.cost import api_cost_usd
from tests.live.llmstandin import Plan, StandIn, anthropic_stream, ollama_stream, openai_stream

pytestmark = pytest.mark.filterwarnings("error:The model 'claude-:DeprecationWarning")

SUMMARIZE = """\
name: summarize
worker_kind: llm
system_prompt: Summarize the text.
default_model_tier: standard
max_input_tokens: 200
max_output_tokens: 64
timeout_seconds: 30
input_schema:
  type: object
  required: [text]
  properties:
    text: {type: string, minLength: 1}
output_schema:
  type: object
  required: [summary, points]
  additionalProperties: false
  properties:
    summary: {type: string}
    points: {type: array, items: {type: string}, maxItems: 3}
"""


def test_a_worker_file_loads_with_every_field():
    w = parse_worker(SUMMARIZE, "summarize.yaml")
    assert (w.name, w.worker_kind, w.default_model_tier.value) == ("summarize", "llm", "standard")
    assert (w.max_input_tokens, w.max_output_tokens, w.timeout_seconds) == (200, 64, 30)
    assert w.output_schema["required"] == ["summary", "points"]


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("worker_kind: llm", "worker_kind: agent", r"summarize.yaml:2: worker_kind: Input should be 'llm' or 'processor'"),
    ("max_output_tokens: 64", "max_output_tokens: -1", r"summarize.yaml:6: max_output_tokens: .*greater than or equal to 1"),
    ("timeout_seconds: 30", "timeout_secs: 30", r"summarize.yaml:7: timeout_secs: unknown field"),
    ("system_prompt: Summarize the text.\n", "", r"summarize.yaml:1: .*llm worker needs system_prompt"),
    ("    summary: {type: string}", "    summary: {type: str}", r"summarize.yaml:18: output_schema.properties.summary.type: unknown type 'str'"),
    ("  additionalProperties: false", "  additional_properties: false", r"summarize.yaml:16: output_schema.additional_properties: unsupported keyword"),
    ("maxItems: 3", "maxItems: many", r"summarize.yaml:19: output_schema.properties.points.maxItems: expected a count"),
    ("    text: {type: string, minLength: 1}", "    text: {type: string, pattern: '(' }", r"summarize.yaml:12: input_schema.properties.text.pattern: not a regular expression"),
    ("name: summarize", "name: [summarize", r"summarize.yaml:\d+: not valid YAML"),
    ("default_model_tier: standard", "default_model_tier: premium", r"summarize.yaml:4: default_model_tier: Input should be 'local', 'standard' or 'frontier'"),
])
def test_bad_worker_files_are_refused_naming_file_line_and_field(old, new, expected):
    assert old in SUMMARIZE
    with pytest.raises(WorkerError, match=expected):
        parse_worker(SUMMARIZE.replace(old, new), "summarize.yaml")


def test_a_processor_worker_names_code_not_a_prompt(tmp_path):
    ok = parse_worker("name: chunk\nworker_kind: processor\nprocessor: tests.live.steps:echo_payload\n")
    assert ok.processor == "tests.live.steps:echo_payload"
    with pytest.raises(WorkerError, match="system_prompt: only for llm workers"):
        parse_worker("name: c\nworker_kind: processor\nprocessor: a.b:c\nsystem_prompt: hi\n")
    with pytest.raises(WorkerError, match=r"missing.yaml: cannot read worker file"):
        load_worker(tmp_path / "missing.yaml")


SCHEMA = parse_worker(SUMMARIZE).output_schema


@pytest.mark.parametrize(("value", "broken"), [
    ({"summary": "s", "points": ["a"]}, []),
    ({"summary": "s"}, ["$.points: required field is missing"]),
    ({"summary": 3, "points": []}, ["$.summary: expected string, got integer 3"]),
    ({"summary": "s", "points": ["a", 2]}, ["$.points[1]: expected string, got integer 2"]),
    ({"summary": "s", "points": ["a", "b", "c", "d"]}, ["$.points: expected at most 3 items, got 4"]),
    ({"summary": "s", "points": [], "mood": "happy"}, ["$.mood: field not allowed (expected only summary, points)"]),
    (["summary"], ["$: expected object, got array ['summary']"]),
    ({"summary": True, "points": []}, ["$.summary: expected string, got boolean True"]),
])
def test_output_schema_violations_name_the_place(value, broken):
    assert violations(value, SCHEMA) == broken


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
                    max_leaves=10))
def test_a_value_breaks_a_typed_schema_exactly_when_its_type_differs(value):
    for name in ("object", "array", "string", "boolean", "null"):
        ok = isinstance(value, {"object": dict, "array": list, "string": str, "boolean": bool,
                                "null": type(None)}[name])
        assert (violations(value, {"type": name}) == []) == ok
    assert violations(value, {}) == []  # the empty schema allows anything
    assert schema_problems({"type": "number", "minimum": 0}) == []


def assignment(options, payload, task_id="w1", **task) -> p.Assignment:
    return p.Assignment(
        sender="test", seq=1, sent_at=time.time(), node_id="n1", attempt=0, payload=payload,
        queued_at=time.time(), task=p.TaskSpec(id=task_id, kind="llm", **task),
        executor=p.ExecutorSpec(kind="llm", options=options),
    )


def words(text: str) -> list[str]:
    return [text[i:i + 7] for i in range(0, len(text), 7)]  # streamed in small pieces


GOOD = json.dumps({"summary": "short", "points": ["one", "two"]})
BAD = json.dumps({"summary": "short", "points": "one, two"})
BACKENDS = {
    "ollama": (lambda url: OllamaExecutor(url), ollama_stream),
    "openai": (lambda url: OpenAIExecutor(url), openai_stream),
    "claude": (lambda url: ClaudeExecutor("sk-test", url), anthropic_stream),
}


@pytest.fixture
def server():
    s = StandIn("llama3.1:8b-instruct-q4_K_M")
    yield s
    s.stop()


@pytest.mark.parametrize("backend", sorted(BACKENDS))
async def test_a_worker_step_sends_its_prompt_and_is_held_to_its_output_schema(backend, server):
    make, stream = BACKENDS[backend]
    worker = parse_worker(SUMMARIZE)
    task = ({"model": None, "tier": "standard", "account": "team"} if backend == "claude"
            else {"model": "llama-3.1-8b", "quant": "q4_k_m"})
    executor = make(server.url)
    model = "claude-sonnet-4-6" if backend == "claude" else server.model
    try:
        server.plans.append(Plan(chunks=stream(model, words=words("```json\n" + GOOD + "\n```"))))
        done = await executor.run(assignment(worker.options(), {"text": "A long text."}, **task), Progress())
        assert done["output"] == json.loads(GOOD)

        server.plans.append(Plan(chunks=stream(model, words=words(BAD))))
        with pytest.raises(ExecutionError, match=r"output_schema: worker summarize: \$.points: expected array, got string") as bad:
            await executor.run(assignment(worker.options(), {"text": "Again."}, **task), Progress())

        server.plans.append(Plan(chunks=stream(model, words=["Sure! Here is", " the summary."])))
        with pytest.raises(ExecutionError, match=r"output_schema: worker summarize: the output is not JSON"):
            await executor.run(assignment(worker.options(), {"text": "Again."}, **task), Progress())

        sent = len(server.requests)
        with pytest.raises(ExecutionError, match=r"the input breaks input_schema: \$.text: required field is missing"):
            await executor.run(assignment(worker.options(), {"body": "x"}, **task), Progress())
        with pytest.raises(ExecutionError, match=r"over max_input_tokens 200"):
            await executor.run(assignment(worker.options(), {"text": "word " * 400}, **task), Progress())
        assert len(server.requests) == sent  # refused before anything was sent
    finally:
        await executor.close()
    body = server.requests[0][2]
    system = body["system"] if backend == "claude" else body["messages"][0]["content"]
    assert system.startswith("Summarize the text.") and '"required": ["summary", "points"]' in system
    user = body["messages"][-1]["content"]
    assert json.loads(user) == {"text": "A long text."}
    cap = body.get("max_tokens") or body.get("options", {}).get("num_predict")
    assert cap == 64  # the worker's max_output_tokens
    if backend == "claude":  # the failed call was billed: its cost comes with the failure
        offer = catalog.offer("claude-sonnet-4.6")
        assert bad.value.result["cost_usd"] == pytest.approx(api_cost_usd(offer, 20, len(words(BAD))))


async def test_a_processor_worker_output_is_held_to_its_schema():
    worker = parse_worker("name: echo\nworker_kind: processor\nprocessor: tests.live.steps:echo_payload\n"
                          "output_schema: {type: object, required: [n], properties: {n: {type: integer}}}\n")
    registry = default_registry(1)
    spec = p.ExecutorSpec(kind="processor", target=worker.processor, options=worker.options())

    def processor_assignment(payload) -> p.Assignment:
        return p.Assignment(sender="t", seq=1, sent_at=time.time(), node_id="n1", attempt=0,
                            payload=payload, queued_at=time.time(), executor=spec,
                            task=p.TaskSpec(id="p1", kind="processor"))

    try:
        assert await registry.get("processor").run(processor_assignment({"n": 3}), Progress()) == {"n": 3}
        with pytest.raises(ExecutionError, match=r"output_schema: worker echo: \$.n: expected integer, got string"):
            await registry.get("processor").run(processor_assignment({"n": "3"}), Progress())
    finally:
        await registry.close()


def test_a_submission_names_worker_files_relative_to_itself(tmp_path):
    (tmp_path / "workers").mkdir()
    (tmp_path / "workers" / "summarize.yaml").write_text(SUMMARIZE)
    sub = tmp_path / "job.yaml"
    sub.write_text("tasks:\n  - {id: s1, kind: llm, tier: standard, prompt_tokens: 50, output_tokens: 40}\n"
                   "run:\n  s1: {worker: workers/summarize.yaml, payload: {text: hello}}\n")
    (task,) = load_submission(sub, "j1")
    assert task.executor.kind == "llm" and task.executor.options["worker"]["name"] == "summarize"
    assert task.timeout_s == 30 and task.task.tier.value == "standard"
    assert task.payload == {"text": "hello"}

    (tmp_path / "workers" / "summarize.yaml").write_text(SUMMARIZE.replace("timeout_seconds: 30", "timeout_seconds: soon"))
    with pytest.raises(SubmissionError, match=r"job.yaml:4: worker: .*summarize.yaml:7: timeout_seconds"):
        load_submission(sub, "j1")
    sub.write_text("tasks:\n  - {id: s1, kind: llm, tier: standard, prompt_tokens: 50, output_tokens: 40}\n"
                   "run:\n  s1: {payload: {text: hello}}\n")
    with pytest.raises(SubmissionError, match=r"job.yaml:4: run: expected kind .* or worker"):
        load_submission(sub, "j1")


async def test_the_worker_yaml_section_of_the_docs_runs_as_written(tmp_path, server):
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "live.md").read_text(encoding="utf-8")
    section = doc[doc.index("\n## Worker YAML\n"):]
    section = section[:section.index("\n## ", 5)]
    worker_text, submission_text = re.findall(r"```yaml\n(.*?)```", section, re.DOTALL)
    (tmp_path / "summarize.yaml").write_text(worker_text)
    (tmp_path / "job.yaml").write_text(submission_text)
    (task,) = load_submission(tmp_path / "job.yaml", "j1")
    assert task.timeout_s == 60 and task.executor.options["worker"]["name"] == "summarize"

    worker = load_worker(tmp_path / "summarize.yaml")
    ollama = OllamaExecutor(server.url)
    a = assignment(task.executor.options, task.payload, model="llama-3.1-8b", quant="q4_k_m")
    try:
        server.plans.append(Plan(chunks=ollama_stream(server.model, words=words(
            json.dumps({"summary": "Launch moved.", "key_points": "a, b"})))))
        with pytest.raises(ExecutionError) as failed:
            await ollama.run(a, Progress())
    finally:
        await ollama.close()
    said = re.search(r"e\.g\. `(output_schema: .*?)`", section.replace("\n", " ")).group(1)
    assert str(failed.value) == said
    assert worker.max_output_tokens == server.requests[-1][2]["options"]["num_predict"]

    (tmp_path / "summarize.yaml").write_text(worker_text.replace("timeout_seconds: 60", "timeout_seconds: soon"))
    said = re.search(r"naming the file, line and field \(`(.*?)`\)", section.replace("\n", " ")).group(1)
    with pytest.raises(SubmissionError) as refused:
        load_submission(tmp_path / "job.yaml", "j1")
    assert str(tmp_path / said) in str(refused.value)
