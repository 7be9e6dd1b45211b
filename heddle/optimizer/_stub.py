"""PLACEHOLDER place(): earliest-finish local node that satisfies privacy and memory; else reject.

Replaced by the real optimizer. Exists so sim/ can be built against the contract meanwhile.
"""

from __future__ import annotations

from collections.abc import Sequence

from heddle.models import FleetState, NodeStatus, Privacy, Task, TaskKind
from heddle.models import perf
from heddle.models.catalog_stub import model_spec
from heddle.optimizer.placement import Decision, DecisionStatus, Placement, TargetKind


def place(state: FleetState, pending: Sequence[Task], policy: object = "optimal") -> Placement:
    decisions = []
    for task in pending:
        best = None
        for node in state.fleet.nodes:
            ns = state.nodes[node.id]
            if ns.status is not NodeStatus.ACTIVE:
                continue
            if task.privacy is Privacy.PERSONAL and not node.may_hold_personal_of(task.owner):
                continue
            if task.kind is TaskKind.LLM:
                spec = model_spec(task.model)
                need = spec.memory_gb(task.quant, task.prompt_tokens + task.output_tokens)
                if need > node.memory_gb - node.reserved_memory_gb:
                    continue
                secs = perf.llm_step(node.device, spec, task.quant, task.prompt_tokens, task.output_tokens).seconds
            else:
                secs = perf.processor_seconds(node.device, task.cpu_seconds)
            finish = ns.backlog_s + secs
            if best is None or finish < best[0]:
                best = (finish, node.id, secs, ns.backlog_s)
        if best is None:
            decisions.append(Decision(task.id, DecisionStatus.REJECTED, reason="no feasible node"))
        else:
            decisions.append(
                Decision(task.id, DecisionStatus.PLACED, best[1], TargetKind.NODE,
                         est_start_s=state.time_s + best[3], est_seconds=best[2])
            )
    return Placement(decisions, status="FEASIBLE", solver="stub")
