"""Submission files for `heddle submit`: the workload YAML of docs/models.md (tasks,
pipelines, councils) plus an optional top-level ``run:`` section saying what executes each
item on an agent.

    tasks:
      - {id: hello, kind: processor, cpu_seconds: 0.01}
    pipelines:
      - id: etl
        stages:
          - {name: fetch, worker_type: reader, kind: processor, cpu_seconds: 0.02}
          - {name: load, worker_type: writer, kind: processor, cpu_seconds: 0.02,
             input_mapping: {rows: fetch.output.rows}}
    run:
      hello: {kind: echo, payload: {text: hi}}            # a task id
      etl: {kind: sleep, payload: {seconds: 0.05}}        # every stage of a pipeline or council
      etl/load: {kind: echo, timeout_s: 5}                # one stage
      summarize: {worker: workers/summarize.yaml, payload: {text: ...}}  # a worker YAML

A ``worker:`` file (heddle.live.backends.worker; relative to the submission file) gives the
executor (``llm``, or ``processor`` with its target) and the timeout, and travels in ``options.worker`` so the agent checks the output against it.

Without a ``run`` entry a processor step runs ``burn`` for about its ``cpu_seconds`` (real,
measurable CPU work) and an LLM step runs the ``llm`` executor of the agent's backend. The
workload part is parsed by heddle.models (same errors, same line numbers: the ``run``
block is blanked out line for line before it is handed over).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from heddle.live.protocol import ExecutorSpec
from heddle.models import Task, WorkloadError, parse_workload
from heddle.models.generic import REFERENCE_BURN_ITERATIONS_PER_S
from heddle.models.yamlsource import format_validation_error, load_yaml, read_text

__all__ = ["RunIn", "SubmissionError", "SubmittedTask", "live_task_id", "parse_submission"]

RUN_KEY = "run"
BURN_ITERATIONS_PER_CPU_SECOND = REFERENCE_BURN_ITERATIONS_PER_S
"""Iterations of the agent's `burn` step per second of a reference core (the same figure turns
a measured burn rate into a generic device's per-core speed)."""
_TOP_LEVEL_KEY = re.compile(r"^[^\s#\-][^:]*:")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


class SubmissionError(WorkloadError):
    """A submission file (or message) was refused; the message names file, line and field.
    The CLI prints it; the control plane returns it in its reply."""


class RunIn(BaseModel):
    """What runs one item on an agent (the protocol's ExecutorSpec, written in a file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str | None = Field(None, min_length=1, max_length=64)  # None: "llm" or the worker's
    target: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    payload: Any = None
    timeout_s: float | None = Field(None, gt=0)
    worker: str | None = None  # a worker YAML file


def _with_worker(run: RunIn, task: Task, base_dir: Path, where: str) -> RunIn:
    """The run a ``worker:`` file completes (its own errors name its file and line)."""
    from heddle.live.backends.worker import WorkerError, load_worker

    path = base_dir / run.worker if run.worker else None
    if path is None:
        if run.kind is None:
            raise SubmissionError(f"{where}: run: expected kind (an executor) or worker (a worker YAML file)")
        return run
    try:
        worker = load_worker(path)
    except WorkerError as exc:
        raise SubmissionError(f"{where}: worker: {exc}") from None
    kind = run.kind or ("llm" if worker.worker_kind == "llm" else "processor")
    if (worker.worker_kind == "llm") != (task.kind.value == "llm"):
        raise SubmissionError(f"{where}: worker: {path} is a {worker.worker_kind} worker, "
                              f"the task is a {task.kind.value} step")
    run = run.model_copy(update={
        "kind": kind, "target": run.target or worker.processor,
        "options": {**run.options, **worker.options()},
        "timeout_s": run.timeout_s or worker.timeout_seconds,
    })
    return run


@dataclass(frozen=True, slots=True)
class SubmittedTask:
    """One task of a submission: the optimizer's Task (with its live id), the executor,
    the live ids it waits for, and its per-attempt timeout (None: the control plane's)."""

    task: Task
    executor: ExecutorSpec
    after: tuple[str, ...] = ()
    timeout_s: float | None = None
    payload: Any = None


def live_task_id(job_id: str, task_id: str) -> str:
    """The task's id in the live runtime: unique across jobs, one NATS subject token."""
    return f"{job_id}-{_UNSAFE.sub('_', task_id)}"


def _blank_run_block(text: str) -> str:
    """The text with the top-level ``run:`` block replaced by empty lines (same numbering)."""
    lines = text.splitlines(keepends=True)
    out, inside = [], False
    for line in lines:
        if _TOP_LEVEL_KEY.match(line):
            inside = line.split(":", 1)[0].strip() == RUN_KEY
        out.append("\n" if inside else line)
    return "".join(out)


def _default_run(task: Task) -> RunIn:
    if task.kind.value == "processor":
        return RunIn(kind="burn", payload={"iterations": round(task.cpu_seconds * BURN_ITERATIONS_PER_CPU_SECOND)})
    return RunIn(kind="llm")


def _runs(doc_data: Any, doc, source: str) -> dict[str, RunIn]:
    raw = doc_data.get(RUN_KEY) if isinstance(doc_data, dict) else None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise SubmissionError(f"{doc.where((RUN_KEY,))}: run: expected a mapping of item id: executor")
    runs = {}
    for item, spec in raw.items():
        try:
            runs[str(item)] = RunIn.model_validate(spec)
        except ValidationError as exc:
            raise SubmissionError(format_validation_error(exc, doc, (RUN_KEY, item))) from None
    return runs


def parse_submission(text: str, job_id: str, source: str = "<submission>",
                     base_dir: Path | None = None) -> list[SubmittedTask]:
    """Tasks of a submission with live ids ``<job>-<task id>``; SubmissionError names the place.
    ``worker:`` paths are relative to ``base_dir`` (None: the current directory)."""
    doc = load_yaml(text, source, SubmissionError)
    runs = _runs(doc.data, doc, source)
    try:
        workload = parse_workload(_blank_run_block(text) if runs or RUN_KEY in (doc.data or {}) else text, source)
    except WorkloadError as exc:
        raise SubmissionError(str(exc)) from None
    if not workload.tasks:
        raise SubmissionError(f"{source}: no tasks, pipelines or councils to run")
    known = {t.id for t in workload.tasks} | set(workload.pipelines)
    for item in runs:
        if item not in known:
            raise SubmissionError(
                f"{doc.where((RUN_KEY, item))}: run.{item}: no task, pipeline or stage with this "
                f"id; expected one of {', '.join(sorted(known)[:8])}"
            )
    seen: dict[str, str] = {}
    out = []
    for task in workload.tasks:
        live_id = live_task_id(job_id, task.id)
        if live_id in seen:
            raise SubmissionError(
                f"{source}: task ids {seen[live_id]!r} and {task.id!r} map to the same live id "
                f"{live_id!r}; expected ids that differ in letters, digits, '_' or '-'"
            )
        seen[live_id] = task.id
        run = runs.get(task.id) or (runs.get(task.pipeline_id) if task.pipeline_id else None)
        run = run or _default_run(task)
        item = task.id if task.id in runs else task.pipeline_id
        run = _with_worker(run, task, base_dir or Path(), doc.where((RUN_KEY, item or task.id)))
        executor = ExecutorSpec(kind=run.kind, target=run.target, options=run.options)
        after = tuple(
            live_task_id(job_id, f"{task.pipeline_id}/{stage}") for stage in task.depends_on
        )
        live_task = _with_id(task, live_id)
        out.append(SubmittedTask(live_task, executor, after, run.timeout_s, run.payload))
    return out


def _with_id(task: Task, live_id: str) -> Task:
    fields = {name: getattr(task, name) for name in Task.__dataclass_fields__}
    fields["id"] = live_id
    return Task(**fields)


def load_submission(path: Path, job_id: str) -> list[SubmittedTask]:
    """Read and parse a submission file (SubmissionError names file, line and field)."""
    return parse_submission(read_text(path, SubmissionError, "submission file"), job_id, str(path),
                            path.parent)
