"""heddle's worker YAML: one step defined in a file (the seed's "steps are called workers").

    name: summarize
    worker_kind: llm                 # llm | processor
    system_prompt: Summarize the text. Answer in JSON.
    default_model_tier: local        # local | standard | frontier (when the task names none)
    max_input_tokens: 4000
    max_output_tokens: 400
    timeout_seconds: 60
    input_schema: {type: object, required: [text], properties: {text: {type: string}}}
    output_schema:
      type: object
      required: [summary]
      properties: {summary: {type: string}, key_points: {type: array, items: {type: string}}}

A processor worker names its code instead of a prompt: ``processor: package.module:function``.
`load_worker` reports a bad file as ``file:line: field: what was expected`` (schema keywords
included, at their own line). A submission's ``run:`` entry names the file (``worker:``); the
definition travels in the assignment (``options.worker``), so the agent needs no file. On the
agent, the LLM backends send ``system_prompt`` (with the output schema appended), render the
payload as the user message, cap the output at ``max_output_tokens`` and refuse a prompt above
``max_input_tokens``; a result that breaks ``output_schema`` fails the attempt with the reason
(and its cost, when the call was billed).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from heddle.live.agent.executors import ExecutionError
from heddle.live.backends.jsonschema_lite import schema_problems, violations
from heddle.models.errors import ModelsError
from heddle.models.ids import Tier
from heddle.models.yamlsource import load_yaml, read_text, validate_doc

__all__ = [
    "CHARS_PER_TOKEN",
    "WorkerDef",
    "WorkerError",
    "check_output",
    "check_processor_output",
    "load_worker",
    "parse_worker",
    "render_input",
    "system_prompt",
    "worker_from_options",
]

CHARS_PER_TOKEN = 4
"""English text runs about 4 characters a token in the usual tokenizers (Llama, Qwen, Claude);
used to judge ``max_input_tokens`` before a prompt is sent (the server counts exactly after)."""
_IMPORT_PATH = r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$"
_FENCE = re.compile(r"^```[A-Za-z]*\s*\n(.*?)\n?```\s*$", re.DOTALL)


class WorkerError(ModelsError, ValueError):
    """A worker definition was refused: the message names the file, line and field (or the
    assignment option). The CLI prints it; the agent fails the attempt with it."""


class WorkerDef(BaseModel):
    """One worker file, validated. Schemas are checked by `schema_problems` as well."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$", max_length=128)]
    worker_kind: Literal["llm", "processor"]
    description: str | None = None
    system_prompt: Annotated[str, Field(min_length=1)] | None = None
    default_model_tier: Tier | None = None
    processor: Annotated[str, Field(pattern=_IMPORT_PATH)] | None = None
    max_input_tokens: Annotated[int, Field(ge=1)] | None = None
    max_output_tokens: Annotated[int, Field(ge=1)] | None = None
    timeout_seconds: Annotated[float, Field(gt=0)] | None = None
    input_schema: dict[str, Any] | None = None
    output_schema: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _kind_fields(self) -> WorkerDef:
        if self.worker_kind == "llm":
            if self.system_prompt is None:
                raise ValueError("an llm worker needs system_prompt (the step's instructions)")
            if self.processor is not None:
                raise ValueError("processor: only a processor worker names code; this is an llm worker")
        else:
            if self.processor is None:
                raise ValueError("a processor worker needs processor: package.module:function")
            llm_only = [f for f in ("system_prompt", "default_model_tier", "max_input_tokens",
                                    "max_output_tokens") if getattr(self, f) is not None]
            if llm_only:
                raise ValueError(f"{', '.join(llm_only)}: only for llm workers; this is a processor worker")
        return self

    def schema_errors(self) -> list[tuple[tuple[str | int, ...], str]]:
        out = []
        for name in ("input_schema", "output_schema"):
            schema = getattr(self, name)
            if schema is not None:
                out += [((name, *path), msg) for path, msg in schema_problems(schema)]
        return out

    def options(self) -> dict[str, Any]:
        """The definition as assignment options (``{"worker": {...}}``), JSON-ready."""
        return {"worker": self.model_dump(mode="json", exclude_none=True)}


def _dotted(path: tuple[str | int, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else str(p))
                   for i, p in enumerate(path))


def parse_worker(text: str, source: str = "<worker>") -> WorkerDef:
    """A worker from YAML text; WorkerError names ``source:line: field`` and what was expected."""
    doc = load_yaml(text, source, WorkerError)
    worker = validate_doc(WorkerDef, doc, WorkerError, "a worker definition (name, worker_kind, ...)")
    problems = worker.schema_errors()
    if problems:
        raise WorkerError("\n".join(f"{doc.where(path)}: {_dotted(path)}: {msg}" for path, msg in problems))
    return worker


def load_worker(path: Path) -> WorkerDef:
    return parse_worker(read_text(path, WorkerError, "worker file"), str(path))


def worker_from_options(options: dict[str, Any]) -> WorkerDef | None:
    """The worker an assignment carries in ``options.worker``, or None; WorkerError if bad."""
    raw = options.get("worker")
    if raw is None:
        return None
    try:
        worker = WorkerDef.model_validate(raw)
    except ValidationError as exc:
        e = exc.errors()[0]
        where = ".".join(str(p) for p in ("options", "worker", *e["loc"]))
        raise WorkerError(f"{where}: {e['msg']}") from None
    problems = worker.schema_errors()
    if problems:
        path, msg = problems[0]
        raise WorkerError(f"options.worker.{_dotted(path)}: {msg}")
    return worker


def render_input(worker: WorkerDef, payload: Any) -> str:
    """The user message for ``payload`` (text as it is, anything else as JSON), after the
    ``input_schema`` and ``max_input_tokens`` checks; WorkerError says what is wrong."""
    if worker.input_schema is not None:
        broken = violations(payload, worker.input_schema)
        if broken:
            raise WorkerError(f"worker {worker.name}: the input breaks input_schema: {'; '.join(broken[:5])}")
    text = payload if isinstance(payload, str) else json.dumps(payload, indent=2, ensure_ascii=False)
    if worker.max_input_tokens is not None:
        estimate = (len(text) + len(worker.system_prompt or "")) // CHARS_PER_TOKEN
        if estimate > worker.max_input_tokens:
            raise WorkerError(f"worker {worker.name}: the input is about {estimate} tokens "
                              f"({CHARS_PER_TOKEN} characters a token), over max_input_tokens "
                              f"{worker.max_input_tokens}")
    return text


def system_prompt(worker: WorkerDef) -> str | None:
    """The worker's instructions, with the output contract spelled out when it has one."""
    if worker.output_schema is None:
        return worker.system_prompt
    return (f"{worker.system_prompt}\n\nAnswer with one JSON value, and nothing else, that "
            f"matches this JSON Schema:\n{json.dumps(worker.output_schema)}")


def check_output(worker: WorkerDef | None, result: dict[str, Any]) -> dict[str, Any]:
    """An LLM ``result`` with its parsed ``output`` when the worker has an ``output_schema``;
    text that is not JSON or breaks the schema raises ExecutionError carrying ``result`` (a
    billed call's cost is reported with the failure). A fenced block (```json ... ```) counts
    as its content: models add fences even when told not to."""
    if worker is None or worker.output_schema is None:
        return result
    body = str(result.get("text") or "").strip()
    fenced = _FENCE.match(body)
    try:
        output = json.loads(fenced.group(1) if fenced else body)
    except json.JSONDecodeError as exc:
        raise ExecutionError(f"output_schema: worker {worker.name}: the output is not JSON "
                             f"({exc.msg} at character {exc.pos}): {body[:80]!r}",
                             result=result) from None
    _hold(worker, output, result)
    return {**result, "output": output}


def check_processor_output(options: dict[str, Any], output: Any) -> Any:
    """A processor step's return value, held to its worker's ``output_schema`` (if any)."""
    try:
        worker = worker_from_options(options)
    except WorkerError as exc:
        raise ExecutionError(str(exc)) from None
    if worker is not None and worker.output_schema is not None:
        _hold(worker, output, output)
    return output


def _hold(worker: WorkerDef, output: Any, result: Any) -> None:
    broken = violations(output, worker.output_schema or {})
    if broken:
        raise ExecutionError(f"output_schema: worker {worker.name}: {'; '.join(broken[:5])}",
                             result=result)
