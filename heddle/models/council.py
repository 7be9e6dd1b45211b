"""Councils: N participants deliberating over R rounds, expanded into pipeline stages.

In round r every participant reads every answer of round r-1 (so each stage of round r
depends on all stages of round r-1); an optional synthesizer reads the last round. The
expansion is an ordinary pipeline, so scheduling, privacy and deadlines work the same way.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from heddle.models.ids import Tier
from heddle.models.pipeline import Pipeline, StageIn, build_pipeline

__all__ = ["CouncilIn", "ParticipantIn", "expand_council"]


class ParticipantIn(BaseModel):
    """One council member: a model (local) or a tier served by a cloud API."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_\-]*$", max_length=48)]
    model: str | None = None
    quant: str | None = None
    tier: Tier | None = None


class CouncilIn(BaseModel):
    """A council as written in a workload file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    participants: list[ParticipantIn] = Field(min_length=1)
    rounds: Annotated[int, Field(ge=1, le=20)] = 2
    prompt_tokens: Annotated[int, Field(ge=0)] = 1000  # the question (+ context)
    output_tokens: Annotated[int, Field(ge=0)] = 400  # each answer
    synthesizer: ParticipantIn | None = None  # writes the final answer from the last round

    @model_validator(mode="after")
    def _unique(self) -> CouncilIn:
        names = [p.name for p in self.participants]
        if len(set(names)) != len(names):
            raise ValueError(f"participant names must be unique, got {names}")
        return self


def _stage(council: CouncilIn, p: ParticipantIn, name: str, prompt_tokens: int, needs: list[str]) -> StageIn:
    return StageIn(
        name=name,
        worker_type="council-member",
        kind="llm",
        tier=p.tier,
        model=p.model,
        quant=p.quant,
        prompt_tokens=prompt_tokens,
        output_tokens=council.output_tokens,
        input_mapping={"question": "goal.question"} | {f"answer_{n}": f"{n}.output.text" for n in needs},
    )


def expand_council(council: CouncilIn) -> Pipeline:
    """The council as a pipeline: stages "r<round>_<participant>" (+ "synthesis").

    A round's prompt grows by the previous round's answers, which every member reads.
    """
    stages: list[StageIn] = []
    previous: list[str] = []
    for r in range(1, council.rounds + 1):
        prompt = council.prompt_tokens + len(previous) * council.output_tokens
        current = []
        for p in council.participants:
            name = f"r{r}_{p.name}"
            stages.append(_stage(council, p, name, prompt, previous))
            current.append(name)
        previous = current
    if council.synthesizer is not None:
        prompt = council.prompt_tokens + len(previous) * council.output_tokens
        stages.append(_stage(council, council.synthesizer, "synthesis", prompt, previous))
    return build_pipeline(council.id, stages)
