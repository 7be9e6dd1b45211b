"""Task files for `heddle place`: a YAML (or JSON) list of tasks, validated with pydantic.

Parsing is pure (text in, Tasks out); the CLI reads the file. Every error names the source,
the line, the task index and the field, and says what was expected.

    - id: summarise-contract      # unique
      kind: llm                   # llm | processor
      model: llama-3.1-8b         # catalog model id, or a catalog API offer (claude-sonnet-4.6: runs there)
      quant: q4_k_m               # one of the model's quantizations (default: q4_k_m or the smallest;
                                  # none for an API offer)
      prompt_tokens: 3000
      output_tokens: 400
      privacy: sensitive          # public | sensitive | personal
      owner: alice
      deadline_s: 60              # absolute, on the same clock as --time (default 0)
      account: business           # budget account charged for cloud spend
      needs: [tools]              # features its target must run (heddle.models.features; default none)
"""

from __future__ import annotations

import difflib
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from heddle.models import (
    AccountId,
    Fleet,
    ModelId,
    OwnerId,
    Privacy,
    Task,
    TaskId,
    TaskKind,
    Tier,
    catalog,
)
from heddle.models.workload import StepModelError, step_quant
from heddle.models.yamlsource import format_validation_error, load_yaml
from heddle.optimizer.errors import TaskFileError

__all__ = ["TaskIn", "parse_tasks"]

NonNegative = Annotated[float, Field(ge=0)]


class TaskIn(BaseModel):
    """One task as written in a task file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(min_length=1, max_length=128)]
    kind: Literal["llm", "processor"] = "llm"
    arrival_s: float = 0.0
    model: str | None = None
    quant: str | None = None
    prompt_tokens: Annotated[int, Field(ge=0)] = 0
    output_tokens: Annotated[int, Field(ge=0)] = 0
    cpu_seconds: NonNegative = 0.0
    memory_gb: NonNegative = 0.0
    privacy: Privacy = Privacy.PUBLIC
    owner: str | None = None
    deadline_s: float | None = None
    priority: int = 0
    tier: Tier | None = None
    account: str | None = None
    pipeline_id: str | None = None
    stage: str | None = None
    needs: list[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=32)]] = []


_LIST = TypeAdapter(list[TaskIn])


def _quant(i: int, t: TaskIn, where) -> str | None:
    """The quant the task runs with (`step_quant`); TaskFileError naming the field if none fits."""
    if t.kind != "llm":
        return t.quant
    if t.model is None:
        raise TaskFileError(f"{where((i, 'model'))}: [{i}].model: required for an llm task ('{t.id}')")
    try:
        return step_quant(t.model, t.quant)
    except StepModelError as exc:
        message = str(exc)
        if exc.field == "model":
            names = [*catalog.models(), *catalog.api_offers()]
            close = difflib.get_close_matches(t.model, names, n=3)
            hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(sorted(names))}"
            message = f"unknown model {t.model!r}; {hint}"
        raise TaskFileError(f"{where((i, exc.field))}: [{i}].{exc.field}: {message}") from None


def parse_tasks(text: str, source: str = "<tasks>", fleet: Fleet | None = None, fleet_source: str = "") -> list[Task]:
    """Tasks from YAML/JSON text (a list of mappings); raises TaskFileError naming the place.

    With `fleet` (read from `fleet_source`), a task's budget account must be one the fleet
    defines."""
    doc = load_yaml(text, source, TaskFileError)
    if not isinstance(doc.data, list):
        raise TaskFileError(f"{source}: expected a list of tasks, got {type(doc.data).__name__}")
    try:
        parsed = _LIST.validate_python(doc.data)
    except ValidationError as exc:
        raise TaskFileError(format_validation_error(exc, doc)) from None
    seen: dict[str, int] = {}
    tasks = []
    for i, t in enumerate(parsed):
        if t.id in seen:
            raise TaskFileError(f"{doc.where((i, 'id'))}: [{i}].id: duplicate task id {t.id!r} "
                                f"(first used by [{seen[t.id]}]); expected unique ids")
        seen[t.id] = i
        quant = _quant(i, t, doc.where)
        problem = fleet.unknown_account(t.account) if fleet is not None and t.account else None
        if problem:
            raise TaskFileError(f"{doc.where((i, 'account'))}: [{i}].account: {problem}"
                                + (f" (fleet file {fleet_source})" if fleet_source else ""))
        tasks.append(Task(
            id=TaskId(t.id), kind=TaskKind(t.kind), arrival_s=t.arrival_s,
            model=ModelId(t.model) if t.model else None, quant=quant,
            prompt_tokens=t.prompt_tokens, output_tokens=t.output_tokens, cpu_seconds=t.cpu_seconds,
            memory_gb=t.memory_gb, privacy=t.privacy, owner=OwnerId(t.owner) if t.owner else None,
            deadline_s=t.deadline_s, priority=t.priority, tier=t.tier,
            account=AccountId(t.account) if t.account else None, pipeline_id=t.pipeline_id, stage=t.stage,
            needs=frozenset(t.needs),
        ))
    return tasks
