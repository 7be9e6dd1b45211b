"""Pipelines: stages whose dependencies are inferred from their `input_mapping`.

A stage's input_mapping maps its input names to where the value comes from: either the
pipeline's goal (`goal.context.x`) or another stage's output (`chunk.output.text`). The
second form makes the stage depend on `chunk`; an explicit `depends_on` adds more. Stages
are grouped into execution levels by a topological sort (a stage's level = 1 + the deepest
level it depends on), so stages of one level can run in parallel; a cycle is rejected
with the stage names along it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from heddle.models.errors import CycleError, WorkloadError
from heddle.models.ids import AccountId, ModelId, OwnerId, Privacy, TaskId, TaskKind, Tier
from heddle.models.task import Task

__all__ = [
    "GOAL",
    "Pipeline",
    "StageIn",
    "build_pipeline",
    "check_step_needs",
    "execution_levels",
    "find_cycle",
    "infer_dependencies",
]

GOAL = "goal"
"""First segment of an input_mapping value that reads the pipeline's own input."""

StageName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_\-]*$", max_length=64)]


def check_step_needs(kind: str, model: str | None, tier: Tier | None, cpu_seconds: float, what: str) -> None:
    """An LLM step needs a model (or a cloud tier to pick one); a processor step needs work."""
    if kind == "llm" and model is None and tier in (None, Tier.LOCAL):
        raise ValueError(f"an llm {what} needs a model, or a standard/frontier tier served by a cloud API")
    if kind == "processor" and cpu_seconds <= 0:
        raise ValueError(f"a processor {what} needs cpu_seconds > 0")


class StageIn(BaseModel):
    """One stage as written in a workload file (the seed's shape plus resource needs)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: StageName
    worker_type: str  # what kind of worker runs it, e.g. "chunker", "embedder", "summarizer"
    kind: Literal["llm", "processor"] = "llm"
    tier: Tier | None = None
    input_mapping: dict[str, str] = {}
    depends_on: list[StageName] = []
    model: str | None = None
    quant: str | None = None
    prompt_tokens: Annotated[int, Field(ge=0)] = 0
    output_tokens: Annotated[int, Field(ge=0)] = 0
    cpu_seconds: Annotated[float, Field(ge=0)] = 0.0
    memory_gb: Annotated[float, Field(ge=0)] = 0.0

    @model_validator(mode="after")
    def _needs(self) -> StageIn:
        if self.name == GOAL:
            raise ValueError(f"a stage cannot be named {GOAL!r} (reserved for the pipeline's input)")
        check_step_needs(self.kind, self.model, self.tier, self.cpu_seconds, "stage")
        return self


def _source_stage(value: str) -> str:
    return value.split(".", 1)[0]


def infer_dependencies(stages: Sequence[StageIn]) -> dict[str, frozenset[str]]:
    """Stage name -> the stages it needs: those its input_mapping reads + explicit depends_on.

    Raises WorkloadError naming the stage and input for a reference to an unknown stage, and
    for duplicate stage names.
    """
    names = [s.name for s in stages]
    known = set(names)
    if len(known) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise WorkloadError(f"stage names must be unique; repeated: {', '.join(dup)}")
    deps: dict[str, frozenset[str]] = {}
    for s in stages:
        need: set[str] = set()
        for key, value in s.input_mapping.items():
            src = _source_stage(value)
            if src == GOAL:
                continue
            if src not in known or "." not in value:
                raise WorkloadError(
                    f"stage {s.name!r}: input_mapping.{key} = {value!r}: expected '{GOAL}.<path>' or "
                    f"'<stage>.output.<path>' naming one of: {', '.join(names)}"
                )
            need.add(src)
        for d in s.depends_on:
            if d not in known:
                raise WorkloadError(f"stage {s.name!r}: depends_on names unknown stage {d!r}; stages: {', '.join(names)}")
            need.add(d)
        deps[s.name] = frozenset(need)
    return deps


def find_cycle(deps: Mapping[str, Iterable[str]]) -> list[str] | None:
    """One dependency cycle as [a, b, ..., a] (a needs b needs ... needs a), or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        path.append(n)
        for m in sorted(deps.get(n, ())):
            if state.get(m) == 1:
                return path[path.index(m):] + [m]
            if m not in state and (found := visit(m)):
                return found
        path.pop()
        state[n] = 2
        return None

    for n in sorted(deps):
        if n not in state and (found := visit(n)):
            return found
    return None


def execution_levels(deps: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Stages grouped by level (Kahn's topological sort); each level's names are sorted.

    Raises CycleError naming the stages of a cycle.
    """
    remaining = {n: set(d) for n, d in deps.items()}
    levels: list[list[str]] = []
    done: set[str] = set()
    while remaining:
        ready = sorted(n for n, d in remaining.items() if d <= done)
        if not ready:
            cycle = find_cycle(remaining) or sorted(remaining)
            raise CycleError(f"pipeline stages depend on each other in a cycle: {' -> '.join(cycle)}", cycle)
        levels.append(ready)
        done.update(ready)
        for n in ready:
            del remaining[n]
    return levels


@dataclass(frozen=True, slots=True)
class Pipeline:
    """A validated pipeline: stages, inferred dependencies and execution levels."""

    id: str
    stages: tuple[StageIn, ...]
    dependencies: dict[str, frozenset[str]]
    levels: tuple[tuple[str, ...], ...]

    def __hash__(self) -> int:
        return hash(self.id)

    def to_tasks(
        self,
        *,
        arrival_s: float = 0.0,
        privacy: Privacy = Privacy.PUBLIC,
        owner: OwnerId | None = None,
        deadline_s: float | None = None,
        priority: int = 0,
        account: AccountId | None = None,
    ) -> list[Task]:
        """One Task per stage, in level order; task ids are "<pipeline id>/<stage>"."""
        by_name = {s.name: s for s in self.stages}
        out = []
        for level in self.levels:
            for name in level:
                s = by_name[name]
                out.append(
                    Task(
                        id=TaskId(f"{self.id}/{name}"),
                        kind=TaskKind(s.kind),
                        arrival_s=arrival_s,
                        model=ModelId(s.model) if s.model else None,
                        quant=s.quant,
                        prompt_tokens=s.prompt_tokens,
                        output_tokens=s.output_tokens,
                        cpu_seconds=s.cpu_seconds,
                        memory_gb=s.memory_gb,
                        privacy=privacy,
                        owner=owner,
                        deadline_s=deadline_s,
                        priority=priority,
                        tier=s.tier,
                        account=account,
                        pipeline_id=self.id,
                        stage=name,
                        depends_on=tuple(sorted(self.dependencies[name])),
                    )
                )
        return out


def build_pipeline(pipeline_id: str, stages: Sequence[StageIn]) -> Pipeline:
    """Infer dependencies and levels; WorkloadError/CycleError on bad references or cycles."""
    if not stages:
        raise WorkloadError(f"pipeline {pipeline_id!r} has no stages")
    deps = infer_dependencies(stages)
    try:
        levels = execution_levels(deps)
    except CycleError as exc:
        raise CycleError(f"pipeline {pipeline_id!r}: {exc}", exc.cycle) from None
    return Pipeline(pipeline_id, tuple(stages), deps, tuple(tuple(level) for level in levels))
