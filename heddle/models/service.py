"""Service time of one task on one node: what the twin's node process gives a step it starts.

`perf.processor_seconds` for a processor step; load (unless resident) + prefill + decode from
`perf.llm_step` for an LLM step; both divided by the node's speed factor. The live control
plane uses it for its shadow predictions (at placement: start now, finish after this), so a
drift between the twin and the cluster shows without running anything;
tests/models/test_service.py holds it equal to the twin's own records.
"""

from __future__ import annotations

from dataclasses import dataclass

from heddle.models import perf
from heddle.models.catalog import model as model_spec
from heddle.models.fleet_types import Node
from heddle.models.ids import TaskKind
from heddle.models.task import Task
from heddle.models.workload import default_quant

__all__ = ["ServiceTime", "service_time"]


@dataclass(frozen=True, slots=True)
class ServiceTime:
    """Seconds from the start of a step to its first token and to its end."""

    first_token_s: float
    service_s: float


def service_time(node: Node, task: Task, *, speed_factor: float = 1.0, resident: bool = True,
            batch: int = 1) -> ServiceTime:
    """The twin's service time of `task` started on `node` now (`batch`: tasks running
    there with it, this one included; `resident`: its model is already loaded).

    Raises KeyError for a model the catalog does not know."""
    sf = speed_factor or 1.0
    if task.kind is not TaskKind.LLM:
        service = perf.processor_seconds(node.device, task.cpu_seconds) / sf
        return ServiceTime(service, service)
    spec = model_spec(str(task.model))
    step = perf.llm_step(node.device, spec, task.quant or default_quant(spec), task.prompt_tokens,
                         task.output_tokens, resident=resident, batch=batch)
    first = (step.load_s + step.prefill_s) / sf
    return ServiceTime(first, first + step.decode_s / sf)
