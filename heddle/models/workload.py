"""Workload files: single tasks, pipelines and councils, validated into Tasks.

The file is YAML with three optional lists, `tasks`, `pipelines` and `councils`. Every error
names the file, the line and the field (or the stage) and what was expected. Deadlines in
the file are RELATIVE to the item's arrival; the Tasks built carry absolute deadlines
(arrival + relative), as the Task contract requires.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from heddle.models import catalog
from heddle.models.council import CouncilIn, expand_council
from heddle.models.errors import CycleError, UnknownIdError, WorkloadError
from heddle.models.fleet_types import Fleet
from heddle.models.ids import AccountId, ModelId, OwnerId, Privacy, TaskId, TaskKind, Tier
from heddle.models.pipeline import Pipeline, StageIn, build_pipeline, check_step_needs
from heddle.models.specs import ModelSpec
from heddle.models.task import Task
from heddle.models.yamlsource import YamlDoc, load_yaml, read_text, validate_doc

__all__ = ["DEFAULT_QUANT", "StepModelError", "Workload", "WorkloadFile", "default_quant", "load_workload",
           "parse_workload", "step_quant"]

DEFAULT_QUANT = "q4_k_m"
"""Quantization assumed when a file names a model but no quant (Ollama's default pull)."""


def default_quant(model: ModelSpec) -> str:
    """The quantization a task gets when its file names none: q4_k_m, else the smallest."""
    if DEFAULT_QUANT in model.bytes_per_weight:
        return DEFAULT_QUANT
    return min(model.bytes_per_weight, key=model.bytes_per_weight.__getitem__)


class _Submission(BaseModel):
    """Who submits an item, when, and under which constraints."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    arrival_s: Annotated[float, Field(ge=0)] = 0.0
    privacy: Privacy = Privacy.PUBLIC
    owner: str | None = None
    deadline_s: Annotated[float, Field(gt=0)] | None = None  # relative to arrival
    priority: int = 0
    account: str | None = None

    @model_validator(mode="after")
    def _personal_has_owner(self) -> _Submission:
        if self.privacy == Privacy.PERSONAL and not self.owner:
            raise ValueError("personal work needs an owner (whose nodes it may run on)")
        return self


class TaskIn(_Submission):
    id: str
    kind: Literal["llm", "processor"] = "llm"
    model: str | None = None
    quant: str | None = None
    prompt_tokens: Annotated[int, Field(ge=0)] = 0
    output_tokens: Annotated[int, Field(ge=0)] = 0
    cpu_seconds: Annotated[float, Field(ge=0)] = 0.0
    memory_gb: Annotated[float, Field(ge=0)] = 0.0
    tier: Tier | None = None

    @model_validator(mode="after")
    def _needs(self) -> TaskIn:
        check_step_needs(self.kind, self.model, self.tier, self.cpu_seconds, "task")
        return self


class PipelineIn(_Submission):
    id: str
    stages: list[StageIn] = Field(min_length=1)


class CouncilEntry(CouncilIn, _Submission):
    pass


class WorkloadFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tasks: list[TaskIn] = []
    pipelines: list[PipelineIn] = []
    councils: list[CouncilEntry] = []


@dataclass(frozen=True, slots=True)
class Workload:
    """Every Task of the file (sorted by arrival) and the pipelines they came from."""

    tasks: tuple[Task, ...]
    pipelines: dict[str, Pipeline]


class StepModelError(ValueError):
    """A step's model or quant the catalog does not have; `field` is "model" or "quant"."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def step_quant(model: str, quant: str | None) -> str | None:
    """The quantization a step naming `model` runs with: `quant`, else `default_quant`. A catalog
    API offer named as the model (claude-sonnet-4.6, as a gateway request names it) runs its
    own model on that offer: no quantization. StepModelError for an unknown model or a quant
    the model lacks (or any quant for an API offer)."""
    if model in catalog.api_offers():
        if quant is not None:
            raise StepModelError("quant", f"{model} is an API offer, which runs its own model: it takes no "
                                 f"quantization (got {quant!r}); leave quant out")
        return None
    try:
        spec = catalog.model(model)
    except UnknownIdError as exc:
        raise StepModelError("model", str(exc)) from None
    if quant is None:
        return default_quant(spec)
    if quant not in spec.bytes_per_weight:
        raise StepModelError("quant", f"{model} has no quantization {quant!r}; "
                             f"expected one of {', '.join(sorted(spec.bytes_per_weight))}")
    return quant


def _resolve_model(model: str | None, quant: str | None, doc: YamlDoc, path: tuple) -> str | None:
    """Check model and quant against the catalog; return the quant to use."""
    if model is None:
        return quant
    try:
        return step_quant(model, quant)
    except StepModelError as exc:
        raise WorkloadError(f"{doc.where(path + (exc.field,))}: {_dotted(path)}.{exc.field}: {exc}") from None


def _dotted(path: tuple) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else p) for i, p in enumerate(path))


def _submit(item: _Submission, tasks: list[Task]) -> list[Task]:
    """Stamp pipeline/council tasks with the item's submission fields."""
    deadline = None if item.deadline_s is None else item.arrival_s + item.deadline_s
    return [
        Task(**{
            **{f: getattr(t, f) for f in Task.__dataclass_fields__},
            "arrival_s": item.arrival_s, "privacy": item.privacy,
            "owner": OwnerId(item.owner) if item.owner else None, "deadline_s": deadline,
            "priority": item.priority, "account": AccountId(item.account) if item.account else None,
        })
        for t in tasks
    ]


def _build(parsed: WorkloadFile, doc: YamlDoc) -> Workload:
    tasks: list[Task] = []
    pipelines: dict[str, Pipeline] = {}
    for i, t in enumerate(parsed.tasks):
        quant = _resolve_model(t.model, t.quant, doc, ("tasks", i))
        tasks.append(Task(
            id=TaskId(t.id), kind=TaskKind(t.kind), arrival_s=t.arrival_s,
            model=ModelId(t.model) if t.model else None, quant=quant,
            prompt_tokens=t.prompt_tokens, output_tokens=t.output_tokens, cpu_seconds=t.cpu_seconds,
            memory_gb=t.memory_gb, privacy=t.privacy, owner=OwnerId(t.owner) if t.owner else None,
            deadline_s=None if t.deadline_s is None else t.arrival_s + t.deadline_s,
            priority=t.priority, tier=t.tier, account=AccountId(t.account) if t.account else None,
        ))
    groups: list[tuple[str, list]] = [("pipelines", parsed.pipelines), ("councils", parsed.councils)]
    for section, items in groups:
        for i, item in enumerate(items):
            here = (section, i)
            if item.id in pipelines:
                raise WorkloadError(f"{doc.where(here + ('id',))}: {_dotted(here)}.id: duplicate id {item.id!r}")
            try:
                if section == "pipelines":
                    stages = [
                        s.model_copy(update={"quant": _resolve_model(s.model, s.quant, doc, here + ("stages", j))})
                        for j, s in enumerate(item.stages)
                    ]
                    pipe = build_pipeline(item.id, stages)
                else:
                    for j, p in enumerate(item.participants):
                        _resolve_model(p.model, p.quant, doc, here + ("participants", j))
                    pipe = expand_council(item)
                    stages = [
                        s.model_copy(update={"quant": _resolve_model(s.model, s.quant, doc, here)})
                        for s in pipe.stages
                    ]
                    pipe = build_pipeline(item.id, stages)
            except CycleError as exc:
                raise CycleError(f"{doc.where(here)}: {_dotted(here)}: {exc}", exc.cycle) from None
            except WorkloadError as exc:
                if str(exc).startswith(doc.source):  # already names file and line
                    raise
                raise WorkloadError(f"{doc.where(here)}: {_dotted(here)}: {exc}") from None
            pipelines[item.id] = pipe
            tasks.extend(_submit(item, pipe.to_tasks()))
    ids = [t.id for t in tasks]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise WorkloadError(f"{doc.source}: task ids must be unique; repeated: {', '.join(dup)}")
    tasks.sort(key=lambda t: t.arrival_s)
    return Workload(tuple(tasks), pipelines)


def _check_accounts(parsed: WorkloadFile, doc: YamlDoc, fleet: Fleet, fleet_source: str) -> None:
    """Every item's budget account is one the fleet defines."""
    for section in ("tasks", "pipelines", "councils"):
        for i, item in enumerate(getattr(parsed, section)):
            problem = fleet.unknown_account(item.account) if item.account else None
            if problem:
                where = doc.where((section, i, "account"))
                raise WorkloadError(f"{where}: {section}[{i}].account: {problem}"
                                    + (f" (fleet file {fleet_source})" if fleet_source else ""))


def parse_workload(text: str, source: str = "<workload>", fleet: Fleet | None = None,
                   fleet_source: str = "") -> Workload:
    """Validate workload YAML `text`; `source` names it in errors. With `fleet` (read from
    `fleet_source`), every budget account must be one the fleet defines."""
    doc = load_yaml(text, source, WorkloadError)
    parsed = validate_doc(WorkloadFile, doc, WorkloadError, "tasks, pipelines and/or councils", allow_empty=True)
    if fleet is not None:
        _check_accounts(parsed, doc, fleet, fleet_source)
    return _build(parsed, doc)


def load_workload(path: str | Path, fleet: Fleet | None = None, fleet_source: str = "") -> Workload:
    """Read and validate a workload file (WorkloadError names file, line and field)."""
    p = Path(path)
    return parse_workload(read_text(p, WorkloadError, "workload file"), str(p), fleet, fleet_source)

