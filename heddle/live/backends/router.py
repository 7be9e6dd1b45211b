"""The ``llm`` kind: which configured backend runs an LLM task, and the backends built from
heddle's settings.

Choice, in order: ``options.backend`` when the step names one; a task whose model is an API
offer goes to Claude; otherwise the first local server that offers the task's (model, quant)
and runs the features it needs (heddle.live.features: an MLX model asked for tool calls goes
to a server that has them, when one offers the model too), in the order LM Studio, another
OpenAI-compatible server, Ollama, MLX in-process (the seed's "LM Studio wins");
a task that names no model but the standard or frontier tier goes to Claude; else the first
local server, whose failure reason says what it lacks. Personal and sensitive work never goes to Claude.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from heddle.live.agent.executors import ExecutionError, Executor, Progress
from heddle.live.backends.claude import ClaudeExecutor, claude_offer, step_tier
from heddle.live.backends.local import LocalServer
from heddle.live.backends.mlx import MlxExecutor
from heddle.live.features import payload_needs
from heddle.live.protocol import Assignment, ExecutorSpec
from heddle.models import catalog
from heddle.models.ids import Privacy, Tier

__all__ = ["LlmRouter"]


class LlmRouter(Executor):
    kinds = ("llm",)

    def __init__(self, local: Sequence[LocalServer | MlxExecutor], claude: ClaudeExecutor | None) -> None:
        self.local = list(local)  # in order of preference
        self.claude = claude
        self.by_name: dict[str, Executor] = {e.backend: e for e in self.local}
        if claude is not None:
            self.by_name["claude"] = claude

    def check(self, spec: ExecutorSpec) -> str | None:
        name = spec.options.get("backend")
        if name is not None and name not in self.by_name:
            return (f"llm: backend {name!r} is not configured on this node "
                    f"(has: {', '.join(self.by_name) or 'none'})")
        return None

    def choose(self, assignment: Assignment) -> Executor:
        """The backend that runs ``assignment``; ExecutionError says why there is none."""
        task, options = assignment.task, assignment.executor.options
        cloud_ok = self.claude is not None and task.privacy is Privacy.PUBLIC
        name = options.get("backend")
        if name is not None:
            chosen = self.by_name.get(name)
            if chosen is None:
                raise ExecutionError(f"llm: backend {name!r} is not configured on this node")
            if chosen is self.claude and not cloud_ok:
                raise ExecutionError(f"privacy: {task.privacy.value} work is never sent to a cloud API")
            return chosen
        if task.model is not None and task.model in catalog.offers():
            if not cloud_ok:
                raise ExecutionError(f"llm: {task.model} is a cloud API and "
                                     + ("no Claude key is configured" if self.claude is None
                                        else f"{task.privacy.value} work never leaves the fleet"))
            return self.claude
        if task.model is not None:
            offering = [s for s in self.local if s.offers(task.model, task.quant) is not None]
            if offering:  # the first that runs what the task needs (else the first: it says why)
                needs = payload_needs(assignment.payload)
                return next((s for s in offering if needs <= s.features), offering[0])
        wants_cloud = step_tier(assignment) in (Tier.STANDARD, Tier.FRONTIER) and claude_offer(assignment)
        if cloud_ok and (wants_cloud or not self.local):
            return self.claude
        if not self.local:
            raise ExecutionError("llm: no local LLM server is configured on this node"
                                 + ("" if self.claude is None else
                                    f" and {task.privacy.value} work never goes to Claude"))
        if task.model is None:  # any loaded model will do: the server that has one
            return next((s for s in self.local if any(m.loaded for m in s.inventory)), self.local[0])
        return self.local[0]

    def begin(self, assignment: Assignment, progress: Progress) -> None:
        if all(s.discovered_at is not None for s in self.local):  # else `run` asks them first
            try:
                chosen = self.choose(assignment)
            except ExecutionError:
                return  # `run` says why
            chosen.begin(assignment, progress)

    async def run(self, assignment: Assignment, progress: Progress) -> Any:
        # A server never asked yet cannot be chosen for the model it offers: ask it first.
        await asyncio.gather(*(s.refresh() for s in self.local if s.discovered_at is None))
        return await self.choose(assignment).run(assignment, progress)
