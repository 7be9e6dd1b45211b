"""The unit of work the optimizer places: one LLM step or one processor step."""

from __future__ import annotations

from dataclasses import dataclass

from heddle.models.ids import AccountId, ModelId, OwnerId, Privacy, TaskId, TaskKind, Tier


@dataclass(frozen=True, slots=True)
class Task:
    """One unit of work.

    Times are seconds on the caller's clock (virtual time in the twin, wall time live).
    `deadline_s` is absolute on that clock (None = no deadline).
    """

    id: TaskId
    kind: TaskKind
    arrival_s: float = 0.0
    model: ModelId | None = None  # LLM steps
    quant: str | None = None  # "q4_k_m", ...
    prompt_tokens: int = 0
    output_tokens: int = 0
    cpu_seconds: float = 0.0  # processor steps: seconds on one reference core
    memory_gb: float = 0.0  # processor steps: working memory
    privacy: Privacy = Privacy.PUBLIC
    owner: OwnerId | None = None
    deadline_s: float | None = None
    priority: int = 0  # higher first
    tier: Tier | None = None  # preference; None = any
    account: AccountId | None = None  # budget account charged for cloud spend
    pipeline_id: str | None = None
    stage: str | None = None
    depends_on: tuple[str, ...] = ()  # stage names of the same pipeline_id that must finish first
    needs: frozenset[str] = frozenset()  # features its target must offer (heddle.models.features)
