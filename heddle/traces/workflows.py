"""AI-workflow shapes as stage templates: single calls, pipelines and councils.

A template is the list of stages one workflow expands into (name, dependencies, role).
`expand()` turns N workflows of one template into columnar rows with numpy repeat/tile, so
synthesis never loops over rows in Python.

- single:   one LLM call.
- pipeline: chunk (processor) -> embed-0..k-1 (embedding model, in parallel)
            -> summarize (LLM, needs every embed) -> report (LLM).
- council:  P participants answer in R rounds; each round-r answer needs every answer of
            round r-1; a final verdict needs the last round.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

__all__ = ["Stage", "council_template", "expand", "pipeline_template", "single_template"]


@dataclass(frozen=True, slots=True)
class Stage:
    name: str
    depends_on: str  # comma-separated stage names, "" = none
    role: str  # "answer" | "chunk" | "embed" | "summarize" | "report" | "council" | "verdict"
    participant: int = 0  # council seat (chooses the model)


@cache
def single_template() -> tuple[Stage, ...]:
    return (Stage("", "", "answer"),)


@cache
def pipeline_template(fanout: int) -> tuple[Stage, ...]:
    embeds = tuple(Stage(f"embed-{i}", "chunk", "embed") for i in range(fanout))
    return (
        Stage("chunk", "", "chunk"),
        *embeds,
        Stage("summarize", ",".join(s.name for s in embeds), "summarize"),
        Stage("report", "summarize", "report"),
    )


@cache
def council_template(participants: int, rounds: int) -> tuple[Stage, ...]:
    stages: list[Stage] = []
    previous = ""
    for r in range(rounds):
        names = [f"r{r}-p{p}" for p in range(participants)]
        stages += [Stage(n, previous, "council", p) for p, n in enumerate(names)]
        previous = ",".join(names)
    stages.append(Stage("verdict", previous, "verdict", 0))
    return tuple(stages)


@dataclass(slots=True)
class Expanded:
    """Rows of N workflows sharing one template (arrays have one entry per row)."""

    workflow: np.ndarray  # index into the per-workflow arrays
    position: np.ndarray  # stage position inside the workflow (keeps stages in order)
    stage: np.ndarray  # object array of stage names
    depends_on: np.ndarray
    role: np.ndarray
    participant: np.ndarray


def expand(template: tuple[Stage, ...], workflows: np.ndarray) -> Expanded:
    """Rows for `workflows` (indices), each expanded into every stage of `template`."""
    k = len(template)
    n = len(workflows)
    return Expanded(
        workflow=np.repeat(workflows, k),
        position=np.tile(np.arange(k), n),
        stage=np.tile(np.array([s.name for s in template], dtype=object), n),
        depends_on=np.tile(np.array([s.depends_on for s in template], dtype=object), n),
        role=np.tile(np.array([s.role for s in template], dtype=object), n),
        participant=np.tile(np.array([s.participant for s in template]), n),
    )
