"""The executor interface and the processor executors.

An `Executor` runs one attempt of a task and returns its JSON result; the agent owns the
slot, the timeout, cancellation and the reports around it. LLM backends (Ollama,
OpenAI-compatible servers, Claude, MLX) plug in as further `Executor`s under their own kinds.

Shipped here: ``echo`` (returns the payload) and ``sleep`` (waits ``{"seconds": s}``) run
inside the agent's event loop; ``processor`` (an import path ``package.module:function``
called with the payload) and ``burn`` (``{"iterations": N}`` of CPU work) run in worker
processes, one attempt per worker at a time, so a stuck or crashing step never blocks or
kills the agent: on a timeout or cancel its worker is killed and replaced.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from heddle.live.agent.worker_main import CPU_LIMIT_ENV
from heddle.live.features import refusal
from heddle.live.protocol import MAX_MESSAGE_BYTES, Assignment, ExecutorSpec

if TYPE_CHECKING:
    from heddle.live.agent.speed import SpeedMeter

__all__ = [
    "Begun",
    "EchoExecutor",
    "ExecutionError",
    "Executor",
    "ExecutorRegistry",
    "Progress",
    "SleepExecutor",
    "WorkerExecutor",
    "default_registry",
]

WORKER_SCRIPT = Path(__file__).with_name("worker_main.py")
IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
"""``package.module:function`` (attributes may be dotted: ``pkg.mod:Class.method``)."""


class ExecutionError(Exception):
    """The step failed; the message is the reason reported to the control plane. ``result``
    is reported with it (an LLM call billed before it failed carries its cost there)."""

    def __init__(self, reason: str, *, result: Any = None) -> None:
        super().__init__(reason)
        self.result = result


@dataclass(slots=True)
class Progress:
    """What an executor may tell the agent while it runs (timings of the attempt)."""

    first_token_at: float | None = None
    partial: Any = None  # reported as the result if the attempt is cut (a billed call's cost)
    on_text: Callable[[str], None] | None = None  # the agent's token sink, when one is asked for
    on_vectors: Callable[[list[list[float]]], None] | None = None  # the same sink's, for vectors
    on_thinking: Callable[[str], None] | None = None  # the same sink's, for a model's thinking
    cpu_s: float | None = None  # CPU seconds a worker process used for the step
    begun: Begun | None = None  # what `Executor.begin` started; `run` takes it over

    def first_token(self) -> None:
        """Call when the first output token arrives (LLM backends); later calls are ignored."""
        if self.first_token_at is None:
            self.first_token_at = time.time()

    def text(self, chunk: str) -> None:
        """Call with each piece of output as it arrives (LLM backends stream it on from here)."""
        if self.on_text is not None:
            self.on_text(chunk)

    def thinking(self, chunk: str) -> None:
        """Call with each piece of a reasoning model's thinking as it arrives: it streams on
        apart from the output (``TokenChunk.thinking``), in order with it."""
        if self.on_thinking is not None:
            self.on_thinking(chunk)

    def vectors(self, vectors: list[list[float]]) -> None:
        """Call with an embedding attempt's vectors, in input order (they go out on the token
        stream, never in the result); ExecutionError if no stream was asked for."""
        if self.on_vectors is None:
            raise ExecutionError("embeddings: the assignment asks for no token stream (executor "
                                 "option stream_tokens), the only way its vectors go back")
        self.on_vectors(vectors)


class Begun(Protocol):
    """Work an executor started in the assignment's callback (`Executor.begin`)."""

    def close(self) -> None:
        """Drop it: the attempt ended before `run` took it over (cancelled at once)."""


class Executor(ABC):
    """Runs attempts of the kinds it names. Must be cancellation-safe: the agent cancels
    `run()` on a timeout, a cancel request or the drain deadline."""

    kinds: ClassVar[tuple[str, ...]] = ()
    features: ClassVar[frozenset[str] | None] = None
    """An LLM backend's features: what it runs beyond a plain chat (heddle.live.features;
    reported per backend, ``backend`` its name); None: not an LLM backend."""
    refuses: ClassVar[Mapping[str, str]] = {}
    """Why it does not run each feature it lacks (the reason such a task fails with)."""
    serves_models: ClassVar[bool] = False
    """A local model server's backend: `installed_models` says what its server has."""

    def check(self, spec: ExecutorSpec) -> str | None:
        """Why this executor cannot take ``spec`` (the assignment is refused), or None."""
        return None

    def resident_models(self) -> Iterable[tuple[str, str]]:
        """(model, quant) pairs loaded now (LLM backends); reported in every capacity report,
        so it must be cheap: return what the backend last observed, do no I/O here."""
        return ()

    def installed_models(self) -> Iterable[tuple[str, str]] | None:
        """(model, quant) catalog pairs its server has, loaded or not (`serves_models`
        backends; reported); None: not known yet. Cheap like `resident_models`: no I/O."""
        return ()

    def cloud_offers(self) -> Iterable[str]:
        """Catalog API offers this executor calls (it holds their key): reported, so the
        control plane sends cloud work for them to this agent."""
        return ()

    def refuse_lacking(self, where: str, assignment: Assignment) -> None:
        """ExecutionError if the assignment needs a feature this backend lacks (`features`),
        with its reason (`refuses`); before anything is sent (nothing billed)."""
        why = refusal(where, self.features or frozenset(), self.refuses, assignment.payload)
        if why is not None:
            raise ExecutionError(why)

    def begin(self, assignment: Assignment, progress: Progress) -> None:
        """Start the attempt in the assignment's own callback: `run` is called a turn of
        the event loop later, and on a loop busy streaming other attempts' tokens a turn
        takes milliseconds. What it starts goes in
        ``progress.begun`` for `run` to take over (the agent closes it if `run` never
        comes). Must not block or raise; by default nothing is started early."""

    @abstractmethod
    async def run(self, assignment: Assignment, progress: Progress) -> Any:
        """Run the attempt and return its JSON result; raise ExecutionError on failure."""

    async def close(self) -> None:
        """Release processes and connections (the agent calls it once, on exit)."""


class EchoExecutor(Executor):
    """Returns the payload unchanged: the cheapest possible step (throughput benchmarks)."""

    kinds = ("echo",)

    async def run(self, assignment: Assignment, progress: Progress) -> Any:
        return assignment.payload


class SleepExecutor(Executor):
    """Waits ``payload {"seconds": s}`` (or ``options.seconds``) without using a core."""

    kinds = ("sleep",)

    async def run(self, assignment: Assignment, progress: Progress) -> Any:
        source = assignment.payload if isinstance(assignment.payload, dict) else {}
        seconds = source.get("seconds", assignment.executor.options.get("seconds"))
        if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
            raise ExecutionError(f"sleep: expected payload {{'seconds': s}} with s >= 0, got {seconds!r}")
        await asyncio.sleep(seconds)
        return {"slept_s": seconds}


@dataclass(slots=True, eq=False)  # identity: workers live in a set
class _Worker:
    process: asyncio.subprocess.Process

    async def call(self, target: str, payload: Any) -> dict:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps({"target": target, "payload": payload}).encode() + b"\n")
        await self.process.stdin.drain()
        line = await self.process.stdout.readline()
        if not line:
            code = await self.process.wait()
            raise ExecutionError(f"the worker process died (exit code {code})")
        return json.loads(line)

    def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()


@dataclass(slots=True)
class WorkerExecutor(Executor):
    """``processor`` and ``burn`` steps in worker processes (a pool of idle workers is kept)."""

    kinds: ClassVar[tuple[str, ...]] = ("processor", "burn")
    max_idle: int = 4
    allowed_modules: tuple[str, ...] = ()  # processor targets' module prefixes; () = any
    cpu_limit: float | None = None  # burn steps' share of a core (worker_main paces them)
    speed: SpeedMeter | None = None  # fed by every burn step: the node's running core speed
    _idle: list[_Worker] = field(default_factory=list)
    _all: set[_Worker] = field(default_factory=set)

    def check(self, spec: ExecutorSpec) -> str | None:
        if spec.kind != "processor":
            return None
        if not (spec.target and IMPORT_PATH.match(spec.target)):
            return f"processor: expected target 'package.module:function', got {spec.target!r}"
        module = spec.target.partition(":")[0]
        if self.allowed_modules and not any(
            module == m or module.startswith(m + ".") for m in self.allowed_modules
        ):
            return (f"processor: {module!r} is not allowed on this node "
                    f"(allowed: {', '.join(self.allowed_modules)})")
        return None

    async def _spawn(self) -> _Worker:
        env = None
        if self.cpu_limit is not None:
            env = {**os.environ, CPU_LIMIT_ENV: repr(self.cpu_limit)}
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(WORKER_SCRIPT),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            limit=2 * MAX_MESSAGE_BYTES, env=env,
        )
        worker = _Worker(process)
        self._all.add(worker)
        return worker

    async def run(self, assignment: Assignment, progress: Progress) -> Any:
        spec = assignment.executor
        target = "burn" if spec.kind == "burn" else str(spec.target)
        worker = self._idle.pop() if self._idle else await self._spawn()
        try:
            reply = await worker.call(target, assignment.payload)
        except BaseException:
            # Cancelled (timeout, cancel, drain deadline) or the worker broke: never reuse it.
            worker.kill()
            self._all.discard(worker)
            raise
        progress.cpu_s = reply.get("cpu_s")
        result = reply.get("result")
        if self.speed is not None and target == "burn" and reply.get("ok") and isinstance(result, dict):
            self.speed.add(int(result.get("iterations", 0)), float(reply.get("wall_s") or 0.0))
        if len(self._idle) < self.max_idle:
            self._idle.append(worker)
        else:
            worker.kill()
            self._all.discard(worker)
        if not reply.get("ok"):
            raise ExecutionError(str(reply.get("error")))
        if "worker" in spec.options:  # a worker YAML's processor step: its output_schema holds
            from heddle.live.backends.worker import check_processor_output

            return check_processor_output(spec.options, reply.get("result"))
        return result

    async def close(self) -> None:
        for worker in list(self._all):
            worker.kill()
            await worker.process.wait()
        self._all.clear()
        self._idle.clear()


@dataclass(slots=True)
class ExecutorRegistry:
    """Executors by kind (the composition root registers the backends it has)."""

    by_kind: dict[str, Executor] = field(default_factory=dict)

    def register(self, executor: Executor) -> None:
        for kind in executor.kinds:
            self.by_kind[kind] = executor

    def refusal(self, spec: ExecutorSpec) -> str | None:
        """Why an assignment with ``spec`` cannot run here, or None."""
        executor = self.by_kind.get(spec.kind)
        if executor is None:
            return f"no executor {spec.kind!r} on this node (has: {', '.join(sorted(self.by_kind))})"
        return executor.check(spec)

    def get(self, kind: str) -> Executor:
        return self.by_kind[kind]

    def executors(self) -> list[Executor]:
        """Each registered executor once (one may serve several kinds)."""
        return list({id(e): e for e in self.by_kind.values()}.values())

    def resident_models(self) -> tuple[tuple[str, str], ...]:
        return tuple(sorted({m for e in self.executors() for m in e.resident_models()}))

    def cloud_offers(self) -> tuple[str, ...]:
        return tuple(sorted({o for e in self.executors() for o in e.cloud_offers()}))

    def installed_models(self) -> tuple[tuple[str, str], ...] | None:
        """What the local model servers have, together (reported: heddle.models.installed);
        None (unknown: any model may come) when there is none or one has not answered yet."""
        found = [e.installed_models() for e in self.executors() if e.serves_models]
        if not found or any(f is None for f in found):
            return None
        return tuple(sorted({m for f in found for m in f}))

    def features(self) -> dict[str, tuple[str, ...]]:
        """Each LLM backend's features, by its name (`Executor.features`; reported)."""
        return {e.backend: tuple(sorted(e.features)) for e in self.executors() if e.features is not None}

    async def close(self) -> None:
        for executor in self.executors():
            await executor.close()


def default_registry(
    max_idle_workers: int = 4, allowed_modules: tuple[str, ...] = (), *, cpu_limit: float | None = None,
    speed: SpeedMeter | None = None,
) -> ExecutorRegistry:
    """echo, sleep, burn and processor (limited to ``allowed_modules`` when given; burn steps
    paced to ``cpu_limit`` of a core when given, and measured into ``speed``)."""
    registry = ExecutorRegistry()
    workers = WorkerExecutor(max_idle=max_idle_workers, allowed_modules=allowed_modules, cpu_limit=cpu_limit,
                             speed=speed)
    for executor in (EchoExecutor(), SleepExecutor(), workers):
        registry.register(executor)
    return registry
