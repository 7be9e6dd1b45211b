"""One harness per LLM backend, so one contract suite runs against all of them: Ollama, the
OpenAI-compatible server and Claude over real HTTP to stand-in servers, MLX in-process with a
stand-in for the ``mlx_lm`` module that scripts faults and holds (the real mlx-lm runs a tiny
model in test_backends_mlx_real.py)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from heddle.live import protocol as p
from heddle.live.agent.executors import Executor
from heddle.live.backends import ClaudeExecutor, OllamaExecutor, OpenAIExecutor
from heddle.live.backends.mlx import MlxExecutor
from tests.live.llmstandin import Plan, StandIn, anthropic_stream, ollama_stream, openai_stream
from tests.live.mlxstandin import Script, StandInMlxLm

BACKENDS = ("ollama", "openai", "claude", "mlx")
MLX_MODEL = "mlx-community/Meta-Llama-3.1-8B-Instruct-4bit"
_STREAMS = {"ollama": ollama_stream, "openai": openai_stream, "claude": anthropic_stream}


@dataclass
class Harness:
    name: str
    executor: Executor
    server: StandIn | None = None
    lm: StandInMlxLm | None = None

    @property
    def task(self) -> dict[str, Any]:
        """Task fields this backend serves (Claude: a tier; MLX: its 4-bit model)."""
        if self.name == "claude":
            return {"model": None, "quant": None, "tier": "standard", "account": "team"}
        if self.name == "mlx":
            return {"model": "llama-3.1-8b", "quant": "q4_0"}
        return {"model": "llama-3.1-8b", "quant": "q4_k_m"}

    def script(self, words: list[str] | None = None, *, cut_after: int | None = None,
               hold: threading.Event | None = None, hold_at: int = 0) -> None:
        """The next completion: these words, cut after some, or held before one."""
        if self.lm is not None:
            self.lm.scripts.append(Script(**({"words": words} if words else {}), fail_after=cut_after,
                                          hold=hold, hold_at=hold_at))
            return
        model = "claude-sonnet-4-6" if self.name == "claude" else self.server.model
        stream = _STREAMS[self.name]
        chunks = stream(model, words=words) if words else stream(model)
        skip = 2 if self.name == "claude" else 0  # message_start and the block start come first
        self.server.plans.append(Plan(chunks=chunks, hold=hold, hold_at=hold_at + skip,
                                      cut_after=None if cut_after is None else cut_after + skip))

    def hold(self) -> threading.Event:
        event = threading.Event()
        if self.server is not None:
            self.server.holds.append(event)
        return event

    def sent(self) -> tuple[str | None, str, int]:
        """(system prompt, last user message, output cap) of the last completion asked for."""
        if self.lm is not None:
            call = self.lm.calls[-1]
            text = "".join(chr(c) for c in call["prompt"])
            system = text.partition("<|system|>")[2].partition("<|user|>")[0] or None
            user = text.rpartition("<|user|>")[2].removesuffix("<|assistant|>")
            return system, user, call["max_tokens"]
        body = self.server.requests[-1][2]
        messages = body["messages"]
        system = body.get("system") or next((m["content"] for m in messages if m["role"] == "system"), None)
        cap = body.get("max_tokens") or body.get("options", {}).get("num_predict")
        return system, messages[-1]["content"], cap

    def calls(self) -> int:
        return len(self.lm.calls) if self.lm is not None else len(self.server.requests)


def harness(name: str) -> Harness:
    if name == "mlx":
        lm = StandInMlxLm()
        return Harness(name, MlxExecutor(MLX_MODEL, lm=lm), lm=lm)
    server = StandIn("llama3.1:8b-instruct-q4_K_M")
    executor = {"ollama": lambda: OllamaExecutor(server.url), "openai": lambda: OpenAIExecutor(server.url),
                "claude": lambda: ClaudeExecutor("sk-test", server.url)}[name]()
    return Harness(name, executor, server=server)


async def close(h: Harness) -> None:
    await h.executor.close()
    if h.server is not None:
        h.server.stop()


def assignment(task_id: str = "t1", payload: Any = None, options: dict | None = None,
               kind: str = "llm", **task: Any) -> p.Assignment:
    return p.Assignment(
        sender="test", seq=1, sent_at=time.time(), node_id="n1", attempt=0, payload=payload,
        queued_at=time.time(), task=p.TaskSpec(id=task_id, kind="llm", **task),
        executor=p.ExecutorSpec(kind=kind, options=options or {}),
    )
